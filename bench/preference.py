"""Issue 21's measurement: DPO, then ORPO, with LoRA on HH-RLHF harmless; held-out pair accuracy, base and tuned.

    python -m bench.preference            # 2,312 pairs: hold out 500, train on the rest, one epoch or 20 minutes
    python -m bench.preference --quick    # a handful of pairs and steps: proves the pipeline runs

The base model's figure is the tuned model with its LoRA switched off (``adapters_disabled``): no second copy.
The data is read from ../shared/data/preference (never copied into the project).
"""
from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from core.data.pairs import PreferencePair

ROOT = Path(__file__).resolve().parents[1]
HH = ROOT.parent / "shared" / "data" / "preference" / "hh_rlhf_harmless" / "test.jsonl.gz"
HOLD_OUT = 500
MINUTES = 20.0
SEED = 0


def transcript_messages(text: str) -> list[dict]:
    """``"\\n\\nHuman: ...\\n\\nAssistant: ..."`` as chat messages."""
    msgs, rest = [], text
    marks = {"\n\nHuman:": "user", "\n\nAssistant:": "assistant"}
    while rest:
        starts = {m: rest.find(m) for m in marks if rest.find(m) >= 0}
        if not starts:
            break
        mark = min(starts, key=starts.get)
        rest = rest[starts[mark] + len(mark):]
        nxt = [rest.find(m) for m in marks if rest.find(m) >= 0]
        end = min(nxt) if nxt else len(rest)
        msgs.append({"role": marks[mark], "content": rest[:end].strip()})
        rest = rest[end:]
    return msgs


def read_hh(path: Path = HH) -> list[PreferencePair]:
    """HH-RLHF rows as pairs: the transcript up to the last Assistant turn is the prompt."""
    pairs = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            row = json.loads(line)
            cut_c, cut_r = row["chosen"].rfind("\n\nAssistant:"), row["rejected"].rfind("\n\nAssistant:")
            prompt = transcript_messages(row["chosen"][:cut_c])
            chosen = row["chosen"][cut_c + len("\n\nAssistant:"):].strip()
            rejected = row["rejected"][cut_r + len("\n\nAssistant:"):].strip()
            if prompt and prompt[-1]["role"] == "user" and chosen and rejected and chosen != rejected:
                pairs.append(PreferencePair(prompt, [{"role": "assistant", "content": chosen}],
                                            [{"role": "assistant", "content": rejected}], {"row": i + 1}))
    return pairs


def write_dataset(folder: Path, train: list, held: list, n_val: int) -> Path:
    """A preference dataset folder (splits of PreferencePair.to_dict() rows)."""
    (folder / "splits").mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").write_text(json.dumps({"kind": "preference", "source": "hh_rlhf_harmless"}), encoding="utf-8")
    for name, part in (("train", train), ("val", held[:n_val]), ("test", held)):
        (folder / "splits" / f"{name}.jsonl").write_text("".join(json.dumps(p.to_dict()) + "\n" for p in part),
                                                         encoding="utf-8")
    return folder


def train_one(objective: str, data: Path, run_dir: Path, args) -> tuple:
    """Train until one epoch or the time budget; (trainer, seconds, state)."""
    from core.training.config import TrainingConfig
    from core.training.trainer import AdvancedTrainer

    cfg = TrainingConfig.from_dict({
        "model": args.model, "data": str(data), "method": "lora", "objective": objective,
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
        "train": {"epochs": 1, "max_steps": args.max_steps, "batch_size": args.batch_size, "lr": args.lr,
                  "max_seq_len": args.max_seq_len, "eval_every": 10**6, "save_every": 10**6, "warmup_ratio": 0.05,
                  "seed": SEED, "device": args.device}})
    trainer = AdvancedTrainer(cfg, run_dir)
    real_step, deadline = trainer._train_step, time.perf_counter() + args.minutes * 60

    def step_with_budget(micro):
        out = real_step(micro)
        if time.perf_counter() > deadline or (args.stop_after and trainer.step >= args.stop_after):
            trainer.request_stop()  # "one epoch or the time that fits" (or another run's step count): stop here
        return out

    trainer._train_step = step_with_budget
    t0 = time.perf_counter()
    state = trainer.train()
    return trainer, time.perf_counter() - t0, state


