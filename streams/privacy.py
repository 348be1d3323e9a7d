"""Masking personal data for logs, the console and lookups."""

import re

_DIGITS = re.compile(r"\d")


def mask_name(name: str | None) -> str | None:
    """김민수 -> 김*수, 이훈 -> 이*, Alexander -> A*******r."""
    if not name:
        return name
    if len(name) <= 2:
        return name[0] + "*" * (len(name) - 1)
    return name[0] + "*" * (len(name) - 2) + name[-1]


def mask_phone(phone: str | None) -> str | None:
    """010-1234-5678 -> 010-****-5678: only the first 3 and last 4 digits stay."""
    if not phone:
        return phone
    total = len(_DIGITS.findall(phone))
    seen = 0
    out = []
    for ch in phone:
        if ch.isdigit():
            seen += 1
            out.append(ch if seen <= 3 or seen > total - 4 else "*")
        else:
            out.append(ch)
    return "".join(out)


def mask_email(email: str | None) -> str | None:
    """minsu@example.com -> m****@example.com."""
    if not email or "@" not in email:
        return email
    local, _, domain = email.partition("@")
    return local[:1] + "*" * max(len(local) - 1, 1) + "@" + domain


def mask_address(channel: str, to: str) -> str:
    return (mask_phone(to) if channel == "sms" else mask_email(to)) or ""
