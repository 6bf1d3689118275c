"""The method lab from the command line: LoRA, Adapter, Prefix, full and freeze on the same data, one table.

Run::

    python -m bench.methods                        # Banking77, default model, 20 train / 10 test per intent
    python -m bench.methods --dataset bitext       # Bitext customer support (short responses), token F1
    python -m bench.methods --quick                # a tiny slice and a few steps (a few minutes)
    python -m bench.methods --quick --model tiny-llama   # smoke test of the machinery (seconds per method)
    python -m bench.methods --epochs 3             # every method 3 epochs instead of a shared time budget
    python -m core bench methods [--quick]

Data: Banking77 from ``../shared/data/banking77`` — 20 examples per intent from ``train.csv`` for training, 2 more per
intent (disjoint) for validation loss, 10 per intent from ``test.csv`` held out for the test; Bitext from
``../shared/data/bitext_customer_support/v1_short_responses`` (per intent: 10 train, 2 val, 3 test). Rows are drawn
with a fixed seed and normalised by ``core.data.load_conversations`` exactly as an upload would be, then written as a
prepared dataset ``datasets/bench-<name>/`` in the workspace (``$ASSISTANT_FACTORY_HOME``, or ``--workspace``).

Each method is a normal run (``runs/<lab_id>-<method>/``) trained in its own ``python -m core train`` process, one
after another, so its peak memory is its own; then each is evaluated (base vs tuned, no robustness/speed) and the
table is built from the run folders by ``core.lab``. The HTML comparison is written to ``labs/<lab_id>.html``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Optional, Sequence

from core.defaults import DEFAULT_MODEL, METHODS

ROOT = Path(__file__).resolve().parents[1]
SHARED = (ROOT / ".." / "shared" / "data").resolve()
BANKING = SHARED / "banking77"
BITEXT = (SHARED / "bitext_customer_support" / "v1_short_responses"
          / "Bitext_Sample_Customer_Support_Training_Dataset.csv")
SYSTEM = {
    "banking77": "You classify a bank customer's message. Answer with the intent label only.",
    "bitext": "You are a friendly customer support assistant. Answer briefly and helpfully.",
}
SEED = 42


def per_label(rows: list[dict], key: str, counts: Sequence[int], rng: random.Random,
               labels: Optional[list] = None) -> list[list[dict]]:
    """Disjoint slices of ``counts[i]`` rows per label (seeded), in label order."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[r[key]].append(r)
    parts: list[list[dict]] = [[] for _ in counts]
    for label in labels or sorted(groups):
        pool = list(groups[label])
        rng.shuffle(pool)
        start = 0
        for i, n in enumerate(counts):
            parts[i] += pool[start:start + n]
            start += n
    return parts


def _read_csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def banking77_splits(quick: bool, per_intent: int = 20, test_per_intent: int = 10) -> dict:
    """{"train", "val", "test"} rows (text, category) of Banking77."""
    rng = random.Random(SEED)
    train_rows, test_rows = _read_csv(BANKING / "train.csv"), _read_csv(BANKING / "test.csv")
    labels = sorted({r["category"] for r in train_rows})
    if quick:
        labels, per_intent, test_per_intent = labels[:6], 4, 2
    train, val = per_label(train_rows, "category", (per_intent, 2), rng, labels)
    (test,) = per_label(test_rows, "category", (test_per_intent,), rng, labels)
    return {"train": train, "val": val, "test": test}


def bitext_splits(quick: bool) -> dict:
    """{"train", "val", "test"} rows (instruction, response) of Bitext, stratified by intent."""
    rng = random.Random(SEED)
    rows = _read_csv(BITEXT)
    labels = sorted({r["intent"] for r in rows})
    counts = (10, 2, 3)
    if quick:
        labels, counts = labels[:5], (3, 1, 1)
    train, val, test = per_label(rows, "intent", counts, rng, labels)
    return {"train": train, "val": val, "test": test}


