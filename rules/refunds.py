"""Refund applications: accept or reject, and which payout batch pays."""

from datetime import date, timedelta

from rules.program import Program
from schemas.events import Application
from schemas.outputs import Decision, Refund


def payout_date(applied_on: date, cancelled_on: date, program: Program) -> date:
    """The first batch at least `min_days_after_application` days after the later of
    the application and the cancellation."""
    due = max(applied_on, cancelled_on) + timedelta(program.refunds.min_days_after_application)
    for batch in program.refunds.batches:
        if batch >= due:
            return batch
    # Program validation guarantees a batch for every day of the window.
    raise ValueError(f"no payout batch on or after {due}")


def resolve_application(
    application: Application,
    decision: Decision,
    cancelled_on: date,
    scheduled: Refund | None,
    program: Program,
) -> Refund:
    """The refund record for one application of a customer whose decision is known.

    `scheduled` is the customer's refund already scheduled, if any: a second
    application schedules nothing new.
    """

    def rejected(reason: str) -> Refund:
        return Refund(
            customer_id=application.customer_id,
            application_event_id=application.event_id,
            status="rejected",
            refund_krw=0,
            reason=reason,  # type: ignore[arg-type]
        )

    if not decision.eligible or decision.refund_krw <= 0:
        return rejected("not_eligible")
    if scheduled is not None:
        return rejected("already_applied")
    applied_on = program.local_date(application.applied_at)
    window = program.applications
    if not window.opens <= applied_on <= window.closes:
        return rejected("outside_application_window")
    return Refund(
        customer_id=application.customer_id,
        application_event_id=application.event_id,
        status="scheduled",
        refund_krw=decision.refund_krw,
        payout_date=payout_date(applied_on, cancelled_on, program),
    )
