"""Prepare preference pairs: [clean] -> drop pairs that teach nothing -> [mask PII] -> [dedupe] -> split.

The steps mirror ``AdvancedDataProcessor.run`` for conversations and log into the same ``operations`` list, so the
Prepare page shows one table for either kind. Rows are ``PreferencePair.to_dict()`` dicts.
"""
from __future__ import annotations

from typing import Callable, Sequence

from core.errors import UserError

from .pairs import PreferencePair
from .pii import Masker
from .preference_quality import identical_or_empty, side_text
from .processing import SOURCE, SPLITS, AdvancedDataProcessor, parse_split, requested_counts
from .text import clean_text, norm_key

SIDES = ("prompt", "chosen", "rejected")


def _map_pairs(rows: list[dict], fn: Callable[[str], str]) -> tuple[list[dict], int]:
    """Every message content of every pair through ``fn``; (new rows, rows changed)."""
    out, changed = [], 0
    for row in rows:
        new = {**row, **{s: [{**m, "content": fn(m["content"])} for m in row[s]] for s in SIDES}}
        changed += any(new[s] != row[s] for s in SIDES)
        out.append(new)
    return out, changed


def _drop_unusable(rows: list[dict], processor: AdvancedDataProcessor) -> list[dict]:
    empty, identical = identical_or_empty([PreferencePair.from_dict(r) for r in rows])
    drop = set(empty) | set(identical)
    kept = [r for i, r in enumerate(rows) if i not in drop]
    processor.log("drop_empty", len(rows), len(kept), empty=len(empty), identical=len(identical))
    return kept


def _dedupe(rows: list[dict], processor: AdvancedDataProcessor) -> list[dict]:
    seen, kept = set(), []
    for row in rows:
        key = tuple(norm_key(side_text(row[s])) for s in SIDES)
        if key not in seen:
            seen.add(key)
            kept.append(row)
    processor.log("dedupe", len(rows), len(kept), exact=len(rows) - len(kept))
    return kept


def process_pairs(pairs: list[PreferencePair], *, clean: bool = False, dedupe: bool = False,
                  mask_pii: bool = False, split: Sequence[float] | str = (0.8, 0.1, 0.1),
                  seed: int = 42) -> tuple[dict[str, list[dict]], list[dict]]:
    """(split name -> pair rows, the operations log) of the prepare pipeline for preference pairs."""
    processor = AdvancedDataProcessor(seed=seed)
    rows = [p.to_dict() for p in pairs]
    if clean:
        before = len(rows)
        rows, changed = _map_pairs(rows, clean_text)
        processor.log("clean", before, len(rows), changed=changed)
    rows = _drop_unusable(rows, processor)
    if mask_pii:
        masker = Masker()
        rows, changed = _map_pairs(rows, masker)
        processor.log("mask_pii", len(rows), len(rows), changed=changed, replacements=masker.total)
    if dedupe:
        rows = _dedupe(rows, processor)
    if not rows:
        raise UserError("No usable preference pairs are left (every pair had an empty side or identical chosen and "
                        "rejected answers); check the file and the column mapping.")
    return split_by_prompt(rows, split, processor), processor.operations


def split_by_prompt(rows: list[dict], split: Sequence[float] | str, processor: AdvancedDataProcessor
                    ) -> dict[str, list[dict]]:
    """The seeded split, with every pair of one prompt in the same part: no prompt is both trained on and tested.

    Without repeated prompts (or with the file's own splits) it is the plain split. Otherwise the distinct prompts
    are split and their pairs follow; the split step logs pair counts, ``groups`` and the reason 'grouped'.
    """
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(norm_key(side_text(row["prompt"])), []).append(row)
    if len(groups) == len(rows) or parse_split(split) == SOURCE:
        return processor.split(rows, split)
    keys = list(groups)
    parts = processor.split([{"meta": {"group": i}} for i in range(len(keys))], split)
    out = {name: [r for g in parts[name] for r in groups[keys[g["meta"]["group"]]]] for name in SPLITS}
    processor.operations[-1].update(before=len(rows), after=len(rows), removed=0, groups=len(groups),
                                    requested=requested_counts(len(rows), parse_split(split)), reason="grouped",
                                    **{name: len(out[name]) for name in SPLITS})
    return out