def measure(objective: str, data: Path, held: list, work: Path, args, base: dict | None = None) -> dict:
    """Base (LoRA off) and tuned held-out pair accuracy of one objective's run (``base`` reused when given)."""
    from core.evaluation.pairs import pair_accuracy
    from core.peft import adapters_disabled

    trainer, seconds, state = train_one(objective, data, work / objective, args)
    model, tok = trainer.model, trainer.tok
    t0 = time.perf_counter()
    if base is None and args.no_base:
        base = {"accuracy": float("nan")}
    if base is None:  # the same base model for every objective: scored once
        with adapters_disabled(model):
            base = pair_accuracy(model, tok, held, None, args.max_seq_len)
    tuned = pair_accuracy(model, tok, held, None, args.max_seq_len)
    return {"objective": objective, "state": state, "steps": trainer.step, "train_s": round(seconds, 1),
            "s_per_step": round(seconds / max(trainer.step, 1), 2), "base_acc": round(base["accuracy"], 4),
            "tuned_acc": round(tuned["accuracy"], 4), "held_out": tuned["n"], "eval_s": round(time.perf_counter() - t0, 1),
            "_base": base}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, train DPO then ORPO on the same split, print the table."""
    p = argparse.ArgumentParser(prog="python -m bench.preference", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="4 training pairs, 4 held out, 1 step of 2 pairs")
    p.add_argument("--model", default=None, help="default: the project's default model")
    p.add_argument("--objectives", nargs="+", default=["dpo", "orpo"], choices=["dpo", "orpo"])
    p.add_argument("--minutes", type=float, default=MINUTES, help="training time budget per objective")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--max-seq-len", type=int, default=384)
    p.add_argument("--max-steps", type=int, default=None, help="the schedule's length (default: one epoch)")
    p.add_argument("--stop-after", type=int, default=None,
                   help="stop after this many steps on the epoch's schedule (as a time-budgeted run stopped)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-base", action="store_true", help="skip the base model's accuracy (known from another run)")
    p.add_argument("--eval-pairs", type=int, default=HOLD_OUT, help="score only the first N held-out pairs")
    p.add_argument("--keep", type=Path, default=None, help="write the dataset and the runs here (default: a "
                   "temporary folder, removed at the end)")
    args = p.parse_args(argv)
    from core.defaults import DEFAULT_MODEL

    args.model = args.model or DEFAULT_MODEL
    pairs = read_hh()
    random.Random(SEED).shuffle(pairs)
    held, train = pairs[:HOLD_OUT][:args.eval_pairs], pairs[HOLD_OUT:]  # training never sees the 500
    if args.quick:
        held, train = held[:4], train[:4]
        args.max_steps, args.batch_size, args.max_seq_len = args.max_steps or 1, 2, 64
    print(f"HH-RLHF harmless: {len(pairs)} pairs, {len(train)} train, {len(held)} held out; model {args.model}",
          flush=True)
    rows = []
    if args.keep and args.keep.exists() and any(args.keep.iterdir()):
        p.error(f"--keep {args.keep}: the folder is not empty (its runs would be trained on again); give a new one")
    with (contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory()) as tmp:
        data = write_dataset(Path(tmp) / "hh", train, held, n_val=min(32, len(held) // 2))
        base = None
        for objective in args.objectives:
            row = measure(objective, data, held, Path(tmp), args, base)
            base = row.pop("_base")
            rows.append(row)
            print(json.dumps(row), flush=True)
    keys = list(rows[0])
    print("\n" + " | ".join(keys))
    for r in rows:
        print(" | ".join(str(r[k]) for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
