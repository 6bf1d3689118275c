"""The calibration sweep: what each configuration reaches per data kind, size and time budget, through the lab.

Run (it needs a quiet machine: hours for the whole grid)::

    python -m bench.calibration --out calibration-sweep.json            # the whole sweep, rows written there
    python -m bench.calibration --merge                                 # ... and merged into assets/calibration.json
    python -m bench.calibration --data banking77-20 --budgets 5 --configs lora-r16-qkvo-e2,lora-r8-qv-e1
    python -m bench.calibration --quick --model tiny-llama --out /tmp/c.json   # smoke test (seconds per run)
    python -m core bench calibration [--quick]

Data (from ``../shared/data``, rows drawn per label with a fixed seed, normalised by ``core.data`` as an upload):
CLINC150 and Banking77 at 10 and 20 examples per intent (classification with many labels, accuracy), Bitext support
FAQ at 10 per intent (token F1), self-instruct's user-oriented instructions (token F1). Every configuration of the
grid trains as a one-method lab (``core.lab.launch_lab``) under each time budget, is evaluated on the test split,
and becomes one row in ``assets/calibration.json``'s schema. The table printed at the end names the winner per data
kind, size and budget.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import sys
from pathlib import Path

from bench.methods import banking77_splits, bitext_splits, per_label, save_splits
from core.defaults import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[1]
SHARED = (ROOT / ".." / "shared" / "data").resolve()
SEED = 42
BUDGETS_MIN = (3, 5, 10)  # 3 and 10 as the issue asks; 5 because its acceptance check is at 5 minutes
SYSTEM = {"classification": "Classify the user's message. Answer with the intent label only.",
          "faq": "You are a friendly customer support assistant. Answer briefly and helpfully.",
          "instructions": "You are a helpful assistant. Follow the instruction."}
# The grid: method, rank, targets, lr, epochs and dropout varied around the project's defaults (LoRA r=8 on q,v,
# lr 1e-3, dropout 0.05) and the settings the issue measured (r=16 on q,k,v,o, dropout 0, 2 epochs).
QV, QKVO = ["q_proj", "v_proj"], ["q_proj", "k_proj", "v_proj", "o_proj"]
GRID = {
    "lora-r8-qv-e1": ("lora", 8, QV, 1e-3, 1, 0.05),
    "lora-r8-qv-e2": ("lora", 8, QV, 1e-3, 2, 0.05),
    "lora-r8-qv-e3-lr2e-3": ("lora", 8, QV, 2e-3, 3, 0.0),
    "lora-r8-qkvo-e2": ("lora", 8, QKVO, 1e-3, 2, 0.0),
    "lora-r16-qv-e2": ("lora", 16, QV, 1e-3, 2, 0.05),
    "lora-r16-qkvo-e1": ("lora", 16, QKVO, 1e-3, 1, 0.0),
    "lora-r16-qkvo-e2": ("lora", 16, QKVO, 1e-3, 2, 0.0),
    "lora-r16-qkvo-e2-lr5e-4": ("lora", 16, QKVO, 5e-4, 2, 0.05),
    "lora-r16-all-e1": ("lora", 16, "all-linear", 1e-3, 1, 0.0),
    "lora-r32-qkvo-e2": ("lora", 32, QKVO, 1e-3, 2, 0.0),
    "adapter-b64-e2": ("adapter", None, None, 1e-3, 2, None),
    "prefix-20-e3": ("prefix", None, None, 1e-2, 3, None),
}
QUICK_GRID = ("lora-r8-qv-e1", "lora-r16-qkvo-e2")


def _per_label(rows: list[tuple[str, str]], counts: tuple, labels: list | None = None) -> list[list]:
    """Disjoint seeded slices of ``counts[i]`` (text, label) rows per label (bench.methods.per_label's rule)."""
    parts = per_label([{"text": t, "label": lab} for t, lab in rows], "label", counts, random.Random(SEED), labels)
    return [[(r["text"], r["label"]) for r in part] for part in parts]


def clinc_splits(per_label: int, quick: bool) -> dict:
    """CLINC150 in-scope rows: ``per_label`` train and 2 val per intent from its train part, 5 test from test."""
    data = json.loads((SHARED / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
    labels = sorted({lab for _, lab in data["train"]})
    labels, per_label, n_test = (labels[:4], 3, 1) if quick else (labels, per_label, 5)
    train, val = _per_label([tuple(r) for r in data["train"]], (per_label, 2), labels)
    (test,) = _per_label([tuple(r) for r in data["test"]], (n_test,), labels)
    return {k: [{"text": t, "intent": lab} for t, lab in v] for k, v in
            (("train", train), ("val", val), ("test", test))}


def banking_splits(per_label: int, quick: bool) -> dict:
    """Banking77: ``per_label`` train, 2 val and 5 test per intent (bench.methods' draw)."""
    splits = banking77_splits(quick, per_intent=3 if quick else per_label, test_per_intent=1 if quick else 5)
    return {k: [{"text": r["text"], "intent": r["category"]} for r in v] for k, v in splits.items()}


def instruction_splits(quick: bool) -> dict:
    """Self-instruct's 252 user-oriented instructions: instruction (+ input) -> output, 80/10/10 seeded."""
    rows = []
    for line in (SHARED / "self_instruct" / "user_oriented_instructions.jsonl").read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        inst = (item.get("instances") or [{}])[0]
        prompt = item["instruction"] + (f"\n\n{inst['input']}" if inst.get("input") else "")
        rows.append({"instruction": prompt, "response": inst.get("output", "")})
    random.Random(SEED).shuffle(rows)
    rows = rows[:12] if quick else rows
    cut1, cut2 = int(len(rows) * 0.8), int(len(rows) * 0.9)
    return {"train": rows[:cut1], "val": rows[cut1:cut2], "test": rows[cut2:]}


def faq_splits(quick: bool) -> dict:
    """Bitext support FAQ: 10 train, 2 val, 3 test per intent (bench.methods' draw)."""
    return {k: [{"instruction": r["instruction"], "response": r["response"]} for r in v]
            for k, v in bitext_splits(quick).items()}


# name -> (data kind, examples per label or None, splits function, format)
DATASETS = {
    "clinc150-10": ("classification-many-labels", 10, lambda q: clinc_splits(10, q), "classification"),
    "clinc150-20": ("classification-many-labels", 20, lambda q: clinc_splits(20, q), "classification"),
    "banking77-10": ("classification-many-labels", 10, lambda q: banking_splits(10, q), "classification"),
    "banking77-20": ("classification-many-labels", 20, lambda q: banking_splits(20, q), "classification"),
    "bitext-faq": ("faq", None, faq_splits, "qa"),
    "self-instruct": ("instructions", None, instruction_splits, "qa"),
}


def write_dataset(name: str, quick: bool) -> tuple[str, dict]:
    """Normalise the drawn rows with core.data and write a prepared dataset; (its id, its splits)."""
    _, _, make, fmt = DATASETS[name]
    splits = make(quick)
    dataset_id = f"calib-{name}{'-quick' if quick else ''}"
    save_splits(dataset_id, splits, fmt, {"source": name, "quick": quick})
    return dataset_id, splits


def base_config(config: str, kind: str, quick: bool) -> dict:
    """The lab's base config for one grid entry: the method section and the train section."""
    method, rank, targets, lr, epochs, dropout = GRID[config]
    base = {"system_prompt": SYSTEM["classification" if kind.startswith("classification") else kind],
            "train": {"lr": lr, "epochs": epochs, "batch_size": 8,
                      "max_seq_len": 128 if kind.startswith("classification") else 256}}
    if method == "lora":
        base["lora"] = {"r": rank, "alpha": 2 * rank, "target_modules": targets, "dropout": dropout}
    if quick:
        base["train"]["max_steps"] = 2
    return base


def sweep_row(name: str, config: str, budget_min: float, lab_id: str, splits: dict, model: str,
              command: str) -> dict:
    """One calibration row from a lab's single run, every number read back from its run folder."""
    from core.lab import lab_results, load_lab

    kind, per_label, _, _ = DATASETS[name]
    method, rank, targets, lr, _, dropout = GRID[config]
    result, plan = lab_results(lab_id)[0], load_lab(lab_id)["runs"][0]["plan"]
    per_epoch = plan.get("steps_per_epoch") or -(-len(splits["train"]) // 8)  # batch 8 (base_config)
    trained = round(result["steps"] / per_epoch, 2) if result.get("steps") and per_epoch else None
    labels = len({r.get("intent") for r in splits["train"]}) if kind.startswith("classification") else None
    return {"id": f"sweep-{name}-{config}-{budget_min:g}min", "data_kind": kind, "dataset": name, "labels": labels,
            "per_label": per_label if labels else None, "rows": len(splits["train"]), "budget_min": budget_min,
            "engine": "ours", "method": method, "rank": rank, "targets": targets, "lr": lr, "epochs": trained,
            "dropout": dropout, "metric": result.get("metric_name"), "value": result.get("metric"),
            "val_loss": result.get("final_val_loss"), "train_s": result.get("train_s"),
            "machine": f"{platform.machine()} {os.cpu_count()} cores, model {model}",
            "date": dt.date.today().isoformat(), "source": f"{command} (lab {lab_id}, run {result['run_id']})",
            "from_sweep": True, "state": result.get("state")}


def run_sweep(names: list[str], configs: list[str], budgets: list[float], model: str, quick: bool,
              runner: str = "subprocess", eval_limit: int | None = None, command: str = "") -> list[dict]:
    """Train and evaluate every (data, config, budget) as a one-method lab; the calibration rows."""
    from core.lab import evaluate_lab, launch_lab

    rows = []
    for name in names:
        dataset_id, splits = write_dataset(name, quick)
        kind = DATASETS[name][0]
        for budget in budgets:
            for config in configs:
                method = GRID[config][0]
                print(f"{name} {config} {budget:g} min", flush=True)
                lab_id = launch_lab(dataset_id, model, 60.0 * budget, methods=(method,),
                                    base_config=base_config(config, kind, quick), name=f"calib-{name}",
                                    runner=runner)
                evaluate_lab(lab_id, limit=eval_limit or (2 if quick else None))
                rows.append(sweep_row(name, config, budget, lab_id, splits, model, command))
    return rows


def winners(rows: list[dict]) -> list[dict]:
    """The best row per (data kind, dataset, budget) by task metric."""
    best: dict[tuple, dict] = {}
    for r in rows:
        if r.get("value") is None:
            continue
        key = (r["data_kind"], r["dataset"], r.get("budget_min"))
        if key not in best or r["value"] > best[key]["value"]:
            best[key] = r
    return list(best.values())


def format_rows(rows: list[dict]) -> str:
    """The sweep as one plain-text table, the winner of each (kind, data, budget) marked with '*'."""
    top = {id(r) for r in winners(rows)}
    cols = ("dataset", "budget_min", "method", "rank", "targets", "lr", "epochs", "dropout", "metric", "value",
            "val_loss", "train_s")

    def cell(r: dict, c: str) -> str:
        v = r.get(c)
        if isinstance(v, list):
            return ",".join(x.replace("_proj", "") for x in v)
        if isinstance(v, float):
            return f"{v:.4g}"
        return "-" if v is None else str(v)

    body = [[("*" if id(r) in top else " ") + cell(r, cols[0])] + [cell(r, c) for c in cols[1:]] for r in rows]
    head = [" " + cols[0], *cols[1:]]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(b, widths)) for b in body]
    return "\n".join(lines + ["* = the best task metric for its data and budget"])


def verify(rows: list[dict], budget_min: float = 5.0, model: str | None = None,
           table_path: str | None = None, quick: bool = False) -> list[dict]:
    """Per swept dataset: the recommendation under ``budget_min`` (following ``table_path``) against the sweep's best
    at that budget; ``ratio`` is the recommended configuration's measured metric over the best's (None: not swept)."""
    from core.strategy import recommend_for_dataset
    from core.strategy.calibration import config_key, params_fields

    out = []
    for name in sorted({r["dataset"] for r in rows if r.get("budget_min") == budget_min}):
        at_budget = [r for r in rows if r["dataset"] == name and r.get("budget_min") == budget_min
                     and r.get("value") is not None]
        if not at_budget:
            continue
        best = max(at_budget, key=lambda r: r["value"])
        dataset_id = f"calib-{name}{'-quick' if quick else ''}"
        rec = recommend_for_dataset(dataset_id, model=model, time_budget_s=60 * budget_min, calibration=table_path)
        key = config_key({"method": rec.method, **params_fields(rec.method, rec.params)}, full=False)
        same = [r for r in at_budget if config_key(r, full=False) == key and r.get("lr") == rec.train.get("lr")]
        value = max((r["value"] for r in same), default=None)
        out.append({"dataset": name, "recommended": key, "epochs": rec.train["epochs"], "value": value,
                    "best": best["value"], "best_id": best["id"],
                    "ratio": None if value is None or not best["value"] else round(value / best["value"], 3)})
    for v in out:
        print(f"{v['dataset']}: recommended {v['recommended']} x{v['epochs']} epochs -> {v['value']}, best "
              f"{v['best']} ({v['best_id']}), ratio {v['ratio']} (target >= 0.9)")
    return out


def merge(rows: list[dict], path: Path) -> None:
    """Replace rows with the same id in the calibration table at ``path`` and add the new ones (validated)."""
    from core.fileio import atomic_write_json, read_json
    from core.strategy.calibration import load_calibration

    table = read_json(path, None) or {"schema": 1, "rows": []}
    ids = {r["id"] for r in rows}
    table["rows"] = [r for r in table["rows"] if r.get("id") not in ids] + rows
    atomic_write_json(path, table)
    load_calibration(path)  # a row the selector could not read fails here, not in the app


def main(quick: bool = False, names: list[str] | None = None, configs: list[str] | None = None,
         budgets: list[float] | None = None, model: str | None = None, out: str | None = None,
         merge_into: str | None = None, runner: str = "subprocess", eval_limit: int | None = None,
         command: str = "python -m core bench calibration") -> list[dict]:
    """Run the sweep, write its rows (``out``, ``merge_into``) and print the table with the winners."""
    from core.strategy.calibration import CALIBRATION_FILE

    names = names or (["banking77-10"] if quick else list(DATASETS))
    configs = configs or list(QUICK_GRID if quick else GRID)
    budgets = budgets or ([0.5] if quick else list(BUDGETS_MIN))
    command += " --quick" if quick and "--quick" not in command else ""
    rows = run_sweep(names, configs, budgets, model or DEFAULT_MODEL, quick, runner, eval_limit, command)
    if out:
        from core.fileio import atomic_write_json

        atomic_write_json(out, {"schema": 1, "rows": rows})
    if merge_into:
        merge(rows, Path(merge_into) if merge_into != "default" else CALIBRATION_FILE)
    print(format_rows(rows), flush=True)
    if merge_into and not quick:  # the acceptance check: the 5-minute recommendation against the best
        verify(rows, 5.0, model, None if merge_into == "default" else merge_into)
    return rows


def _cli(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny slice, 2 steps per run")
    parser.add_argument("--data", default=None, help=f"comma-separated subset of {', '.join(DATASETS)}")
    parser.add_argument("--configs", default=None, help=f"comma-separated subset of {', '.join(GRID)}")
    parser.add_argument("--budgets", default=None, help="comma-separated minutes of training (default 3,10)")
    parser.add_argument("--model", default=None, help="base model (tiny-llama to smoke-test)")
    parser.add_argument("--out", default=None, help="write the rows here (the calibration file's schema)")
    parser.add_argument("--merge", nargs="?", const="default", default=None, metavar="TABLE",
                        help="merge the rows into assets/calibration.json (or TABLE)")
    parser.add_argument("--eval-limit", type=int, default=None, help="test examples per evaluation")
    parser.add_argument("--workspace", default=None, help="workspace folder (default $ASSISTANT_FACTORY_HOME)")
    args = parser.parse_args(argv)
    split = (lambda s: [x.strip() for x in s.split(",") if x.strip()] if s else None)
    unknown = [x for x in split(args.data) or [] if x not in DATASETS] + \
        [x for x in split(args.configs) or [] if x not in GRID]
    if unknown:
        print(f"error: unknown data or config {unknown}; see --help for the names", file=sys.stderr)
        return 2
    try:
        budgets = [float(b) for b in split(args.budgets)] if args.budgets else None
    except ValueError:
        budgets = [0.0]
    if budgets is not None and not all(b > 0 for b in budgets):
        print(f"error: --budgets takes positive minutes such as 3,10, got {args.budgets!r}", file=sys.stderr)
        return 2
    if args.workspace:
        os.environ["ASSISTANT_FACTORY_HOME"] = str(Path(args.workspace).resolve())
    main(quick=args.quick, names=split(args.data), configs=split(args.configs), budgets=budgets, model=args.model,
         out=args.out, merge_into=args.merge, eval_limit=args.eval_limit,
         command=" ".join(["python -m bench.calibration", *(argv if argv is not None else sys.argv[1:])]))
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
