"""Synthetic data for the data tests: diverse, clean rows into which single defects are planted."""
from __future__ import annotations

import json
import random
from pathlib import Path

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "vi", "so", "pe", "du", "ba", "fe", "gi", "ho", "ju", "ly"]
WORDS = [a + b + c for a in SYLLABLES for b in SYLLABLES for c in ("", "n", "s")]


def sentence(rng: random.Random, n: int = 8) -> str:
    """A random pseudo-English sentence (no two share much text)."""
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def qa_rows(n: int = 120, seed: int = 0) -> list[dict]:
    """Clean question/answer rows."""
    rng = random.Random(seed)
    return [{"question": sentence(rng) .replace(".", "?"), "answer": sentence(rng, 12)} for _ in range(n)]


def cls_rows(n: int = 120, labels: int = 4, seed: int = 0) -> list[dict]:
    """Clean, balanced classification rows."""
    rng = random.Random(seed)
    return [{"text": sentence(rng), "label": f"label_{i % labels}"} for i in range(n)]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def convs_of(rows: list[dict]) -> list[dict]:
    """qa rows -> conversations (as load_conversations would give), meta.row 1-based."""
    return [{"messages": [{"role": "user", "content": r["question"]}, {"role": "assistant", "content": r["answer"]}],
             "meta": {"row": i + 1}} for i, r in enumerate(rows)]
