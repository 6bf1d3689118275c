"""SmartDataLoader: conversations -> token ids with labels on assistant tokens only, batches with packing.

How labels are found: the conversation is rendered once with the tokenizer's chat template; for every
assistant turn the template is also rendered up to that turn (``add_generation_prompt=True``), which tells
where the answer starts in the full text; the answer's characters plus the end-of-turn marker that follows
(``<|im_end|>``, the eos token, …) form a span. The full text is tokenised with offsets and a token is labelled
when it overlaps a span. So every assistant turn is learned and no user/system/template token is.

Truncation keeps the start of a conversation; when that would cut away every answer token, the window is
moved to end at the first answer instead (the prompt's beginning is cut). Rows left without any answer token
are dropped and counted, never silently kept: see ``encode_all``'s stats.

Per-turn ``weight``: an assistant turn with ``"weight": 0`` (OpenAI's fine-tuning format) is context only, never
learned. Tool turns: ``tool`` messages and assistant ``tool_calls`` are rendered by the model's chat template when
it supports them (an assistant tool call is learned: from the end of its generation prompt to its end marker);
a template that drops them is refused with a message naming the model (``check_tool_support``).

Documents (a conversation of one assistant turn and nothing else) are not truncated: ``encode_all`` cuts them
into max_seq_len windows with an overlap (``core/data/chunking.py``), every token learned once.

Packing: examples are concatenated into rows of at most ``max_seq_len`` tokens (best-fit decreasing, computed
once per example list so ``num_batches`` does not depend on the seed); ``position_ids`` restart at 0 for each
example and ``attention_mask`` is None, so transformers 5 (sdpa/eager) builds a block-diagonal causal mask from
the position ids (``masking_utils.find_packed_sequence_indices``). NOTE: that detection only happens when no
KV cache is used - call the model with ``use_cache=False`` on packed batches. The first token of each packed
example gets label -100 so no example is trained to predict the next example's first token.
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch

from core.errors import UserError

from .chunking import document_examples

IGNORE = -100
TOOL_KEYS = ("tool_calls", "tool_call_id", "name")  # message keys the chat template needs besides role/content
END_MARKERS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "</s>", "<|endoftext|>", "<|eot|>")


class SmartDataLoader:
    """Encode conversations for causal-LM training and batch them (see the module docstring)."""

    def __init__(self, tokenizer, system_prompt: str | None = None, max_seq_len: int = 512):
        self.tok = tokenizer
        self.system_prompt = system_prompt
        self.max_seq_len = int(max_seq_len)
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        specials = set(getattr(tokenizer, "all_special_tokens", []) or [])
        markers = [tokenizer.eos_token] if tokenizer.eos_token else []
        markers += [m for m in END_MARKERS if m in specials or m in tokenizer.get_vocab()]
        self.end_markers = sorted(set(markers), key=len, reverse=True)
        self._pack_cache: tuple[object, int, list[list[int]]] | None = None
        self.stats: dict = {}

    # ------------------------------------------------------------ encoding
    def messages(self, conv: dict) -> list[dict]:
        """The conversation's messages (role, content, tool fields) with the system prompt inserted when it has none."""
        msgs = [{"role": m["role"], "content": m["content"], **{k: m[k] for k in TOOL_KEYS if m.get(k)}}
                for m in conv["messages"]]
        if self.system_prompt and not any(m["role"] == "system" for m in msgs) and not _is_text(msgs):
            msgs = [{"role": "system", "content": self.system_prompt}] + msgs
        return msgs

    def _render(self, msgs: list[dict], generation_prompt: bool = False, tools: list | None = None) -> str:
        kwargs = {"tools": tools} if tools else {}
        return self.tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=generation_prompt, **kwargs)

    def _tool_call_span(self, msgs: list[dict], i: int, start: int, full: str,
                        tools: list | None) -> tuple[int, int] | None:
        """The span of an assistant tool-call turn: from its generation prompt's end to its end marker."""
        try:
            upto = self._render(msgs[:i + 1], tools=tools)
        except Exception:  # noqa: BLE001 - a template that cannot end on this turn: nothing safe to label
            return None
        if not full.startswith(upto) or len(upto) <= start:
            return None
        ends = [at + len(mk) for mk in self.end_markers if (at := full.find(mk, start, len(upto))) >= 0]
        return start, min(ends) if ends else len(upto.rstrip())  # the turn's first end marker closes it

    def _spans(self, msgs: list[dict], full: str, tools: list | None = None,
               weights: list | None = None) -> list[tuple[int, int]]:
        """Character spans (answer + end marker) of every learned assistant turn in the rendered text."""
        spans, cursor, last = [], 0, -1
        for i, m in enumerate(msgs):
            if m["role"] != "assistant":
                continue
            try:
                prefix = self._render(msgs[:i], generation_prompt=True, tools=tools) if i else ""
            except Exception:  # noqa: BLE001 - some templates refuse a prefix (e.g. must start with user)
                prefix = None
            if prefix is not None and full.startswith(prefix):
                cursor = max(cursor, len(prefix))
            else:  # the template re-renders earlier turns: step past their contents instead
                for prev in msgs[last + 1:i]:
                    pos = full.find(prev["content"], cursor) if prev["content"] else -1
                    cursor = pos + len(prev["content"]) if pos >= 0 else cursor
            last = i
            if weights is not None and weights[i] == 0:  # context only: step past it, learn nothing
                pos = full.find(m["content"], cursor) if m["content"] else -1
                cursor = pos + len(m["content"]) if pos >= 0 else cursor
                continue
            if m.get("tool_calls") and prefix is not None and full.startswith(prefix):
                span = self._tool_call_span(msgs, i, len(prefix), full, tools)
                if span is not None:
                    spans.append(span)
                    cursor = span[1]
                    continue
            content = m["content"]
            if not content.strip():
                continue
            pos = full.find(content, cursor)
            if pos < 0:  # templates may strip the content
                content = content.strip()
                pos = full.find(content, cursor)
            if pos < 0:
                continue
            end = pos + len(content)
            for marker in self.end_markers:
                if full.startswith(marker, end):
                    end += len(marker)
                    break
            spans.append((pos, end))
            cursor = end
        return spans

    @staticmethod
    def _label_by_offsets(ids: list[int], offsets, spans: list[tuple[int, int]]) -> list[int]:
        """A token is learned when its character range overlaps an answer span."""
        labels, k = [], 0
        for tid, (s, e) in zip(ids, offsets):
            while k < len(spans) and spans[k][1] <= s:
                k += 1
            inside = k < len(spans) and s < spans[k][1] and e > spans[k][0]
            labels.append(tid if inside else IGNORE)
        return labels

    def _tokenize_with_spans(self, full: str, spans: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
        if getattr(self.tok, "is_fast", False):
            enc = self.tok(full, add_special_tokens=False, return_offsets_mapping=True)
            return list(enc["input_ids"]), self._label_by_offsets(enc["input_ids"], enc["offset_mapping"], spans)
        ids, labels, pos = [], [], 0  # slow tokenizers: tokenise segment by segment
        for start, end in spans + [(len(full), len(full))]:
            for (a, b), learn in (((pos, start), False), ((start, end), True)):
                if b > a:
                    part = self.tok(full[a:b], add_special_tokens=False)["input_ids"]
                    ids += part
                    labels += part if learn else [IGNORE] * len(part)
            pos = end
        return ids, labels

    def _weights(self, conv: dict, msgs: list[dict]) -> list | None:
        """Per message of ``msgs``: its ``weight`` (None when absent); None when no turn has one."""
        raw = [m.get("weight") for m in conv["messages"]]
        if all(w is None for w in raw):
            return None
        return [None] * (len(msgs) - len(raw)) + raw  # an inserted system prompt leads

    def _rendered(self, conv: dict) -> tuple[str, list[tuple[int, int]], bool]:
        """(text to tokenise, answer spans, is a plain document)."""
        msgs = self.messages(conv)
        if _is_text(msgs):
            return msgs[0]["content"], [], True
        if not getattr(self.tok, "chat_template", None):
            raise UserError("This model's tokenizer has no chat template, so conversations cannot be formatted. "
                            "Choose an instruct/chat model (e.g. the default), or use plain-text data.")
        tools = conv.get("tools") or None
        row = conv.get("meta", {}).get("row", "?")
        try:
            full = self._render(msgs, tools=tools)
        except Exception as exc:  # noqa: BLE001 - jinja errors raised by the template itself (e.g. no system role)
            if any(m["role"] == "tool" or m.get("tool_calls") for m in msgs):
                raise UserError(tool_limit_message(self.tok, row, str(exc))) from None
            raise UserError(f"The model's chat template refused conversation row {row}: {exc}. Templates of some "
                            "models reject a system prompt or require user/assistant turns to alternate; remove "
                            "the system prompt or fix that row.") from None
        check_tool_support(self.tok, msgs, full, row)
        return full, self._spans(msgs, full, tools, self._weights(conv, msgs)), False

    def _finish_doc(self, ids: list[int]) -> tuple[list[int], list[int]]:
        """A plain document: every token is learned, eos appended."""
        ids = list(ids) + ([self.eos_id] if self.eos_id is not None else [])
        return ids, list(ids)

    def _encode_full(self, conv: dict) -> tuple[list[int], list[int]]:
        text, spans, is_doc = self._rendered(conv)
        if is_doc:
            return self._finish_doc(self.tok(text, add_special_tokens=False)["input_ids"])
        return self._tokenize_with_spans(text, spans)

    def _encode_many(self, convs: list[dict], chunk: int = 512) -> list[tuple[list[int], list[int]]]:
        """``_encode_full`` for many conversations, tokenising in batches (fast tokenizers)."""
        if not getattr(self.tok, "is_fast", False):
            return [self._encode_full(c) for c in convs]
        out = []
        for start in range(0, len(convs), chunk):
            rendered = [self._rendered(c) for c in convs[start:start + chunk]]
            enc = self.tok([r[0] for r in rendered], add_special_tokens=False, return_offsets_mapping=True)
            for (text, spans, is_doc), ids, offsets in zip(rendered, enc["input_ids"], enc["offset_mapping"]):
                out.append(self._finish_doc(ids) if is_doc
                           else (list(ids), self._label_by_offsets(ids, offsets, spans)))
        return out

    def _truncate(self, ids: list[int], labels: list[int]) -> tuple[list[int], list[int], dict]:
        """Fit into max_seq_len without silently dropping every answer token; flags say what was cut."""
        n, limit = len(ids), self.max_seq_len
        flags = {"truncated": False, "answer_truncated": False, "prompt_truncated": False}
        if n <= limit:
            return ids, labels, flags
        flags["truncated"] = True
        learned = [j for j, lab in enumerate(labels) if lab != IGNORE]
        if not learned or learned[0] < limit:
            start = 0
        else:  # keep the first answer: end the window just after it (or start at it when it is too long)
            a0 = learned[0]
            a1 = a0
            while a1 + 1 < n and labels[a1 + 1] != IGNORE:
                a1 += 1
            start = a0 if a1 - a0 + 1 > limit else a1 + 1 - limit
            flags["prompt_truncated"] = True
        kept = sum(1 for j in learned if start <= j < start + limit)
        flags["answer_truncated"] = kept < len(learned)
        return ids[start:start + limit], labels[start:start + limit], flags

    def _encode(self, conv: dict, full: tuple[list[int], list[int]] | None = None) -> tuple[dict, dict]:
        ids, labels = full if full is not None else self._encode_full(conv)
        ids, labels, flags = self._truncate(ids, labels)
        return {"input_ids": ids, "labels": labels}, flags

    def encode(self, conv: dict) -> dict:
        """``{"input_ids", "labels"}`` of one conversation (labels -100 except assistant tokens and their end)."""
        return self._encode(conv)[0]

    def encode_all(self, convs: list[dict]) -> tuple[list[dict], dict]:
        """Encode many; documents become overlapping windows; rows with no answer token left are dropped (stats)."""
        examples: list[dict] = []
        counts = {"truncated": 0, "answer_truncated": 0, "prompt_truncated": 0}
        dropped, cut_rows, docs = [], [], []
        for i, (conv, full) in enumerate(zip(convs, self._encode_many(convs))):
            if _is_text(self.messages(conv)):
                docs.append(full[0])  # chunked below, never truncated
                continue
            ex, flags = self._encode(conv, full)
            rid = conv.get("meta", {}).get("row", i + 1)
            for key, hit in flags.items():
                counts[key] += hit
            if flags["answer_truncated"]:
                cut_rows.append(rid)
            if all(lab == IGNORE for lab in ex["labels"]):
                dropped.append(rid)
                continue
            examples.append(ex)
        chunks, doc_stats = document_examples(docs, self.max_seq_len)
        examples += chunks
        lengths = [len(e["input_ids"]) for e in examples]
        self.stats = {"rows": len(convs), "examples": len(examples), "dropped_no_answer": len(dropped),
                      "dropped_rows": dropped[:50], **counts, "answer_truncated_rows": cut_rows[:50],
                      "tokens": sum(lengths), "label_tokens": sum(sum(lab != IGNORE for lab in e["labels"])
                                                                  for e in examples),
                      "max_len": max(lengths, default=0), "mean_len": round(sum(lengths) / max(1, len(lengths)), 1),
                      "max_seq_len": self.max_seq_len, **doc_stats}
        return examples, dict(self.stats)

    # ------------------------------------------------------------ batching
    def pack(self, examples: list[dict]) -> list[list[int]]:
        """Rows of example indices, each row's total length <= max_seq_len (best-fit decreasing, cached)."""
        cache = self._pack_cache
        if cache is not None and cache[0] is examples and cache[1] == len(examples):
            return cache[2]
        limit = self.max_seq_len
        lengths = [min(len(e["input_ids"]), limit) for e in examples]
        free_bins: list[list[int]] = [[] for _ in range(limit + 1)]  # free capacity -> row ids
        free_count = np.zeros(limit + 1, dtype=np.int64)
        rows: list[list[int]] = []
        for i in sorted(range(len(examples)), key=lambda j: (-lengths[j], j)):
            size = lengths[i]
            fits = np.flatnonzero(free_count[size:])
            if fits.size:
                free = size + int(fits[0])
                row = free_bins[free].pop()
                free_count[free] -= 1
            else:
                free, row = limit, len(rows)
                rows.append([])
            rows[row].append(i)
            free_bins[free - size].append(row)
            free_count[free - size] += 1
        self._pack_cache = (examples, len(examples), rows)
        return rows

    def num_batches(self, examples: list[dict], batch_size: int, packing: bool = True) -> int:
        """How many batches ``batches`` yields for these arguments (any seed, epoch)."""
        units = len(self.pack(examples)) if packing else len(examples)
        return math.ceil(units / batch_size)

    def _plan(self, examples: list[dict], batch_size: int, packing: bool, shuffle: bool, seed: int,
              epoch: int) -> list[list[list[int]]]:
        """Batches as lists of rows, each row a list of example indices."""
        rng = np.random.default_rng([seed, epoch])
        if packing:
            rows = self.pack(examples)
            order = rng.permutation(len(rows)).tolist() if shuffle else list(range(len(rows)))
            return [[rows[r] for r in order[b:b + batch_size]] for b in range(0, len(order), batch_size)]
        n = len(examples)
        if not shuffle:
            return [[[i] for i in range(b, min(n, b + batch_size))] for b in range(0, n, batch_size)]
        order = rng.permutation(n).tolist()
        chunk = batch_size * 32  # length grouping inside random mega-batches keeps padding low and order random
        batches = []
        for c in range(0, n, chunk):
            part = sorted(order[c:c + chunk], key=lambda i: -len(examples[i]["input_ids"]))
            batches += [[[i] for i in part[b:b + batch_size]] for b in range(0, len(part), batch_size)]
        return [batches[j] for j in rng.permutation(len(batches)).tolist()]

    def batches(self, examples: list[dict], batch_size: int, *, packing: bool = True, shuffle: bool = True,
                seed: int = 42, epoch: int = 0, start: int = 0) -> Iterator[dict]:
        """Yield padded (right) tensor batches; deterministic in (seed, epoch); skip the first ``start``."""
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        for plan in self._plan(examples, batch_size, packing, shuffle, seed, epoch)[start:]:
            yield self._collate(examples, plan, packing)

    def _collate(self, examples: list[dict], plan: list[list[int]], packing: bool) -> dict:
        rows_ids, rows_labels, rows_pos = [], [], []
        for row in plan:
            ids, labels, pos = [], [], []
            for i in row:
                ex_ids = examples[i]["input_ids"][: self.max_seq_len]
                ex_labels = list(examples[i]["labels"][: self.max_seq_len])
                if packing and ex_labels:
                    ex_labels[0] = IGNORE  # never learn "the first token of the next example"
                ids += ex_ids
                labels += ex_labels
                pos += range(len(ex_ids))
            rows_ids.append(ids)
            rows_labels.append(labels)
            rows_pos.append(pos)
        width = max(len(r) for r in rows_ids)
        shape = (len(plan), width)
        input_ids = torch.full(shape, self.pad_id, dtype=torch.long)
        labels = torch.full(shape, IGNORE, dtype=torch.long)
        mask = torch.zeros(shape, dtype=torch.long)
        position_ids = torch.arange(width, dtype=torch.long).repeat(len(plan), 1)
        for r, (ids, labs, pos) in enumerate(zip(rows_ids, rows_labels, rows_pos)):
            n = len(ids)
            input_ids[r, :n] = torch.tensor(ids, dtype=torch.long)
            labels[r, :n] = torch.tensor(labs, dtype=torch.long)
            mask[r, :n] = 1
            position_ids[r, :n] = torch.tensor(pos, dtype=torch.long)
            position_ids[r, n:] = torch.arange(width - n)  # padding forms its own block when packed
        lengths = torch.tensor([len(r) for r in rows_ids], dtype=torch.long)  # lets the trainer trim padding
        return {"input_ids": input_ids, "labels": labels, "attention_mask": None if packing else mask,
                "position_ids": position_ids, "row_lengths": lengths}


def _is_text(msgs: list[dict]) -> bool:
    return len(msgs) == 1 and msgs[0]["role"] == "assistant" and not msgs[0].get("tool_calls")


def model_name(tok) -> str:
    """The tokenizer's model name for messages (its path or Hub id)."""
    return str(getattr(tok, "name_or_path", "") or "this model")


def tool_limit_message(tok, row, detail: str) -> str:
    """Why a conversation with tool turns cannot be used with this model, and what to do."""
    return (f"Conversation row {row} has tool turns (a 'tool' message or assistant 'tool_calls'), but the chat "
            f"template of {model_name(tok)} does not support them ({detail}). Choose a base model whose chat template "
            "handles tools (e.g. Qwen2.5-Instruct), or remove the tool turns from the data.")


def check_tool_support(tok, msgs: list[dict], full: str, row) -> None:
    """Refuse tool turns the template ignored: every tool call's name and every tool result must be rendered."""
    calls = [c for m in msgs for c in m.get("tool_calls") or []]
    results = [m["content"] for m in msgs if m["role"] == "tool"]
    if not calls and not results:
        return
    template = str(getattr(tok, "chat_template", "") or "")
    if "tool" not in template:
        raise UserError(tool_limit_message(tok, row, "its template never mentions tools"))
    for call in calls:
        name = (call.get("function") or {}).get("name") if isinstance(call, dict) else None
        if not name or name not in full:
            raise UserError(tool_limit_message(tok, row, f"the call to {name!r} is not rendered"))
    for text in results:
        if text.strip() and text.strip() not in full:
            raise UserError(tool_limit_message(tok, row, "a tool result is not rendered"))
