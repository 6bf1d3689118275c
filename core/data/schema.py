"""Detect the data format of a table and normalise it to conversations.

A conversation is ``{"messages": [{"role": "system|user|assistant", "content": str}], "meta": {...}}``;
``meta`` holds ``row`` (1-based source row), ``id`` when the source has one, ``label`` for classification
data (or the first intent/label-like column of other data, used to stratify splits), ``split`` when the source
had splits, and ``fields`` (other short scalar columns). Plain text documents become a single assistant turn.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Iterable

from core.errors import UserError

from .findings import note
from .io import Table, read_table

FORMATS = ("alpaca", "qa", "prompt_completion", "messages", "sharegpt", "classification", "text")
# field -> accepted column names, most specific first (matched case-insensitively)
SYNONYMS: dict[str, tuple[str, ...]] = {
    "instruction": ("instruction", "instructions"),
    "input": ("input",),
    "output": ("output",),
    "question": ("question", "query", "instruction", "prompt", "q", "user", "input"),
    "answer": ("answer", "response", "reply", "a", "assistant", "output"),
    "prompt": ("prompt",),
    "completion": ("completion",),
    "messages": ("messages", "turns", "conversation", "dialog", "dialogue", "chat"),
    "conversations": ("conversations", "conversation", "turns", "items"),
    "text": ("text", "sentence", "utterance", "content", "document", "body", "passage", "message", "query", "question"),
    "label": ("label", "intent", "category", "class", "labels", "target"),
    "system": ("system", "system_prompt"),
    "history": ("history",),
    "instances": ("instances",),
}
REQUIRED = {"alpaca": ("instruction", "output"), "qa": ("question", "answer"),
            "prompt_completion": ("prompt", "completion"), "messages": ("messages",),
            "sharegpt": ("conversations",), "classification": ("text", "label"), "text": ("text",)}
OPTIONAL = {"alpaca": ("input", "system", "history"), "qa": ("system",), "prompt_completion": ("system",),
            "messages": (), "sharegpt": ("system",), "classification": (), "text": ()}
ROLE_MAP = {"system": "system", "user": "user", "human": "user", "customer": "user", "assistant": "assistant",
            "gpt": "assistant", "bot": "assistant", "model": "assistant", "chatgpt": "assistant", "agent": "assistant",
            "bard": "assistant", "bing": "assistant", "tool": "tool", "function": "tool", "observation": "tool"}
EXPECTED_HELP = ("instruction+output[+input] (alpaca); question+answer, query+response or instruction+response (qa); "
                 "prompt+completion; messages (list of role/content); conversations (ShareGPT from/value); "
                 "text+label (classification); text (plain documents); prompt+chosen+rejected (preference pairs)")
_META_SKIP_LEN = 200
# A text column this long on average (and this many times longer than any other prose column) holds documents.
DOC_FIELD_CHARS = 2000
DOC_FIELD_RATIO = 10


# ---------------------------------------------------------------- column helpers
def _find(columns: Iterable[str], field: str, used: set[str] = frozenset()) -> str | None:
    """The first column whose lower-cased name is a synonym of ``field`` (and not already used)."""
    lower = {c.lower(): c for c in columns if c not in used}
    for name in SYNONYMS.get(field, (field,)):
        if name in lower:
            return lower[name]
    return None


def _first_value(records: list[dict], column: str) -> Any:
    for rec in records[:200]:
        value = rec.get(column)
        if value not in (None, "", []):
            return value
    return None


def _list_of_dicts_with(value: Any, keys: tuple[str, str]) -> bool:
    return (isinstance(value, list) and bool(value) and isinstance(value[0], dict)
            and all(k in value[0] for k in keys))


def _structured_columns(table: Table) -> dict[str, str]:
    """Chat-list columns: {'messages': col} (role/content), {'conversations': col} (from/value), 'instances'."""
    found: dict[str, str] = {}
    for col in table.columns:
        value = _first_value(table.records, col)
        if _list_of_dicts_with(value, ("role", "content")):
            found.setdefault("messages", col)
        elif _list_of_dicts_with(value, ("from", "value")):
            found.setdefault("conversations", col)
        elif _list_of_dicts_with(value, ("output",)) and col.lower() == "instances":
            found.setdefault("instances", col)
    return found


def detect_format(table: Table) -> tuple[str, dict[str, str]]:
    """(format, {field: column}) for a table, or UserError listing what was found and a suggested mapping."""
    cols = table.columns
    structured = _structured_columns(table)
    if "messages" in structured:
        return "messages", {"messages": structured["messages"]}
    if "conversations" in structured:
        mapping = {"conversations": structured["conversations"]}
        if _find(cols, "system"):
            mapping["system"] = _find(cols, "system")
        return "sharegpt", mapping
    if "instances" in structured and _find(cols, "instruction"):
        return "alpaca", {"instruction": _find(cols, "instruction"), "instances": structured["instances"]}
    for fmt in ("alpaca", "prompt_completion", "qa", "classification", "text"):
        mapping = _match(fmt, cols)
        if mapping and _plausible(fmt, mapping, table):
            return fmt, mapping
    raise UserError(no_format_message(table))


def _match(fmt: str, columns: list[str]) -> dict[str, str] | None:
    """Resolve the required (and optional) fields of ``fmt`` to distinct columns, or None."""
    used: set[str] = set()
    mapping: dict[str, str] = {}
    for field in REQUIRED[fmt]:
        col = _find(columns, field, used)
        if col is None:
            return None
        mapping[field] = col
        used.add(col)
    for field in OPTIONAL[fmt]:
        col = _find(columns, field, used)
        if col:
            mapping[field] = col
            used.add(col)
    return mapping


def _plausible(fmt: str, mapping: dict[str, str], table: Table) -> bool:
    """Reject matches whose columns hold lists/dicts where text is needed (e.g. MT-Bench 'turns')."""
    for field, col in mapping.items():
        if field in ("messages", "conversations", "history", "instances"):
            continue
        if isinstance(_first_value(table.records, col), (list, dict)):
            return False
    if fmt == "text":  # a text column beside other prose columns is probably a pair we could not name,
        others = [c for c in table.columns if c != mapping["text"] and _column_profile(table, c)[2] == "str"
                  and _column_profile(table, c)[3] >= 0.5]
        return not others or table.file_type == "txt" or _long_field(table, mapping["text"], others)
    return True


def _long_field(table: Table, column: str, others: list[str]) -> bool:
    """A document column (a wiki page, a manual's chapter) beside short prose such as a title: still documents."""
    mean = _column_profile(table, column)[0]
    return mean >= DOC_FIELD_CHARS and all(mean >= DOC_FIELD_RATIO * _column_profile(table, c)[0] for c in others)


def _column_profile(table: Table, col: str) -> tuple[float, int, str, float]:
    """(mean length, distinct values, type name, share of values with a space) over a sample."""
    values = [r.get(col) for r in table.records[:2000]]
    kind = type(next((v for v in values if v not in (None, "")), "")).__name__
    strings = [v for v in values if isinstance(v, str)]
    avg = sum(map(len, strings)) / max(1, len(strings))
    spaced = sum(" " in v.strip() for v in strings) / max(1, len(strings))
    return avg, len(set(strings)), kind, spaced


def suggest_mapping(table: Table) -> dict[str, str] | None:
    """A best-guess mapping for a table no format fits (shown in the error message)."""
    profiles = {c: _column_profile(table, c) for c in table.columns}
    strings = [c for c, p in profiles.items() if p[2] == "str"]
    prose = [c for c in strings if profiles[c][3] >= 0.5]  # natural-language columns contain spaces
    if "instances" in _structured_columns(table) or not prose:
        return None
    n = min(len(table.records), 2000)
    longest = max(prose, key=lambda c: profiles[c][0])
    labels = [c for c in strings if c != longest and profiles[c][1] <= max(2, 0.5 * n) and profiles[c][0] < 40
              and (profiles[c][3] < 0.5 or profiles[c][0] < 15)]  # labels are short, rarely sentences
    if labels:
        return {"text": longest, "label": min(labels, key=lambda c: profiles[c][1])}
    others = [c for c in prose if c != longest]
    return {"question": others[0], "answer": longest} if others else {"text": longest}


def mapping_hint(mapping: dict[str, str]) -> str:
    """The mapping as CLI flags and as a Python dict."""
    flags = " ".join(f"--map {f}={c}" for f, c in mapping.items())
    return f"`{flags}` (CLI) or mapping={mapping!r}"


def no_format_message(table: Table) -> str:
    """The 'nothing fits' message: columns found, names expected, a suggested mapping."""
    name = table.source.rsplit("/", 1)[-1] or "the file"
    cols = ", ".join(table.columns) or "(none)"
    parts = [f"Could not tell the data format of {name}. Columns found: {cols}. "
             f"Expected column names: {EXPECTED_HELP}."]
    list_cols = [c for c in table.columns if isinstance(_first_value(table.records, c), list)]
    for col in list_cols:
        value = _first_value(table.records, col)
        if all(isinstance(v, str) for v in value):
            parts.append(f"Column {col!r} holds lists of plain strings with no roles (e.g. prompts only, no answers): "
                         "that is not training data as is.")
        elif isinstance(value[0], dict):
            parts.append(f"Column {col!r} holds lists of objects with keys {sorted(value[0])}: chat turns need "
                         "role/content (messages) or from/value (ShareGPT).")
    suggestion = suggest_mapping(table)
    if suggestion:
        parts.append(f"If the columns mean what their contents suggest, map them: {mapping_hint(suggestion)}.")
    else:
        parts.append("Map the columns explicitly, e.g. `--map question=<column> --map answer=<column>`.")
    return " ".join(parts)


# ---------------------------------------------------------------- explicit mappings
def resolve_mapping(table: Table, fmt: str | None, mapping: dict[str, str] | None) -> tuple[str, dict[str, str]]:
    """Apply a user's ``format`` and/or ``{field: column}`` mapping; missing required fields are found by name."""
    if fmt is not None and fmt not in FORMATS:
        raise UserError(f"Unknown format {fmt!r}; choose one of {', '.join(FORMATS)} (or leave it out to detect).")
    if not mapping:
        if fmt is None:
            return detect_format(table)
        found = _match(fmt, table.columns) or {}
        structured = _structured_columns(table)
        if fmt == "messages" and "messages" in structured:
            found = {"messages": structured["messages"]}
        if fmt == "sharegpt" and "conversations" in structured:
            found = {"conversations": structured["conversations"]}
        if not all(f in found for f in REQUIRED[fmt]):
            need = " + ".join(REQUIRED[fmt])
            raise UserError(f"--format {fmt} needs columns for {need}, but the columns are: "
                            f"{', '.join(table.columns)}. Name them with a mapping, e.g. "
                            f"{mapping_hint({f: '<column>' for f in REQUIRED[fmt]})}.")
        return fmt, found
    mapping = dict(mapping)
    missing = [c for c in mapping.values() if c not in table.columns]
    if missing:
        raise UserError(f"The mapping names column(s) {', '.join(map(repr, missing))} that the file does not have. "
                        f"Columns found: {', '.join(table.columns)}.")
    known = set(SYNONYMS)
    unknown = [f for f in mapping if f not in known]
    if unknown:
        raise UserError(f"Unknown mapping field(s) {', '.join(unknown)}; fields are: {', '.join(sorted(known))}.")
    if "instruction" in mapping and "instances" in mapping and fmt in (None, "alpaca"):
        return "alpaca", mapping
    order = [fmt] if fmt else ["alpaca", "prompt_completion", "qa", "messages", "sharegpt", "classification", "text"]
    for candidate in order:
        completed = _complete(candidate, mapping, table.columns)
        if completed:
            return candidate, completed
    want = fmt or "a format"
    raise UserError(f"The mapping {mapping!r} does not give every field {want} needs (and the missing ones could not "
                    "be found by name). Required fields per format: "
                    + "; ".join(f"{f}: {'+'.join(r)}" for f, r in REQUIRED.items()) + ".")


def _complete(fmt: str, mapping: dict[str, str], columns: list[str]) -> dict[str, str] | None:
    """The mapping with the format's missing required fields found by name, if it concerns this format at all."""
    fields = set(REQUIRED[fmt]) | set(OPTIONAL[fmt])
    if not set(mapping) & fields:
        return None
    used = set(mapping.values())
    out = dict(mapping)
    for field in REQUIRED[fmt]:
        if field not in out:
            col = _find(columns, field, used)
            if col is None:
                return None
            out[field] = col
            used.add(col)
    return out


# ---------------------------------------------------------------- normalisation
def _text(value: Any) -> str:
    """Cell -> text: None -> '', numbers -> str, OpenAI content parts -> joined text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "\n".join(_text(p.get("text") if isinstance(p, dict) else p) for p in value)
    return str(value)


def _role(raw: Any, row: int) -> str:
    role = ROLE_MAP.get(str(raw).strip().lower())
    if role is None:
        raise UserError(f"Row {row}: unknown chat role {raw!r}. Roles must be system, user, assistant or tool "
                        "(ShareGPT: system, human, gpt).")
    return role


def _weight(turn: dict, role: str, row: int) -> dict:
    """``{"weight": 0|1}`` when the turn has one (OpenAI: 0 = context only, not learned); else {}."""
    if "weight" not in turn or turn["weight"] is None:
        return {}
    value = turn["weight"]
    if role != "assistant":
        raise UserError(f"Row {row}: a {role} turn has a 'weight'; only assistant turns are weighted "
                        "(0 = do not learn this answer, 1 = learn it). Remove the weight from that turn.")
    if isinstance(value, bool) or value not in (0, 1):
        raise UserError(f"Row {row}: an assistant turn has weight {value!r}; a weight must be 0 (do not learn "
                        "this answer) or 1 (learn it).")
    return {"weight": int(value)}


def _tool_call(call: Any, row: int) -> dict:
    """An OpenAI tool call with its JSON-string arguments parsed (chat templates render them as objects)."""
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not function.get("name"):
        raise UserError(f"Row {row}: a tool call needs a function with a name, like {{\"type\": \"function\", "
                        f"\"function\": {{\"name\": ..., \"arguments\": ...}}}}; found {call!r:.80}.")
    args = function.get("arguments")
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            raise UserError(f"Row {row}: the arguments of the call to {function['name']!r} are not valid JSON; "
                            "write them as a JSON object.") from None
    return {**call, "function": {**function, "arguments": args}}


def _tool_fields(turn: dict, role: str, row: int) -> dict:
    """Tool calls of an assistant turn, and the call id / name of a tool result, when present."""
    out: dict[str, Any] = {}
    calls = turn.get("tool_calls")
    if calls:
        if role != "assistant" or not isinstance(calls, list):
            raise UserError(f"Row {row}: 'tool_calls' must be a list on an assistant turn; found it on a {role} "
                            "turn or as another type.")
        out["tool_calls"] = [_tool_call(c, row) for c in calls]
    if role == "tool":
        out.update({k: turn[k] for k in ("tool_call_id", "name") if turn.get(k)})
    return out


def _turns(value: Any, role_key: str, text_key: str, row: int) -> list[dict]:
    if not isinstance(value, list):
        raise UserError(f"Row {row}: the chat column should hold a list of turns, found {type(value).__name__}.")
    out = []
    for turn in value:
        if not isinstance(turn, dict) or role_key not in turn:
            raise UserError(f"Row {row}: every turn needs {role_key!r} and {text_key!r} keys; found {turn!r:.80}.")
        if str(turn[role_key]).strip().lower() == "function_call":  # LLaMA-Factory's ShareGPT tool call
            out.append(_sharegpt_call(turn.get(text_key), row))
            continue
        role = _role(turn[role_key], row)
        out.append({"role": role, "content": _text(turn.get(text_key)), **_weight(turn, role, row),
                    **_tool_fields(turn, role, row)})
    return out


def _sharegpt_call(value: Any, row: int) -> dict:
    """A ShareGPT ``function_call`` turn (JSON {"name", "arguments"}) as an assistant turn with a tool call."""
    try:
        call = json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError:
        call = None
    if not isinstance(call, dict) or not call.get("name"):
        raise UserError(f"Row {row}: a function_call turn must hold JSON like {{\"name\": ..., \"arguments\": "
                        f"{{...}}}}; found {value!r:.80}.")
    function = {"name": call["name"], "arguments": call.get("arguments") or {}}
    return {"role": "assistant", "content": "", "tool_calls": [_tool_call({"type": "function", "function": function},
                                                                          row)]}


def _prefix(system: str) -> list[dict]:
    return [{"role": "system", "content": system}] if system.strip() else []


def _history(value: Any) -> list[dict]:
    """LLaMA-Factory style history: [[question, answer], ...]."""
    out: list[dict] = []
    for pair in value or []:
        if isinstance(pair, (list, tuple)) and len(pair) == 2:
            out += [{"role": "user", "content": _text(pair[0])}, {"role": "assistant", "content": _text(pair[1])}]
    return out


def _builders() -> dict[str, Callable[[dict, dict, int], list[list[dict]]]]:
    """Per format: (record, mapping, row) -> one or more message lists."""
    def g(rec, m, f):
        return _text(rec.get(m[f])) if f in m else ""

    def alpaca(rec, m, row):
        head = _prefix(g(rec, m, "system")) + _history(rec.get(m["history"]) if "history" in m else None)
        if "instances" in m:
            out = []
            for inst in rec.get(m["instances"]) or []:
                inp = _text(inst.get("input"))
                user = g(rec, m, "instruction") + (f"\n\n{inp}" if inp.strip() else "")
                out.append(head + [{"role": "user", "content": user},
                                   {"role": "assistant", "content": _text(inst.get("output"))}])
            return out
        inp = g(rec, m, "input")
        user = g(rec, m, "instruction") + (f"\n\n{inp}" if inp.strip() else "")
        return [head + [{"role": "user", "content": user}, {"role": "assistant", "content": g(rec, m, "output")}]]

    def pair(q, a):
        return lambda rec, m, row: [_prefix(g(rec, m, "system")) + [{"role": "user", "content": g(rec, m, q)},
                                                                     {"role": "assistant", "content": g(rec, m, a)}]]

    def messages(rec, m, row):
        return [_turns(rec.get(m["messages"]), "role", "content", row)]

    def sharegpt(rec, m, row):
        return [_prefix(g(rec, m, "system")) + _turns(rec.get(m["conversations"]), "from", "value", row)]

    def text(rec, m, row):
        return [[{"role": "assistant", "content": g(rec, m, "text")}]]

    return {"alpaca": alpaca, "qa": pair("question", "answer"), "prompt_completion": pair("prompt", "completion"),
            "messages": messages, "sharegpt": sharegpt, "classification": pair("text", "label"), "text": text}


def _meta(rec: dict, mapping: dict[str, str], fmt: str, row: int) -> dict:
    meta: dict[str, Any] = {"row": row}
    used = set(mapping.values())
    id_col = _find(rec.keys(), "id") if "id" in {k.lower() for k in rec} else None
    if id_col and rec.get(id_col) not in (None, ""):
        meta["id"] = rec[id_col]
    label_col = mapping.get("label") if fmt == "classification" else _find([c for c in rec if c not in used], "label")
    if label_col and rec.get(label_col) not in (None, ""):
        meta["label"] = _text(rec[label_col])
    if isinstance(rec.get("split"), str):
        meta["split"] = rec["split"]
    fields = {k: v for k, v in rec.items() if k not in used and k != id_col and k != "split"
              and isinstance(v, (str, int, float, bool)) and len(str(v)) <= _META_SKIP_LEN}
    if fields:
        meta["fields"] = fields
    return meta


def normalize(table: Table, fmt: str, mapping: dict[str, str]) -> list[dict]:
    """Turn each record into conversation(s) of the given format."""
    build = _builders()[fmt]
    convs = []
    for row, rec in enumerate(table.records, 1):
        tools = rec.get("tools") if fmt == "messages" and isinstance(rec.get("tools"), list) else None
        for messages in build(rec, mapping, row):
            conv = {"messages": messages, "meta": _meta(rec, mapping, fmt, row)}
            if tools:  # OpenAI's per-row tool definitions, passed to the chat template
                conv["tools"] = tools
            convs.append(conv)
    return convs


def load_conversations(path, format: str | None = None, mapping: dict[str, str] | None = None
                       ) -> tuple[list[dict], dict]:
    """Read a file and normalise it: (conversations, info) where info has format, columns, rows, mapping, notes."""
    return conversations_from_table(read_table(path), format, mapping)


def conversations_from_table(table: Table, format: str | None = None, mapping: dict[str, str] | None = None
                             ) -> tuple[list[dict], dict]:
    """``load_conversations`` of a table already read; info's ``kind`` is 'document' for plain text, else 'chat'."""
    fmt, resolved = resolve_mapping(table, format, mapping)
    convs = normalize(table, fmt, resolved)
    if not convs:
        raise UserError(f"{table.source}: no conversations could be built from {len(table.records)} records; "
                        "check the mapping.")
    notes = list(table.notes)
    if fmt == "alpaca" and "instances" in resolved:
        notes.append(note("self_instruct", column=resolved["instances"]))
    chat_col = resolved.get("messages") or resolved.get("conversations")
    if chat_col and chat_col not in ("messages", "conversations"):
        notes.append(note("chat_column", column=chat_col))
    labels = sorted({c["meta"]["label"] for c in convs if "label" in c["meta"]})
    info = {"format": fmt, "kind": "document" if fmt == "text" else "chat", "mapping": resolved, "columns": table.columns, "rows": len(convs),
            "records": len(table.records), "file_type": table.file_type, "encoding": table.encoding,
            "notes": notes, "source": table.source, "num_labels": len(labels)}
    return convs, info
