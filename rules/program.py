"""The program file: every date, batch, window and template the rules use."""

import tomllib
from datetime import date, datetime, time, timedelta
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Self
from zoneinfo import ZoneInfo

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

DEFAULT_PROGRAM = "program.toml"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EligibilityRules(Frozen):
    cancellations_from: date
    cancellations_until: date
    excluded_line_types: tuple[str, ...]
    contract_change_cutoff: date


class ApplicationRules(Frozen):
    opens: date
    closes: date
    channels: tuple[str, ...]


class RefundRules(Frozen):
    batches: tuple[date, ...] = Field(min_length=1)
    min_days_after_application: int = Field(ge=0)


class SendWindow(Frozen):
    start: time
    end: time

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.start >= self.end:
            raise ValueError("send_window: start must be before end")
        return self

    @classmethod
    def parse(cls, text: str) -> "SendWindow":
        """Parse `HH:MM-HH:MM`, the form used on the command line."""
        start, sep, end = text.partition("-")
        if not sep:
            raise ValueError(f"send window {text!r}: expected HH:MM-HH:MM")
        return cls(start=time.fromisoformat(start.strip()), end=time.fromisoformat(end.strip()))


class Grant(Frozen):
    months: int = Field(ge=1, le=60)
    valid_from: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    excluded_line_types: tuple[str, ...] = ()
    excluded_statuses: tuple[str, ...] = ()

    def valid_until(self) -> str:
        year, month = (int(x) for x in self.valid_from.split("-"))
        last = year * 12 + month - 1 + self.months - 1
        return f"{last // 12:04d}-{last % 12 + 1:02d}"


class RewardRules(Frozen):
    cutoff: date
    subscribed_statuses: tuple[str, ...]
    excluded_line_types: tuple[str, ...]
    ott_services: tuple[str, ...] = Field(min_length=1)
    notice_template: str
    confirmation_template: str
    advertising: bool = True
    advertising_prefix: str = "(광고)"
    opt_out_line: str
    send_window: "SendWindow"
    grants: dict[str, Grant] = Field(min_length=1)
    notice_at: AwareDatetime | None = None  # when the worker sends the reward notice itself


class Round(Frozen):
    template: str
    last_notice: bool = False
    # When the worker fires the round itself (streams/agents/schedule.py); without
    # it, the round waits for a deadline event published by hand or upstream.
    at: AwareDatetime | None = None


def round_label(kind: str, round_no: int | None) -> str:
    """How a round is named where it is recorded: "1", "2", "3" or "reward_notice"."""
    return str(round_no) if kind == "guidance_round" else kind


# The shipped program's carrier name: a placeholder until the operator sets theirs
# (carrier_name in the program file, or WAIVER_CARRIER_NAME).
PLACEHOLDER_CARRIER = "○○통신"


class Program(Frozen):
    timezone: str
    # The sender every message opens with: "[carrier] 김민수 고객님, ..."
    carrier_name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                   max_length=30)]
    eligibility: EligibilityRules
    applications: ApplicationRules
    refunds: RefundRules
    send_window: SendWindow
    rounds: dict[int, Round] = Field(min_length=1)
    rewards: RewardRules | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        try:
            ZoneInfo(self.timezone)
        except (ValueError, LookupError) as exc:
            raise ValueError(f"timezone: unknown time zone {self.timezone!r}") from exc
        if self.eligibility.cancellations_from > self.eligibility.cancellations_until:
            raise ValueError("eligibility: cancellations_from is after cancellations_until")
        if self.carrier_name in self.applications.channels:
            raise ValueError(
                f"carrier_name: {self.carrier_name!r} is an application channel, not the "
                "carrier's name (set the carrier's own name: carrier_name in the program "
                "file, or WAIVER_CARRIER_NAME)")
        if self.applications.opens > self.applications.closes:
            raise ValueError("applications: opens is after closes")
        if list(self.refunds.batches) != sorted(self.refunds.batches):
            raise ValueError("refunds.batches: must be in date order")
        latest_due = self.applications.closes + timedelta(self.refunds.min_days_after_application)
        if self.refunds.batches[-1] < latest_due:
            raise ValueError(
                "refunds.batches: no batch pays an application made on the closing day"
            )
        return self

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local_date(self, moment: datetime) -> date:
        """The program's calendar day of an aware timestamp."""
        return moment.astimezone(self.tz).date()

    def with_send_window(self, window: SendWindow) -> "Program":
        return self.model_copy(update={"send_window": window})

    def refuses(self, kind: str, round_no: int | None) -> str | None:
        """Why a deadline of this kind and round is not one of this program's (None:
        it is), naming the field."""
        if kind == "guidance_round" and round_no not in self.rounds:
            rounds = ", ".join(str(r) for r in sorted(self.rounds))
            return f"round: {round_no} is not a round of the program ({rounds})"
        if kind == "reward_notice" and self.rewards is None:
            return "kind: the program file has no reward program"
        return None

    def schedule(self) -> list[tuple[str, str, int | None, datetime]]:
        """The deadlines the worker fires itself: (label, kind, round, due), by time."""
        due = [(round_label("guidance_round", n), "guidance_round", n, r.at)
               for n, r in self.rounds.items() if r.at is not None]
        if self.rewards is not None and self.rewards.notice_at is not None:
            due.append((round_label("reward_notice", None), "reward_notice", None,
                        self.rewards.notice_at))
        return sorted(due, key=lambda d: d[3])

    def with_carrier_name(self, name: str) -> "Program":
        """The program with another carrier name, validated as in a program file."""
        return Program.model_validate({**self.model_dump(), "carrier_name": name})


def load_program(path: str | Path | None = None) -> Program:
    """Load a program file; without a path, the one shipped with the package."""
    if path is None:
        text = resources.files("rules").joinpath(DEFAULT_PROGRAM).read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    return Program.model_validate(tomllib.loads(text))
