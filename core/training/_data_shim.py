"""TEMPORARY stand-in for ``core.data.load_split`` and ``core.data.loader.SmartDataLoader``.

Used by the trainer ONLY while ``core.data`` cannot be imported (the data helper is still writing it). It follows
the preamble's interface closely enough for the training tests (JSONL files of {"messages": [...]}, padding and
packing, deterministic shuffling, ``start`` skipping). Delete this file once core.data has landed.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Iterator, Optional

import torch

IGNORE = -100


def load_split(data: str, split: str) -> list[dict]:
    """Conversations of a JSONL file: a seeded 90/10 train/val split (test = val)."""
    path = Path(data)
    if path.is_dir():
        path = path / "splits" / f"{split}.jsonl"
        return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    order = list(range(len(rows)))
    random.Random(42).shuffle(order)
    n_val = max(1, len(rows) // 10) if len(rows) > 1 else 0
    val = set(order[:n_val])
    if split == "train":
        return [r for i, r in enumerate(rows) if i not in val]
    return [r for i, r in enumerate(rows) if i in val]


class SmartDataLoader:
    """ChatML encoding with assistant-only labels, right padding or packing, deterministic batches."""

    def __init__(self, tokenizer, system_prompt: Optional[str] = None, max_seq_len: int = 512):
        self.tok, self.system_prompt, self.max_seq_len = tokenizer, system_prompt, max_seq_len
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def encode(self, conv: dict) -> dict:
        msgs = list(conv["messages"])
        if self.system_prompt and not any(m["role"] == "system" for m in msgs):
            msgs = [{"role": "system", "content": self.system_prompt}] + msgs
        ids, labels = [], []
        for m in msgs:
            head = self.tok.encode(f"<|im_start|>{m['role']}\n", add_special_tokens=False)
            body = self.tok.encode(m["content"] + "<|im_end|>", add_special_tokens=False)
            tail = self.tok.encode("\n", add_special_tokens=False)
            ids += head + body + tail
            labels += [IGNORE] * len(head) + (body if m["role"] == "assistant" else [IGNORE] * len(body)) + \
                [IGNORE] * len(tail)
        return {"input_ids": ids[: self.max_seq_len], "labels": labels[: self.max_seq_len]}

    def encode_all(self, convs: list[dict]) -> tuple[list[dict], dict]:
        examples = [self.encode(c) for c in convs]
        kept = [e for e in examples if any(x != IGNORE for x in e["labels"][1:])]
        return kept, {"examples": len(kept), "dropped": len(examples) - len(kept)}

    def _rows(self, examples: list[dict], packing: bool) -> list[list[dict]]:
        if not packing:
            return [[e] for e in examples]
        rows, cur, size = [], [], 0
        for e in examples:
            if cur and size + len(e["input_ids"]) > self.max_seq_len:
                rows.append(cur)
                cur, size = [], 0
            cur.append(e)
            size += len(e["input_ids"])
        if cur:
            rows.append(cur)
        return rows

    def num_batches(self, examples: list[dict], batch_size: int, packing: bool = True) -> int:
        return -(-len(self._rows(examples, packing)) // batch_size)

    def batches(self, examples: list[dict], batch_size: int, *, packing: bool = True, shuffle: bool = True,
                seed: int = 42, epoch: int = 0, start: int = 0) -> Iterator[dict]:
        order = list(range(len(examples)))
        if shuffle:
            random.Random(seed * 1000 + epoch).shuffle(order)
        rows = self._rows([examples[i] for i in order], packing)
        for b in range(start, -(-len(rows) // batch_size)):
            chunk = rows[b * batch_size:(b + 1) * batch_size]
            width = max(sum(len(e["input_ids"]) for e in row) for row in chunk)
            ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
            lab = torch.full((len(chunk), width), IGNORE, dtype=torch.long)
            pos = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for r, row in enumerate(chunk):
                c = 0
                for e in row:
                    n = len(e["input_ids"])
                    ids[r, c:c + n] = torch.tensor(e["input_ids"])
                    lab[r, c:c + n] = torch.tensor(e["labels"])
                    pos[r, c:c + n] = torch.arange(n)
                    mask[r, c:c + n] = 1
                    c += n
            yield {"input_ids": ids, "labels": lab, "position_ids": pos,
                   "attention_mask": None if packing else mask}
