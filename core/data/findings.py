"""Quality findings, drift warnings and reading notes as codes with parameters; their text is in ``assets/i18n``.

The analyzer stores ``code`` and ``params`` in each finding; the pages translate them with ``ui.i18n.t`` and
the CLI renders English with ``english``, both from the keys ``finding.<code>.cause`` and ``finding.<code>.fix``.
A few parameters are codes themselves and are translated too: ``script`` (``analyze.script.<code>``) and
``by_kind`` (a {kind: rows} dict, ``analyze.pii.<kind>``); lists are joined.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

I18N_DIR = Path(__file__).resolve().parents[2] / "assets" / "i18n"
CODES = ("size_small", "empty_fields", "trailing_user", "exact_duplicates", "near_duplicates", "conflicts_labels",
         "conflicts_answers", "too_long", "script_minority", "pii_repeated", "pii_personal", "labels_rare",
         "labels_imbalanced", "labels_variants", "low_diversity", "formatting", "pref_empty", "pref_identical",
         "pref_duplicate_prompts", "pref_length_bias_longer", "pref_length_bias_shorter")
MAX_LISTED = 10  # values of a list parameter spelled out before "…"

Translate = Callable[..., str]


@lru_cache(maxsize=None)
def _table(lang: str) -> dict[str, str]:
    return json.loads((I18N_DIR / f"{lang}.json").read_text(encoding="utf-8"))


def english(key: str, **fmt: Any) -> str:
    """The English string of ``key`` (the same table the UI uses), formatted with ``fmt``."""
    text = _table("en").get(key, key)
    return text.format(**fmt) if fmt else text


def _join(values: list) -> str:
    """List parameters as text: ['a', 'b'] -> 'a, b'; [['a', 'A'], ...] -> 'a / A; ...'."""
    shown = values[:MAX_LISTED]
    if shown and all(isinstance(v, list) for v in shown):
        text = "; ".join(" / ".join(map(str, v)) for v in shown)
    else:
        text = ", ".join(map(str, shown))
    return text + (" …" if len(values) > MAX_LISTED else "")


def format_params(params: dict, translate: Translate = english) -> dict[str, Any]:
    """Parameters ready for a template: code-valued ones translated, lists joined."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key == "script":
            value = translate(f"analyze.script.{value}")
        elif key == "by_kind" and isinstance(value, dict):
            value = ", ".join(f"{translate(f'analyze.pii.{k}')}: {n}" for k, n in value.items())
        elif isinstance(value, list):
            value = _join(value)
        out[key] = value
    return out


def render_finding(code: str, params: dict, translate: Translate = english) -> tuple[str, str]:
    """(cause, fix) of a finding in the language of ``translate`` (English by default)."""
    values = format_params(params, translate)
    return translate(f"finding.{code}.cause", **values), translate(f"finding.{code}.fix", **values)


def note(code: str, **params: Any) -> dict:
    """A note about how a file was read: its code, parameters and English text (the pages translate the code)."""
    made = {"code": code, "params": params}
    made["text"] = render_note(made)
    return made


def render_note(item: dict | str, translate: Translate = english) -> str:
    """A note as text (key ``note.<code>``); a plain string (reports kept before notes had codes) as it is."""
    if isinstance(item, str):
        return item
    return translate(f"note.{item['code']}", **format_params(item.get("params") or {}, translate))


def render_drift(warning: dict, translate: Translate = english) -> str:
    """A drift warning of the dataset monitor (``{"code", "params"}``) as text; key ``drift.<code>``."""
    return translate(f"drift.{warning['code']}", **format_params(warning.get("params") or {}, translate))
