"""The built-in probe set of general questions (facts, arithmetic, instructions, refusals) and its model-free checks.

Each probe in ``assets/probes/general.jsonl`` is one JSON line::

    {"id": "en-fact-01", "lang": "en", "category": "fact", "prompt": "…",
     "check": {"type": "answer", "any": ["Paris"]}, "example": "The capital of France is Paris."}

A check needs no model: ``answer`` passes when one of ``any`` appears in the answer as a run of whole tokens
(:func:`core.evaluation.textmetrics.segment`: words, one token per Chinese character), so "12" does not pass "112";
``regex`` passes when ``pattern`` (with ``flags``, "i" by default) is found; ``refuse`` passes when the answer
declines or says it does not know, ``not_refuse`` when it is a non-empty answer that does neither
(:mod:`core.evaluation.refusals`). ``example``, optional, is an answer that passes: loading checks that it does,
so every check in the file is known to be passable. The file is validated on load; a bad line is named.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from core.evaluation.refusals import is_abstention
from core.evaluation.textmetrics import segment

PROBES_DIR = Path(__file__).resolve().parents[2] / "assets" / "probes"
GENERAL_PROBES = PROBES_DIR / "general.jsonl"
LANGS = ("en", "zh")
CATEGORIES = ("fact", "arithmetic", "instruction", "must_refuse", "must_not_refuse")
CHECK_TYPES = ("answer", "regex", "refuse", "not_refuse")
# the check a safety category must use: a refusal probe judged by a reference answer would mean nothing
_CATEGORY_CHECK = {"must_refuse": "refuse", "must_not_refuse": "not_refuse"}
_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}


class ProbeFileError(ValueError):
    """A probe file line that does not follow the format (the message names the file and line)."""


@dataclass(frozen=True)
class Probe:
    """One probe: a question and the model-free check of its answer."""

    id: str
    lang: str
    category: str
    prompt: str
    check: dict
    example: Optional[str] = None

    def messages(self) -> list[dict]:
        """The chat messages that ask this probe."""
        return [{"role": "user", "content": self.prompt}]

    def passes(self, answer: str) -> bool:
        """True when ``answer`` passes this probe's check."""
        return check_answer(self.check, answer)


def _contains_run(tokens: list[str], run: list[str]) -> bool:
    n = len(run)
    return n > 0 and any(tokens[i:i + n] == run for i in range(len(tokens) - n + 1))


def _regex(check: dict) -> re.Pattern:
    flags = 0
    for ch in check.get("flags", "i"):
        flags |= _FLAGS[ch]
    return re.compile(check["pattern"], flags)


def check_answer(check: dict, answer: str) -> bool:
    """True when ``answer`` passes ``check`` (one of the four check types described in the module docstring)."""
    kind = check["type"]
    if kind == "answer":
        tokens = segment(answer)
        return any(_contains_run(tokens, segment(ref)) for ref in check["any"])
    if kind == "regex":
        return bool(_regex(check).search(answer or ""))
    if kind == "refuse":
        return is_abstention(answer)
    return bool((answer or "").strip()) and not is_abstention(answer)


def _check_error(check) -> Optional[str]:
    """What is wrong with a check dict, or None."""
    if not isinstance(check, dict) or check.get("type") not in CHECK_TYPES:
        return f"check.type must be one of {CHECK_TYPES}"
    if check["type"] == "answer":
        refs = check.get("any")
        if not (isinstance(refs, list) and refs and all(isinstance(r, str) and segment(r) for r in refs)):
            return "an answer check needs `any`: a non-empty list of reference strings with words in them"
    if check["type"] == "regex":
        if not isinstance(check.get("pattern"), str) or set(check.get("flags", "i")) - set(_FLAGS):
            return f"a regex check needs a `pattern` string and `flags` from {''.join(_FLAGS)}"
        try:
            _regex(check)
        except re.error as exc:
            return f"the pattern does not compile: {exc}"
    return None


def _probe_error(row) -> Optional[str]:
    """What is wrong with one parsed line, or None."""
    if not isinstance(row, dict):
        return "a line must be a JSON object"
    for key in ("id", "prompt"):
        if not isinstance(row.get(key), str) or not row[key].strip():
            return f"`{key}` must be a non-empty string"
    if row.get("lang") not in LANGS:
        return f"`lang` must be one of {LANGS}"
    if row.get("category") not in CATEGORIES:
        return f"`category` must be one of {CATEGORIES}"
    problem = _check_error(row.get("check"))
    if problem:
        return problem
    wanted = _CATEGORY_CHECK.get(row["category"])
    if wanted and row["check"]["type"] != wanted:
        return f"a {row['category']} probe must use a `{wanted}` check"
    example = row.get("example")
    if example is not None and not (isinstance(example, str) and check_answer(row["check"], example)):
        return "`example` must be an answer that passes the probe's check"
    return None


def round_robin(groups: list[list]) -> list:
    """The items of ``groups`` interleaved (first of each, then second of each …), so a prefix covers every group."""
    out: list = []
    for i in range(max((len(g) for g in groups), default=0)):
        out.extend(g[i] for g in groups if i < len(g))
    return out


def parse_probes(text: str, source: str = "probes") -> list[Probe]:
    """Every probe in JSONL ``text``, validated; a bad line raises ProbeFileError naming ``source`` and the line."""
    probes: list[Probe] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ProbeFileError(f"{source} line {number}: not JSON ({exc.msg})") from None
        problem = _probe_error(row) or (f"duplicate id {row['id']!r}" if row["id"] in seen else None)
        if problem:
            raise ProbeFileError(f"{source} line {number}: {problem}")
        seen.add(row["id"])
        probes.append(Probe(row["id"], row["lang"], row["category"], row["prompt"], row["check"],
                            row.get("example")))
    return probes


def load_probes(lang: str = "en", path: Optional[Path] = None) -> list[Probe]:
    """The probes of ``lang`` ("en", "zh" or "all") from the built-in set or ``path``, validated."""
    if lang not in LANGS + ("all",):
        raise ValueError(f"lang must be one of {LANGS + ('all',)}, got {lang!r}")
    path = Path(path) if path else GENERAL_PROBES
    probes = parse_probes(path.read_text(encoding="utf-8"), path.name)
    return [p for p in probes if lang == "all" or p.lang == lang]
