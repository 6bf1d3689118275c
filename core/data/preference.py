"""Preference data: detect its three shapes and normalise every row to a ``PreferencePair``.

- ``preference``: prompt/chosen/rejected columns; each a string or a list of chat messages (a chosen list that
  repeats the prompt, as UltraFeedback's does, has the prompt cut off).
- ``openai_dpo``: OpenAI's DPO JSONL: ``input.messages``, ``preferred_output``, ``non_preferred_output``.
- ``transcript_pairs``: chosen/rejected whole transcripts that share every turn but the last (HH-RLHF's
  ``"\\n\\nHuman: ...\\n\\nAssistant: ..."`` strings, or message lists).

A broken row is refused with its row number, what is wrong and how to fix it. An empty side is kept: the
analysis reports it and prepare drops it.
"""
from __future__ import annotations

import json
import re
from typing import Any

from core.errors import UserError

from .io import Table, read_table
from .pairs import PreferencePair
from .schema import ROLE_MAP

PREFERENCE_FORMATS = ("preference", "openai_dpo", "transcript_pairs")
# field -> accepted column names, most specific first (matched case-insensitively)
PAIR_SYNONYMS: dict[str, tuple[str, ...]] = {
    "prompt": ("prompt", "question", "instruction", "query", "input", "context"),
    "chosen": ("chosen", "preferred", "preferred_output", "accepted", "better", "response_chosen", "chosen_response"),
    "rejected": ("rejected", "non_preferred_output", "dispreferred", "not_preferred", "worse", "response_rejected",
                 "rejected_response"),
    "system": ("system", "system_prompt"),
}
PAIR_FIELDS = {"preference": ("prompt", "chosen", "rejected", "system"),
               "openai_dpo": ("prompt", "chosen", "rejected"), "transcript_pairs": ("chosen", "rejected")}
HELP = ("prompt+chosen+rejected (strings or message lists); OpenAI DPO JSONL (input.messages, preferred_output, "
        "non_preferred_output); or chosen+rejected whole transcripts that share every turn but the last")
_MARKER = re.compile(r"\n\n(Human|Assistant):[ \t]?")  # HH-RLHF's turn markers
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}


# ---------------------------------------------------------------- detection
def _find(columns: list[str], field: str, used: set[str] = frozenset()) -> str | None:
    lower = {c.lower(): c for c in columns if c not in used}
    return next((lower[n] for n in PAIR_SYNONYMS[field] if n in lower), None)


def _first(records: list[dict], column: str) -> Any:
    return next((r[column] for r in records[:200] if r.get(column) not in (None, "", [])), None)


def _is_transcript(value: Any) -> bool:
    """A whole HH-style transcript string, or a message list with a user turn before the last answer."""
    if isinstance(value, str):
        return bool(_MARKER.search("\n\n" + value.lstrip() if value.lstrip().startswith("Human:") else value))
    return isinstance(value, list) and len(value) >= 2 and all(isinstance(m, dict) for m in value)


def detect_preference(table: Table) -> tuple[str, dict[str, str]] | None:
    """(format, {field: column}) when the table holds preference pairs, else None."""
    cols = table.columns
    if {"input", "preferred_output", "non_preferred_output"} <= set(cols) and isinstance(
            _first(table.records, "input"), dict):
        return "openai_dpo", {"prompt": "input", "chosen": "preferred_output", "rejected": "non_preferred_output"}
    chosen, rejected = _find(cols, "chosen"), _find(cols, "rejected")
    if not chosen or not rejected or chosen == rejected:
        return None
    mapping = {"chosen": chosen, "rejected": rejected}
    prompt = _find(cols, "prompt", {chosen, rejected})
    if prompt:
        system = _find(cols, "system", {chosen, rejected, prompt})
        return "preference", {"prompt": prompt, **mapping, **({"system": system} if system else {})}
    if _is_transcript(_first(table.records, chosen)):
        return "transcript_pairs", mapping
    return None


