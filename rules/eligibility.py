"""Who is eligible for the penalty waiver, and why not (contract section 1)."""

from rules.program import Program
from schemas.events import Cancellation
from schemas.outputs import DecisionReason


def eligibility_reason(cancellation: Cancellation, program: Program) -> DecisionReason:
    """The first rule that fails, in the contract's order; else `eligible`."""
    rules = program.eligibility
    cancelled_on = program.local_date(cancellation.cancelled_at)
    if not rules.cancellations_from <= cancelled_on <= rules.cancellations_until:
        return "cancelled_outside_period"
    if cancellation.line_type in rules.excluded_line_types:
        return cancellation.line_type  # type: ignore[return-value]  # "mvno" | "iot"
    if cancellation.termination == "involuntary":
        return "involuntary_termination"
    change = cancellation.last_contract_change
    if change is not None and change.on >= rules.contract_change_cutoff:
        return "recent_contract_change"
    return "eligible"
