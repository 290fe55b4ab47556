"""Masking of contact details (PIPL: show personal information only to those who need it).

Pure functions; which role needs which field is decided in api/services/scope.py.
"""

from __future__ import annotations

MASK = "*"


def mask_phone(phone: str | None) -> str | None:
    """Keep the first 3 and last 4 digits, the way Chinese mobile numbers are shown: 138****5678."""
    if not phone:
        return phone
    digits = [i for i, ch in enumerate(phone) if ch.isdigit()]
    if len(digits) <= 7:
        return MASK * len(phone)
    keep = set(digits[:3]) | set(digits[-4:])
    return "".join(ch if i in keep or not ch.isdigit() else MASK for i, ch in enumerate(phone))


def mask_email(email: str | None) -> str | None:
    """Keep the first character of the local part and the domain: z***@example.com."""
    if not email:
        return email
    local, at, domain = email.partition("@")
    if not at:
        return MASK * len(email)
    return f"{local[:1]}{MASK * 3}@{domain}"


def mask_name(name: str | None) -> str | None:
    """Keep the first character (the family name in Chinese): 王**; Latin names keep the initial."""
    if not name:
        return name
    return name[0] + MASK * max(len(name) - 1, 2)
