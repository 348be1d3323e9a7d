"""Worker logging: JSON lines (or text), with phone numbers and e-mail addresses masked
in every record, whoever logs it (our code never logs names or contacts; this is the
net for library messages that echo an event)."""

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from streams.privacy import mask_email, mask_phone

PHONE = re.compile(r"(?<!\d)(?:\+?82[- ]?|0)1\d[- ]?\d{3,4}[- ]?\d{4}(?!\d)")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def mask_text(text: str) -> str:
    text = EMAIL.sub(lambda m: mask_email(m.group()) or "", text)
    return PHONE.sub(lambda m: mask_phone(m.group()) or "", text)


class MaskPersonalData(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_text(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """A dictConfig for the Faust worker."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"mask": {"()": MaskPersonalData}},
        "formatters": {
            "json": {"()": JsonFormatter},
            "text": {"format": "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"},
        },
        "handlers": {"default": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                 "formatter": "json" if fmt == "json" else "text",
                                 "filters": ["mask"], "level": level.upper()}},
        "root": {"level": level.upper(), "handlers": ["default"]},
    }
