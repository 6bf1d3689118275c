"""Reasons as codes with parameters; English sentences from the UI's own string table (assets/i18n/en.json).

The engine never returns prose: a reason is ``{"code": "lora_small_data", "params": {"n": 960}}``. The UI
translates it with ``ui.i18n.t("strategy.<code>", **params)``; the CLI renders the same English with
:func:`render`, so both read one table.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

EN_TABLE = Path(__file__).resolve().parents[2] / "assets" / "i18n" / "en.json"
PREFIX = "strategy."


def reason(code: str, **params) -> dict:
    """One reason: a code and the numbers (or names) its sentence needs."""
    return {"code": code, "params": params}


@lru_cache(maxsize=1)
def _english() -> dict:
    return json.loads(EN_TABLE.read_text(encoding="utf-8"))


def render(item: dict, prefix: str = PREFIX) -> str:
    """The English sentence of a reason (the code itself when the table lacks it); ``prefix`` "" for any UI key."""
    text = _english().get(prefix + item["code"])
    return text.format(**item.get("params") or {}) if text else item["code"]


def minutes(seconds: float) -> float:
    """Seconds as minutes, the unit every duration in a reason uses."""
    return round(seconds / 60.0, 1)
