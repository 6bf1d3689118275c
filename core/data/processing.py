"""AdvancedDataProcessor: clean, deduplicate, filter, mask personal data and split - each step reports its counts.

Every step takes and returns a list of conversations (never modifying its input) and appends
``{"op", "before", "after", ...}`` to ``self.operations``. Splits are reproducible for a given seed and
stratified by ``meta.label`` when the data has labels.
"""
from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Callable, Sequence

from core.errors import UserError

from .pii import Masker
from .quality import TokenCounter, conversation_keys, is_text_doc, near_duplicate_rows
from .text import clean_text

SPLITS = ("train", "val", "test")


SOURCE = "source"  # keep the splits the file itself defines (meta.split, e.g. CLINC150's train/val/test)


def source_split_name(name: str) -> str | None:
    """A source split name -> train/val/test, or None (e.g. CLINC150's oos_* parts map by their suffix)."""
    low = name.lower()
    for part, hints in (("train", ("train",)), ("val", ("val", "dev", "valid")), ("test", ("test", "eval"))):
        if any(h in low for h in hints):
            return part
    return None


def parse_split(value: str | Sequence[float]) -> tuple[float, float, float] | str:
    """'0.8,0.1,0.1' or a 3-sequence -> fractions that sum to 1; 'source' stays 'source'; else UserError."""
    if isinstance(value, str) and value.strip().lower() == SOURCE:
        return SOURCE
    try:
        parts = [float(x) for x in (value.split(",") if isinstance(value, str) else value)]
    except (TypeError, ValueError):
        raise UserError(f"--split {value!r} is not three numbers; write it like 0.8,0.1,0.1.") from None
    problems = []
    if len(parts) != 3:
        problems.append(f"it has {len(parts)} numbers instead of 3 (train,val,test)")
    if any(p < 0 or math.isnan(p) for p in parts):
        problems.append("fractions must not be negative")
    if len(parts) == 3 and abs(sum(parts) - 1) > 1e-6:
        problems.append(f"they sum to {sum(parts):g}, not 1")
    if parts and parts[0] <= 0:
        problems.append("the train fraction must be above 0")
    if problems:
        raise UserError(f"--split {value!r}: " + "; ".join(problems) + ". Example: 0.8,0.1,0.1 (or 'source' to keep "
                        "the file's own splits).")
    return tuple(parts)  # type: ignore[return-value]


def _half_up(x: float) -> int:
    return math.floor(x + 0.5)


def requested_counts(n: int, fractions: Sequence[float]) -> dict[str, int]:
    """Rows per split that the fractions ask for: validation and test rounded half up, train the rest."""
    n_val, n_test = _half_up(n * fractions[1]), _half_up(n * fractions[2])
    n_test = min(n_test, n - n_val)
    return {"train": n - n_val - n_test, "val": n_val, "test": n_test}


def _largest_remainder(sizes: list[int], frac: float, caps: list[int], target: int,
                       avoid: list[int]) -> list[int]:
    """Per-group counts near size*frac (floor, or floor+1 for the largest remainders) summing to target."""
    exact = [n * frac for n in sizes]
    got = [min(math.floor(e), cap) for e, cap in zip(exact, caps)]
    order = sorted(range(len(sizes)), key=lambda i: (-(exact[i] - math.floor(exact[i])), avoid[i], i))
    remaining = target - sum(got)
    for i in order:
        if remaining <= 0:
            break
        if got[i] < caps[i]:
            got[i] += 1
            remaining -= 1
    return got


def allocate_split(sizes: list[int], fractions: Sequence[float]) -> list[tuple[int, int]]:
    """(val, test) rows per group: the totals are the requested ones, each group keeps one training row.

    Rounding every group on its own drifts (64 labels of 15 rows at 10 % each round 1.5 up: 128 validation
    rows instead of 96), so the groups share the rounding: each gets its share rounded down, and the rows
    still missing go to the groups with the largest remainders.
    """
    want = requested_counts(sum(sizes), fractions)
    val = _largest_remainder(sizes, fractions[1], [max(0, n - 1) for n in sizes], want["val"], [0] * len(sizes))
    extra = [int(v > math.floor(n * fractions[1])) for v, n in zip(val, sizes)]  # spread test over other groups
    test = _largest_remainder(sizes, fractions[2], [max(0, n - 1 - v) for n, v in zip(sizes, val)], want["test"],
                              extra)
    return list(zip(val, test))


