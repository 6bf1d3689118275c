"""Every UI string goes through ``t(key)``; the strings live in ``assets/i18n/<lang>.json``."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

I18N_DIR = Path(__file__).resolve().parents[1] / "assets" / "i18n"
LANGUAGES = {"en": "English", "zh": "简体中文"}
DEFAULT_LANG = "en"


@lru_cache(maxsize=None)
def strings(code: str) -> dict[str, str]:
    """The string table of one language (cached per process)."""
    return json.loads((I18N_DIR / f"{code}.json").read_text(encoding="utf-8"))


def lang() -> str:
    """The session's language code; English outside a Streamlit session."""
    try:
        import streamlit as st

        code = st.session_state.get("lang", DEFAULT_LANG)
    except Exception:  # noqa: BLE001 - no session (plain import in a test)
        code = DEFAULT_LANG
    return code if code in LANGUAGES else DEFAULT_LANG


def t(key: str, code: str | None = None, **fmt) -> str:
    """The translation of ``key`` (falling back to English, then to the key itself), formatted with ``fmt``."""
    code = code or lang()
    text = strings(code).get(key) or strings(DEFAULT_LANG).get(key) or key
    return text.format(**fmt) if fmt else text


def labeler(pattern: str):
    """A ``format_func`` for widgets: ``pattern`` with ``{}`` for the option, bound to the current language.

    Streamlit may call a format_func outside the script run (AppTest does); binding the language now keeps
    the labels in the session's language either way.
    """
    code = lang()
    return lambda value: t(pattern.format(value), code)
