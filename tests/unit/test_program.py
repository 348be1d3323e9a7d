from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError

from rules.eligibility import eligibility_reason
from rules.program import load_program
from rules.refunds import payout_date
from tests.factories import cancellation

SHIPPED = Path(__file__).parents[2] / "rules" / "program.toml"


def variant(tmp_path: Path, *replacements: tuple[str, str]) -> Path:
    text = SHIPPED.read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "program.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_program_holds_the_announcement() -> None:
    program = load_program()
    assert program.eligibility.cancellations_from == date(2025, 9, 1)
    assert program.eligibility.cancellations_until == date(2026, 1, 13)
    assert (program.applications.opens, program.applications.closes) == (date(2026, 1, 14),
                                                                          date(2026, 1, 31))
    assert program.refunds.batches == (date(2026, 1, 22), date(2026, 2, 5), date(2026, 2, 19))
    assert sorted(program.rounds) == [1, 2, 3]
    assert load_program(SHIPPED) == program


def test_another_program_file_changes_the_outcome(tmp_path: Path) -> None:
    late = cancellation(cancelled_at="2026-01-20T10:00:00+09:00")
    assert eligibility_reason(late, load_program()) == "cancelled_outside_period"
    extended = load_program(variant(
        tmp_path,
        ("cancellations_until = 2026-01-13", "cancellations_until = 2026-01-31"),
        ("batches = [2026-01-22, 2026-02-05, 2026-02-19]",
         "batches = [2026-01-29, 2026-02-26]"),
        ("min_days_after_application = 7", "min_days_after_application = 14"),
    ))
    assert eligibility_reason(late, extended) == "eligible"
    assert payout_date(date(2026, 1, 14), date(2026, 1, 5), extended) == date(2026, 1, 29)
    assert payout_date(date(2026, 1, 16), date(2026, 1, 5), extended) == date(2026, 2, 26)


def test_program_file_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="no batch pays"):
        load_program(variant(tmp_path, ("2026-02-19]", "2026-02-05]")))
    with pytest.raises(ValidationError, match="timezone: unknown"):
        load_program(variant(tmp_path, ('"Asia/Seoul"', '"Mars/Olympus"')))
    with pytest.raises(ValidationError, match="start must be before end"):
        load_program(variant(tmp_path, ('start = "09:00"', 'start = "21:00"')))
