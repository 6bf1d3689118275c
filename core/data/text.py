"""Small text helpers shared by the analyzer and the processor: keys for duplicates, scripts, cleaning.

A script is a writing system (Han, Latin …), not a language: French and English are both Latin.
"""
from __future__ import annotations

import html
import re
import unicodedata

_PUNCT = re.compile(r"[^\w\s]+", re.UNICODE)
_SPACE = re.compile(r"\s+")
HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>")
HTML_ENTITY = re.compile(r"&(?:[A-Za-z]{2,8}|#\d{2,6}|#x[0-9A-Fa-f]{2,6});")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\u200e\u200f\ufeff]")
MESSY_SPACE = re.compile(r"\r|[ \t]{3,}|\n{3,}|^\s|\s$")
# The one definition of the CJK code-point ranges (the analyzer, the GBK check and the metrics use these).
HAN_RANGES = ((0x3400, 0x4DBF),     # CJK extension A
              (0x4E00, 0x9FFF),     # CJK unified ideographs
              (0xF900, 0xFAFF),     # CJK compatibility ideographs
              (0x20000, 0x2FA1F))   # extensions B-F and compatibility supplement
KANA_RANGES = ((0x3040, 0x30FF),)   # hiragana, katakana
HANGUL_RANGES = ((0xAC00, 0xD7AF),)  # hangul syllables
CJK_RANGES = tuple(sorted(HAN_RANGES + KANA_RANGES + HANGUL_RANGES))
CJK_PUNCT_RANGES = ((0x3000, 0x303F), (0xFF00, 0xFFEF))  # CJK punctuation, full-width forms


def char_class(ranges: tuple[tuple[int, int], ...]) -> str:
    """The inside of a regex character class matching the given code-point ranges."""
    return "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in ranges)


HAN = re.compile(f"[{char_class(HAN_RANGES)}]")
LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")
LETTER_OTHER = re.compile(f"[^\\W\\d_A-Za-z\u00c0-\u024f{char_class(HAN_RANGES)}]")
# ChatML-style special markers that must not survive inside content (they would break the template)
_CHAT_MARKERS = re.compile(r"<\|(?:im_start|im_end|endoftext)\|>")


def norm_key(text: str) -> str:
    """A comparison key: NFKC, lower case, punctuation removed, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).lower()
    return _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()


def script_counts(text: str) -> tuple[int, int, int]:
    """(Han, Latin, other-letter) character counts."""
    if text.isascii():
        return 0, len(LATIN.findall(text)), 0
    return len(HAN.findall(text)), len(LATIN.findall(text)), len(LETTER_OTHER.findall(text))


def script_from_counts(han: int, latin: int, other: int) -> str:
    """'han', 'latin', 'other' or 'none': the dominant script (a Han character weighs like a short word)."""
    scores = {"han": han * 3, "latin": latin, "other": other}
    best = max(scores, key=scores.get)
    return best if scores[best] > 0 else "none"


def formatting_issues(text: str) -> list[str]:
    """Which of html / control / whitespace problems a text has."""
    issues = []
    if HTML_TAG.search(text) or HTML_ENTITY.search(text):
        issues.append("html")
    if CONTROL.search(text):
        issues.append("control")
    if MESSY_SPACE.search(text):
        issues.append("whitespace")
    return issues


_NEEDS_CLEANING = re.compile(r"[<&\x00-\x08\x0b-\x1f\x7f\u200b\u200e\u200f\ufeff\u00a0\t\r]|  | \n|\n |\n\n\n|^\s|\s$")


def clean_text(text: str) -> str:
    """Strip HTML tags and entities, control characters and chat markers; normalise whitespace (keeps newlines)."""
    if not _NEEDS_CLEANING.search(text) and unicodedata.is_normalized("NFC", text):
        return text  # the common case: nothing to do
    text = unicodedata.normalize("NFC", text)
    if "<" in text or "&" in text:
        text = HTML_TAG.sub(" ", text)
        text = html.unescape(text)
    text = CONTROL.sub("", _CHAT_MARKERS.sub("", text))
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t\u00a0]+", " ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()