def save_splits(dataset_id: str, splits: dict[str, list[dict]], fmt: str, meta: dict) -> None:
    """Normalise each split's rows (dicts of one shape) with core.data and write them as a prepared dataset."""
    from core.data import load_conversations
    from core.fileio import atomic_write_json, atomic_write_text
    from core.workspace import dataset_dir

    folder = dataset_dir(dataset_id, create=True)
    normalized = []
    with tempfile.TemporaryDirectory() as tmp:
        for split, rows in splits.items():
            path = Path(tmp) / f"{split}.csv"
            with open(path, "w", encoding="utf-8", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
            convs, _ = load_conversations(str(path), format=fmt)
            text = "".join(json.dumps(c, ensure_ascii=False) + "\n" for c in convs)
            atomic_write_text(folder / "splits" / f"{split}.jsonl", text)
            normalized.append(text)
    atomic_write_text(folder / "normalized.jsonl", "".join(normalized))
    atomic_write_json(folder / "meta.json", {"name": dataset_id, "format": fmt, **meta,
                                             "rows": {k: len(v) for k, v in splits.items()}, "seed": SEED})


def write_dataset(name: str, quick: bool) -> str:
    """Normalise the chosen rows with core.data and write them as a prepared dataset; returns its id."""
    if name == "banking77":
        splits, fmt, columns = banking77_splits(quick), "classification", ("text", "category")
    elif name == "bitext":
        splits, fmt, columns = bitext_splits(quick), "qa", ("instruction", "response")
    else:
        raise SystemExit(f"unknown dataset {name!r}; choose banking77 or bitext")
    dataset_id = f"bench-{name}{'-quick' if quick else ''}"
    save_splits(dataset_id, {k: [{c: r[c] for c in columns} for r in rows] for k, rows in splits.items()}, fmt,
                {"source": name, "quick": quick})
    return dataset_id


def main(quick: bool = False, dataset: str = "banking77", model: Optional[str] = None,
         budget_s: Optional[float] = None, methods: Sequence[str] = METHODS, steps: Optional[int] = None,
         eval_limit: Optional[int] = None, runner: str = "subprocess", epochs: Optional[float] = None,
         overrides: Optional[dict] = None, label_scoring: Optional[bool] = None):
    """Prepare the data, train the methods one after another, evaluate each, print and return the table.

    ``epochs`` trains every method for that many epochs (the budget is then ignored); otherwise each method gets
    ``budget_s / len(methods)`` seconds, turned into steps with the estimator's time per step. ``overrides`` maps
    dotted config keys to values (``{"lora.r": 16, "train.lr": 5e-4}``) applied on top of the lab's settings.
    """
    from core.lab import evaluate_lab, export_html, format_table, lab_table, launch_lab

    model = model or DEFAULT_MODEL
    budget_s = budget_s or (5 * 60 if quick else 5 * 720)  # ~720 s per method: the evaluation issue's reference
    t0 = time.time()
    dataset_id = write_dataset(dataset, quick)
    train = {"batch_size": 8, "max_seq_len": 128 if dataset == "banking77" else 256}
    if quick:
        train["max_steps"] = steps or 4
    elif steps:
        train["max_steps"] = steps
    if epochs:
        train["epochs"] = epochs
    base = {"system_prompt": SYSTEM[dataset], "train": train}
    for key, value in (overrides or {}).items():
        section, _, leaf = key.rpartition(".")
        (base.setdefault(section, {}) if section else base)[leaf] = value
    plan = f"{epochs:g} epochs each" if epochs else f"budget {budget_s:.0f} s for {len(methods)} methods"
    print(f"dataset {dataset_id}, model {model}, {plan}", flush=True)

    def progress(fraction: float, message: str) -> None:
        print(f"  [{time.time() - t0:6.0f} s] {message}", flush=True)

    lab_id = launch_lab(dataset_id, model, None if epochs else budget_s, methods=methods, base_config=base,
                        name=f"bench-{dataset}", runner=runner, progress=progress)
    evaluate_lab(lab_id, limit=eval_limit or (4 if quick else None), progress=progress, label_scoring=label_scoring)
    table = lab_table(lab_id)
    print(f"\nlab {lab_id} (runs under {os.environ.get('ASSISTANT_FACTORY_HOME', 'workspace')}/runs/)")
    print(format_table(table))
    print(f"HTML: {export_html(lab_id)}   total {time.time() - t0:.0f} s", flush=True)
    return table


def _parse_set(item: str) -> tuple:
    """``lora.r=16`` -> ("lora.r", 16); a value that is not JSON stays a string."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise SystemExit(f"--set needs KEY=VALUE, got {item!r}")
    try:
        return key.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return key.strip(), raw


def _cli(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny slice and a few steps")
    parser.add_argument("--dataset", choices=("banking77", "bitext"), default="banking77")
    parser.add_argument("--model", default=None,
                        help="base model (default the embedded model; tiny-llama to smoke-test)")
    parser.add_argument("--budget", type=float, default=None, help="seconds for all methods together")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset")
    parser.add_argument("--epochs", type=float, default=None, help="train each method this many epochs (no budget)")
    parser.add_argument("--steps", type=int, default=None, help="fixed max_steps per method (overrides the budget)")
    parser.add_argument("--eval-limit", type=int, default=None, help="test examples per evaluation")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set lora.r=16 --set train.lr=5e-4 (JSON values)")
    parser.add_argument("--workspace", default=None, help="workspace folder (default $ASSISTANT_FACTORY_HOME)")
    parser.add_argument("--label-scoring", choices=["auto", "on", "off"], default="auto",
                        help="also rank every label by likelihood (auto: on for Banking77; slow on 770 prompts)")
    args = parser.parse_args(argv)
    if args.workspace:
        os.environ["ASSISTANT_FACTORY_HOME"] = str(Path(args.workspace).resolve())
    main(quick=args.quick, dataset=args.dataset, model=args.model, budget_s=args.budget,
         methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()), steps=args.steps,
         eval_limit=args.eval_limit, epochs=args.epochs, overrides=dict(_parse_set(item) for item in args.set),
         label_scoring={"auto": None, "on": True, "off": False}[args.label_scoring])
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