def resolve_preference(table: Table, fmt: str | None, mapping: dict[str, str] | None) -> tuple[str, dict[str, str]]:
    """Apply a user's format and/or mapping to preference data; fields not given are found by name."""
    found = detect_preference(table)
    if fmt is not None and fmt not in PREFERENCE_FORMATS:
        raise UserError(f"Unknown preference format {fmt!r}; choose one of {', '.join(PREFERENCE_FORMATS)}.")
    fmt = fmt or (found[0] if found else ("preference" if mapping and "prompt" in mapping else "transcript_pairs"))
    resolved = dict(found[1]) if found and found[0] == fmt else {}
    resolved.update(mapping or {})
    for field in PAIR_FIELDS[fmt]:  # fields the mapping leaves out, found by name
        col = resolved.get(field) or _find(table.columns, field, set(resolved.values()))
        if col:
            resolved[field] = col
    missing_cols = [c for c in resolved.values() if c not in table.columns]
    if missing_cols:
        raise UserError(f"The mapping names column(s) {', '.join(map(repr, missing_cols))} that the file does not "
                        f"have. Columns found: {', '.join(table.columns)}.")
    need = [f for f in PAIR_FIELDS[fmt] if f != "system" and f not in resolved]
    if need:
        raise UserError(f"Preference format {fmt} needs columns for {' + '.join(need)}, but the columns are: "
                        f"{', '.join(table.columns)}. Expected: {HELP}. Name them with a mapping, e.g. "
                        + " ".join(f"--map {f}=<column>" for f in need) + ".")
    return fmt, resolved


# ---------------------------------------------------------------- one row
def _bad(row: int, what: str, fix: str) -> UserError:
    return UserError(f"Row {row}: {what}. {fix}")


def _messages(value: Any, row: int, field: str, default_role: str) -> list[dict]:
    """A side or prompt as messages: a string is one turn of ``default_role``; a list keeps its roles."""
    if isinstance(value, str):
        return [{"role": default_role, "content": value}]
    if isinstance(value, dict) and "role" in value:
        value = [value]
    if not isinstance(value, list):
        raise _bad(row, f"'{field}' is a {type(value).__name__}", "Give a string or a list of "
                   '{"role": ..., "content": ...} messages.')
    out = []
    for turn in value:
        if not isinstance(turn, dict) or "role" not in turn:
            raise _bad(row, f"'{field}' holds {turn!r:.60}, not a message",
                       'Each message needs "role" and "content", e.g. {"role": "assistant", "content": "..."}.')
        role = ROLE_MAP.get(str(turn["role"]).strip().lower())
        if role is None:
            raise _bad(row, f"'{field}' has the unknown role {turn['role']!r}", "Use system, user or assistant.")
        content = turn.get("content")
        if isinstance(content, list):  # OpenAI content parts
            content = "\n".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
        out.append({"role": role, "content": "" if content is None else str(content)})
    return out


def _value(rec: dict, column: str, row: int, field: str) -> Any:
    value = rec.get(column)
    if value is None:
        raise _bad(row, f"the '{column}' field ({field}) is missing", f"Every row needs {HELP}; add it or delete the "
                   "row (an empty string is allowed and reported by Analyze).")
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:  # message lists stored as JSON text in a CSV cell; any other text (code, JSON answers) stays text
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return value
        turns = parsed if isinstance(parsed, list) else [parsed]
        if turns and all(isinstance(t, dict) and "role" in t for t in turns):
            return parsed
    return value


