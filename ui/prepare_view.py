"""Small read-only views of a prepared dataset folder."""
from __future__ import annotations

from pathlib import Path


def split_counts(folder: Path) -> dict[str, int]:
    """Number of conversations per split file (lines in splits/<split>.jsonl)."""
    counts = {}
    for split in ("train", "val", "test"):
        path = folder / "splits" / f"{split}.jsonl"
        try:
            with open(path, encoding="utf-8") as fh:
                counts[split] = sum(1 for line in fh if line.strip())
        except FileNotFoundError:
            counts[split] = 0
    return counts
