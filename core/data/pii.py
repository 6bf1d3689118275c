"""Personal data patterns: e-mail, phone, payment card (Luhn-checked) and national ids (CN with checksum, US SSN).

Card and id candidates are validated (Luhn / ID checksum) so order numbers and other long digit strings are
not flagged. ``find_pii`` counts per kind; ``mask_pii`` replaces each match with a placeholder like ``[EMAIL]``.
"""
from __future__ import annotations

import re

EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
CN_ID = re.compile(r"(?<!\d)[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx](?![\dA-Za-z])")
US_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
PHONE = re.compile(
    r"(?<![\w+])(?:"
    r"\+\d{1,3}[ .-]?\(?\d{1,4}\)?(?:[ .-]?\d{2,4}){2,4}"   # international: +44 20 7946 0958, +86 138 0013 8000
    r"|1[3-9]\d{9}"                                          # CN mobile: 13800138000
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4}"  # NANP: (555) 123-4567, 555-123-4567
    r")(?![\w-])")
PLACEHOLDERS = {"email": "[EMAIL]", "card": "[CARD]", "national_id": "[ID]", "phone": "[PHONE]"}
_CN_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum used by payment cards."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_ok(match: str) -> bool:
    digits = re.sub(r"\D", "", match)
    # known issuer prefixes and lengths (Visa, Mastercard, Amex, Discover, UnionPay), then the checksum
    prefix_ok = (digits[0] == "4" and len(digits) in (13, 16, 19)) or \
                (len(digits) == 16 and (51 <= int(digits[:2]) <= 55 or 2221 <= int(digits[:4]) <= 2720)) or \
                (len(digits) == 15 and digits[:2] in ("34", "37")) or \
                (len(digits) == 16 and (digits[:4] == "6011" or digits[:2] == "65")) or \
                (digits[:2] == "62" and 16 <= len(digits) <= 19)
    return prefix_ok and luhn_ok(digits)


def cn_id_ok(value: str) -> bool:
    """The checksum of an 18-character Chinese resident identity number."""
    total = sum(int(d) * w for d, w in zip(value[:17], _CN_WEIGHTS))
    return "10X98765432"[total % 11] == value[17].upper()


def _matches(text: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of every validated match, earlier kinds winning overlaps."""
    found: list[tuple[int, int, str]] = []

    def add(pattern, kind, check=None):
        for m in pattern.finditer(text):
            if check and not check(m.group()):
                continue
            if all(m.end() <= s or m.start() >= e for s, e, _ in found):
                found.append((m.start(), m.end(), kind))

    add(EMAIL, "email")
    add(CN_ID, "national_id", cn_id_ok)
    add(US_SSN, "national_id")
    add(CARD, "card", _card_ok)
    add(PHONE, "phone")
    return sorted(found)


_DIGIT = re.compile(r"\d")


def _maybe(text: str) -> bool:
    """Cheap pre-filter: an e-mail needs '@'; every other kind has at least 7 digits."""
    return "@" in text or len(_DIGIT.findall(text)) >= 7


def pii_values(text: str) -> list[tuple[str, str]]:
    """(kind, matched text) of every personal-data match in ``text``."""
    if not _maybe(text):
        return []
    return [(kind, text[start:end]) for start, end, kind in _matches(text)]


def find_pii(text: str) -> dict[str, int]:
    """Counts of personal-data matches per kind in ``text``."""
    counts: dict[str, int] = {}
    for kind, _ in pii_values(text):
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def mask_pii(text: str) -> tuple[str, int]:
    """(text with each match replaced by its placeholder, number of replacements)."""
    if not _maybe(text):
        return text, 0
    matches = _matches(text)
    for start, end, kind in reversed(matches):
        text = text[:start] + PLACEHOLDERS[kind] + text[end:]
    return text, len(matches)


class Masker:
    """``mask_pii`` as a text -> text function that counts its replacements (``total``) for the operations log."""

    def __init__(self):
        self.total = 0

    def __call__(self, text: str) -> str:
        masked, n = mask_pii(text)
        self.total += n
        return masked
