"""Raw Kafka bytes to validated models, and the dead letter for what fails."""

from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from schemas.outputs import DeadLetter

M = TypeVar("M", bound=BaseModel)
MAX_DEAD_LETTER_VALUE = 256 * 1024  # characters kept of an oversized payload
MAX_DEAD_LETTER_KEY = 1024  # characters kept of an oversized key


class BadMessage(ValueError):
    """A message that breaks the contract; `str()` names the field."""


def describe(error: ValidationError) -> str:
    """`cancelled_at: Input should be a valid datetime`, one clause per failed field."""
    parts = []
    for item in error.errors(include_url=False):
        field = ".".join(str(p) for p in item["loc"]) or "value"
        if item["type"] == "value_error" and not item["loc"]:
            # A model-level rule names its own field: "reason: required when ..."
            parts.append(item["msg"].removeprefix("Value error, "))
        elif item["type"] == "json_invalid":
            parts.append(f"value: not valid JSON ({item['msg'].removeprefix('Invalid JSON: ')})")
        else:
            parts.append(f"{field}: {item['msg']}")
    return "; ".join(parts)


def parse(model: type[M], raw: bytes | None) -> M:
    if raw is None:
        raise BadMessage("value: missing (null message)")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadMessage(f"value: not valid UTF-8 (byte {exc.start})") from None
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise BadMessage(describe(exc)) from None


def as_text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", errors="replace")


def dead_letter(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    error: str,
    now: datetime,
) -> DeadLetter:
    text = as_text(value) or ""
    if len(text) > MAX_DEAD_LETTER_VALUE:
        error = f"{error} (value truncated from {len(text)} characters)"
        text = text[:MAX_DEAD_LETTER_VALUE]
    key_text = as_text(key)
    if key_text is not None and len(key_text) > MAX_DEAD_LETTER_KEY:
        error = f"{error} (key truncated from {len(key_text)} characters)"
        key_text = key_text[:MAX_DEAD_LETTER_KEY]
    return DeadLetter(
        source_topic=topic,
        partition=partition,
        offset=offset,
        key=key_text,
        value=text,
        error=error,
        received_at=now,
    )
