import logging

import pytest

from streams.logs import JsonFormatter, MaskPersonalData, mask_text
from streams.privacy import mask_email, mask_name, mask_phone


@pytest.mark.parametrize(("name", "masked"), [("김민수", "김*수"), ("이훈", "이*"),
                                              ("남궁민수", "남**수"), ("A", "A"), (None, None)])
def test_mask_name(name: str | None, masked: str | None) -> None:
    assert mask_name(name) == masked


@pytest.mark.parametrize(("phone", "masked"), [("010-1234-5678", "010-****-5678"),
                                               ("01012345678", "010****5678"),
                                               ("+82 10-1234-5678", "+82 1*-****-5678")])
def test_mask_phone(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


def test_mask_email() -> None:
    assert mask_email("minsu@example.com") == "m****@example.com"
    assert mask_email("a@b.kr") == "a*@b.kr"


def test_log_lines_carry_no_full_phone_or_email() -> None:
    text = "sent to 010-1234-5678 and minsu@example.com; also 01098765432"
    masked = mask_text(text)
    for secret in ("1234-5678", "minsu@", "98765432"):
        assert secret not in masked
    record = logging.LogRecord("waiver", logging.INFO, __file__, 1, "to %s", ("010-1234-5678",),
                               None)
    assert MaskPersonalData().filter(record)
    line = JsonFormatter().format(record)
    assert "010-****-5678" in line and "1234-5678" not in line
    assert '"level": "info"' in line
