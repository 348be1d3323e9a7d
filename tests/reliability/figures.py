"""Figures from the reliability tests, collected for docs/reliability.md.

Each test calls `record(...)`; when `WAIVER_RELIABILITY_FIGURES` names a file, the
figures are appended to it as one JSON line (scripts/reliability-report reads them).
"""

import json
import os
from typing import Any

from tests.conftest import BROKER, GUARANTEE


def record(test: str, **figures: Any) -> None:
    line = {"test": test, "broker": BROKER, "guarantee": GUARANTEE, **figures}
    print(json.dumps(line, ensure_ascii=False))
    path = os.environ.get("WAIVER_RELIABILITY_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
