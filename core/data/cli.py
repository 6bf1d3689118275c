"""``python -m core analyze`` and ``python -m core prepare`` (arguments are parsed in core/__main__.py)."""
from __future__ import annotations

import json
from typing import Any

from core.errors import UserError

from .dataset import make_analyzer, prepare_dataset
from .findings import english, render_note
from .kinds import analyze_rows, load_rows
from .quality import DEFAULT


def parse_map(items: list[str] | None) -> dict[str, str] | None:
    """['question=text', 'answer=intent'] -> {'question': 'text', 'answer': 'intent'}."""
    if not items:
        return None
    mapping = {}
    for item in items:
        field, sep, column = item.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise UserError(f"--map {item!r} is not FIELD=COLUMN; write it like --map question=text.")
        mapping[field.strip()] = column.strip()
    return mapping


def _model_arg(value: str | None) -> Any:
    if value is None:
        return DEFAULT
    return None if value.lower() in ("approx", "none") else value


def _print_report(info: dict, report: dict) -> None:
    print(f"{info['source']}: {info['file_type']} ({info['encoding'] or 'binary'}), format {info['format']} "
          f"({info['kind']}), {report['rows']} rows" + (f", {info['num_labels']} labels" if info["num_labels"] else ""))
    print(f"mapping: {info['mapping']}")
    for item in info["notes"] + report.get("notes", []):
        print(f"note: {render_note(item)}")
    docs = report["checks"].get("documents") or {}
    if docs:
        print(f"documents: {docs['documents']}, {docs['doc_tokens']} tokens -> {docs['chunks']} chunks of "
              f"{report['max_seq_len']} tokens (overlap {docs['chunk_overlap']}"
              + (", short documents packed)" if docs["documents_packed"] else ")"))
    pref = report["checks"].get("preference") or {}
    if pref:
        share = pref["chosen_longer_share"]
        print(f"pairs: {pref['identical']} identical, {pref['empty']} with an empty side, {pref['duplicate_prompts']} "
              f"duplicate prompts; chosen longer in {'-' if share is None else f'{share:.0%}'} of pairs, median "
              f"length ratio chosen/rejected {pref['median_length_ratio']}")
    lengths = report["checks"].get("lengths", {})
    if lengths:
        print(f"tokens ({lengths['tokenizer']}): mean {lengths['mean']}, p95 {lengths['p95']}, max {lengths['max']}; "
              f"{lengths['over_max']} over max_seq_len={report['max_seq_len']}")
    scripts = report["checks"]["script"]["shares"]
    print("script: " + ", ".join(f"{english(f'analyze.script.{k}')} {v:.0%}" for k, v in scripts.items() if v))
    print(f"\nquality score: {report['score']}/100")
    for d in report["deductions"]:
        rows = ", ".join(map(str, d["rows"][:10])) + (" …" if d["count"] > 10 else "")
        print(f"  -{d['points']:>2}  {d['cause']}\n        rows: {rows or '-'}\n        fix: {d['fix']}")
    if not report["deductions"]:
        print("  no problems found")


def analyze_command(args) -> int:
    """Detect, normalise and print the quality report (``--json``: one JSON document)."""
    rows, info = load_rows(args.data, format=args.format, mapping=parse_map(args.map))
    analyzer, note = make_analyzer(_model_arg(args.model), args.max_seq_len)
    report = analyze_rows(rows, info, analyzer)
    if note:
        report["notes"] = [note]
    if args.json:
        out = {"file": info["source"], "format": info["format"], "kind": info["kind"], "rows": report["rows"],
               "labels": info["num_labels"], "columns": info["columns"], "mapping": info["mapping"],
               "file_type": info["file_type"], "encoding": info["encoding"], "notes": info["notes"], **report}
        print(json.dumps(out, ensure_ascii=False, default=str))
    else:
        _print_report(info, report)
    return 0


def prepare_command(args) -> int:
    """Write a dataset into the workspace and print its id (``--json``: the meta.json document)."""
    dataset_id = prepare_dataset(args.data, format=args.format, mapping=parse_map(args.map), dedupe=args.dedupe,
                                 clean=args.clean, mask_pii=args.mask_pii, split=args.split, seed=args.seed,
                                 name=args.name, model=_model_arg(getattr(args, "model", None)),
                                 max_seq_len=getattr(args, "max_seq_len", 512))
    if args.json:
        from core.fileio import read_json
        from core.workspace import dataset_dir

        print(json.dumps(read_json(dataset_dir(dataset_id) / "meta.json"), ensure_ascii=False))
    else:
        print(dataset_id)
    return 0