class AdvancedDataProcessor:
    """The fixing half of data engineering; ``operations`` records before/after counts of every step."""

    def __init__(self, seed: int = 42):
        self.seed = seed
        self.operations: list[dict] = []

    def log(self, op: str, before: int, after: int, **extra) -> None:
        """Record a step's before/after counts (steps run outside this class log here too: preference pairs)."""
        self.operations.append({"op": op, "before": before, "after": after, "removed": before - after, **extra})

    _log = log

    @staticmethod
    def _map_contents(convs: list[dict], fn: Callable[[str], str]) -> tuple[list[dict], int]:
        out, changed = [], 0
        for c in convs:
            new = {**c, "messages": [{**m, "content": fn(m["content"])} for m in c["messages"]]}
            changed += new["messages"] != c["messages"]
            out.append(new)
        return out, changed

    def drop_empty(self, convs: list[dict]) -> list[dict]:
        """Drop conversations with no non-empty assistant turn; drop empty turns inside the rest."""
        out = []
        for c in convs:
            msgs = [m for m in c["messages"] if m["content"].strip() or m.get("tool_calls")]
            has_user = is_text_doc(c) or any(m["role"] == "user" for m in msgs)
            if has_user and any(m["role"] == "assistant" for m in msgs):
                out.append({**c, "messages": msgs})
        self._log("drop_empty", len(convs), len(out))
        return out

    def clean(self, convs: list[dict]) -> list[dict]:
        """Strip HTML, control characters and chat markers, normalise whitespace; drop rows left without answer."""
        out, changed = self._map_contents(convs, clean_text)
        kept = [c for c in out if any(m["role"] == "assistant" and m["content"] for m in c["messages"])]
        self._log("clean", len(convs), len(kept), changed=changed)
        return kept

    def dedupe(self, convs: list[dict], near: bool = True, threshold: float = 0.8) -> list[dict]:
        """Drop exact duplicates (normalised text) and, with ``near``, MinHash near-duplicates; keeps first copies."""
        keys, prompts, answers = conversation_keys(convs)
        seen: dict[str, int] = {}
        for i, k in enumerate(keys):
            seen.setdefault(k, i)
        keep = sorted(seen.values())
        exact_removed = len(convs) - len(keep)
        near_removed = 0
        if near and len(keep) > 1:
            groups = near_duplicate_rows([prompts[i] for i in keep], [answers[i] for i in keep], threshold)
            drop = {keep[j] for g in groups for j in g[1:]}
            near_removed = len(drop)
            keep = [i for i in keep if i not in drop]
        out = [convs[i] for i in keep]
        self._log("dedupe", len(convs), len(out), exact=exact_removed, near=near_removed)
        return out

    def filter_length(self, convs: list[dict], min_tokens: int = 1, max_tokens: int | None = None,
                      tokenizer=None) -> list[dict]:
        """Keep conversations whose templated token length is within [min_tokens, max_tokens]."""
        lengths = TokenCounter(tokenizer).lengths(convs)
        out = [c for c, n in zip(convs, lengths.tolist())
               if n >= min_tokens and (max_tokens is None or n <= max_tokens)]
        self._log("filter_length", len(convs), len(out), min_tokens=min_tokens, max_tokens=max_tokens)
        return out

    def mask_pii(self, convs: list[dict]) -> list[dict]:
        """Replace e-mails, phones, cards and national ids by placeholders."""
        masker = Masker()
        out, changed = self._map_contents(convs, masker)
        self._log("mask_pii", len(convs), len(out), changed=changed, replacements=masker.total)
        return out

    def split(self, convs: list[dict], fractions: Sequence[float] = (0.8, 0.1, 0.1),
              stratify: bool = True) -> dict[str, list[dict]]:
        """Seeded train/val/test split, stratified by ``meta.label`` when every row has one.

        The logged operation carries ``requested`` (the fractions of all rows, rounded) and ``reason``:
        'exact' (the counts are the requested ones), 'stratified' (also exact: each label rounded down or up
        so the totals match) or 'min_train' (labels too small to give rows away keep them for training).
        """
        fractions = parse_split(fractions)
        if fractions == SOURCE:
            return self._source_split(convs)
        rng = random.Random(self.seed)
        labels = [c.get("meta", {}).get("label") for c in convs]
        stratified = stratify and all(lab is not None for lab in labels) and len(set(labels)) > 1
        groups: dict = defaultdict(list)
        for i, lab in enumerate(labels):
            groups[lab if stratified else None].append(i)
        keys = sorted(groups, key=str)
        sizes = allocate_split([len(groups[k]) for k in keys], fractions)
        parts: dict[str, list[int]] = {s: [] for s in SPLITS}
        for key, (n_val, n_test) in zip(keys, sizes):
            idx = groups[key]
            rng.shuffle(idx)
            parts["val"] += idx[:n_val]
            parts["test"] += idx[n_val:n_val + n_test]
            parts["train"] += idx[n_val + n_test:]
        out = {}
        for name in SPLITS:
            rng.shuffle(parts[name])
            out[name] = [convs[i] for i in parts[name]]
        requested = requested_counts(len(convs), fractions)
        counts = {name: len(v) for name, v in out.items()}
        reason = "min_train" if counts != requested else ("stratified" if stratified else "exact")
        self._log("split", len(convs), sum(counts.values()), stratified=stratified, requested=requested,
                  reason=reason, **counts)
        return out

    def _source_split(self, convs: list[dict]) -> dict[str, list[dict]]:
        """Keep the file's own splits (meta.split); rows of splits that name none of train/val/test are refused."""
        out: dict[str, list[dict]] = {s: [] for s in SPLITS}
        unknown = set()
        for c in convs:
            name = str(c.get("meta", {}).get("split", ""))
            part = source_split_name(name) if name else None
            if part is None:
                unknown.add(name or "(none)")
            else:
                out[part].append(c)
        if unknown or not out["train"]:
            raise UserError(f"--split source needs every row to come from a train/val/test split of the file; found "
                            f"{', '.join(sorted(unknown)) or 'no train rows'}. Use fractions such as 0.8,0.1,0.1.")
        self._log("split", len(convs), len(convs), source=True, reason="source",
                  **{name: len(v) for name, v in out.items()})
        return out

    def run(self, convs: list[dict], *, clean: bool = False, dedupe: bool = False, mask_pii: bool = False,
            split: Sequence[float] | str = (0.8, 0.1, 0.1)) -> dict[str, list[dict]]:
        """The prepare pipeline: [clean] -> drop empty -> [mask PII] -> [dedupe] -> split."""
        if clean:
            convs = self.clean(convs)
        convs = self.drop_empty(convs)
        if mask_pii:
            convs = self.mask_pii(convs)
        if dedupe:
            convs = self.dedupe(convs)
        if not convs:
            raise UserError("No usable rows are left after processing (every row lacked an answer or was removed); "
                            "check the file and the column mapping.")
        return self.split(convs, split)