def _shared_prefix(a: list[dict], b: list[dict]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _cut_answers(prompt: list[dict], chosen: list[dict], rejected: list[dict], row: int) -> PreferencePair:
    """Drop a repeated prompt from the front of both sides (UltraFeedback keeps it in chosen/rejected)."""
    for side in (chosen, rejected):
        if len(side) > len(prompt) and side[:len(prompt)] == prompt:
            del side[:len(prompt)]
    return PreferencePair(prompt, chosen, rejected, {"row": row})


def _split_transcript(chosen: list[dict], rejected: list[dict], row: int) -> PreferencePair:
    """Message-list transcripts: the shared turns are the prompt, the rest of each side its answer."""
    n = _shared_prefix(chosen, rejected)
    if n == len(chosen) == len(rejected):  # identical transcripts: the last turn is both answers
        n -= 1
    while n > 0 and chosen[n - 1]["role"] == "assistant":  # the answers start at an assistant turn
        n -= 1
    prompt, a, b = chosen[:n], chosen[n:], rejected[n:]
    if not prompt or prompt[-1]["role"] != "user":
        raise _bad(row, "chosen and rejected do not share the turns before their last answer",
                   "Whole-transcript pairs must share every turn but the last assistant answer; or give a separate "
                   "prompt column.")
    if len(a) > 1 and len(b) > 1:
        raise _bad(row, "chosen and rejected differ before their last assistant turn",
                   "Whole-transcript pairs must share every turn but the last; fix the row or delete it.")
    return PreferencePair(prompt, a, b, {"row": row})


def _hh_turns(text: str) -> list[dict]:
    """'\\n\\nHuman: a\\n\\nAssistant: b' -> messages (text before the first marker is dropped when blank)."""
    parts = _MARKER.split(text)
    head, turns = parts[0], []
    if head.strip():
        turns.append({"role": "user", "content": head.strip()})
    for i in range(1, len(parts) - 1, 2):
        turns.append({"role": _HH_ROLES[parts[i]], "content": parts[i + 1].strip()})
    return turns


def _split_hh(chosen: str, rejected: str, row: int) -> PreferencePair:
    """HH-RLHF strings: the prompt is the shared text up to the last shared '\\n\\nAssistant:' marker."""
    chosen, rejected = (("\n\n" + t.lstrip()) if t.lstrip().startswith("Human:") else t for t in (chosen, rejected))
    common = 0
    limit = min(len(chosen), len(rejected))
    while common < limit and chosen[common] == rejected[common]:
        common += 1
    cut = max((m.start() for m in _MARKER.finditer(chosen[:common]) if m.group(1) == "Assistant"
               and m.end() <= common), default=-1)
    if chosen == rejected:  # identical: cut at the last answer so the analysis can report the pair
        cut = max((m.start() for m in _MARKER.finditer(chosen) if m.group(1) == "Assistant"), default=-1)
    if cut < 0:
        raise _bad(row, "chosen and rejected share no turn ending in '\\n\\nAssistant:'",
                   "Whole transcripts must read '\\n\\nHuman: ...\\n\\nAssistant: ...' and share every turn but the "
                   "last answer; or give a separate prompt column.")
    last = [max((m.start() for m in _MARKER.finditer(t) if m.group(1) == "Assistant"), default=-1)
            for t in (chosen, rejected)]
    if cut not in last:
        raise _bad(row, "chosen and rejected differ before their last 'Assistant:' turn",
                   "Whole-transcript pairs must share every turn but the last; fix the row or delete it.")
    prompt = _hh_turns(chosen[:cut])
    if not prompt or prompt[-1]["role"] != "user":
        raise _bad(row, "the shared part of the transcripts does not end with a 'Human:' turn",
                   "Each transcript must alternate Human and Assistant turns and end with the Assistant's answer.")
    end = len(_MARKER.match(chosen, cut).group(0))
    answers = [[{"role": "assistant", "content": t[cut + end:].strip()}] for t in (chosen, rejected)]
    return PreferencePair(prompt, answers[0], answers[1], {"row": row})


def pair_of(rec: dict, fmt: str, mapping: dict[str, str], row: int) -> PreferencePair:
    """One record as a PreferencePair (or a UserError naming the row)."""
    chosen_raw = _value(rec, mapping["chosen"], row, "chosen")
    rejected_raw = _value(rec, mapping["rejected"], row, "rejected")
    if fmt == "transcript_pairs":
        if isinstance(chosen_raw, str) and isinstance(rejected_raw, str):
            return _split_hh(chosen_raw, rejected_raw, row)
        return _split_transcript(_messages(chosen_raw, row, "chosen", "assistant"),
                                 _messages(rejected_raw, row, "rejected", "assistant"), row)
    prompt_raw = _value(rec, mapping["prompt"], row, "prompt")
    if fmt == "openai_dpo":
        if not isinstance(prompt_raw, dict) or not isinstance(prompt_raw.get("messages"), list):
            raise _bad(row, "'input' has no 'messages' list", 'OpenAI DPO rows look like {"input": {"messages": '
                       '[...]}, "preferred_output": [...], "non_preferred_output": [...]}.')
        prompt_raw = prompt_raw["messages"]
    prompt = _messages(prompt_raw, row, "prompt", "user")
    system = str(rec.get(mapping["system"]) or "") if "system" in mapping else ""
    if system.strip() and not any(m["role"] == "system" for m in prompt):
        prompt = [{"role": "system", "content": system}] + prompt
    pair = _cut_answers(prompt, _messages(chosen_raw, row, "chosen", "assistant"),
                        _messages(rejected_raw, row, "rejected", "assistant"), row)
    if not pair.prompt or pair.prompt[-1]["role"] != "user":
        raise _bad(row, "the prompt does not end with a user turn", "The prompt is what the user asks: end it with a "
                   "user message (a leading system message is fine).")
    return pair


# ---------------------------------------------------------------- files
def normalize_pairs(table: Table, fmt: str, mapping: dict[str, str]) -> list[PreferencePair]:
    """Every record of the table as a PreferencePair (meta: source row, id, split when the file has them)."""
    pairs = []
    for row, rec in enumerate(table.records, 1):
        pair = pair_of(rec, fmt, mapping, row)
        for key in ("id", "split"):
            if isinstance(rec.get(key), (str, int)):
                pair.meta[key] = rec[key]
        pairs.append(pair)
    return pairs


def preference_from_table(table: Table, format: str | None = None, mapping: dict[str, str] | None = None
                          ) -> tuple[list[PreferencePair], dict]:
    """(pairs, info) of a table already read; info as ``load_conversations``'s, with kind 'preference'."""
    fmt, resolved = resolve_preference(table, format, mapping)
    pairs = normalize_pairs(table, fmt, resolved)
    info = {"format": fmt, "kind": "preference", "mapping": resolved, "columns": table.columns, "rows": len(pairs),
            "records": len(table.records), "file_type": table.file_type, "encoding": table.encoding,
            "notes": list(table.notes), "source": table.source, "num_labels": 0}
    return pairs, info


def load_preference(path, format: str | None = None, mapping: dict[str, str] | None = None
                    ) -> tuple[list[PreferencePair], dict]:
    """Read a preference file: (pairs, info)."""
    return preference_from_table(read_table(path), format, mapping)


def read_preference_split(path) -> list[PreferencePair]:
    """The pairs of a prepared dataset's split file (``datasets/<id>/splits/<split>.jsonl``)."""
    from pathlib import Path

    rows = []
    with open(Path(path), encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(PreferencePair.from_dict(json.loads(line)))
            except (json.JSONDecodeError, KeyError, TypeError):
                raise UserError(f"{path}, line {lineno}: not a preference pair (prompt, chosen, rejected). Prepare "
                                "the dataset again from the preference file.") from None
    return rows


def pair_conversation(pair: PreferencePair, side: str = "chosen") -> dict:
    """The pair as a conversation (prompt + one side), for checks that read conversations."""
    return {"messages": pair.prompt + getattr(pair, side), "meta": dict(pair.meta)}
