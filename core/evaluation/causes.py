"""From a bad answer to its causes: the training rows nearest to it, a new dataset version without (or with
edited) rows, a retrain from the same settings, and which test answers changed between the two runs.

Nearness is MinHash over character 5-grams (core/data/minhash.py): an estimate of the n-gram Jaccard similarity
between the bad example (question + answer) and each training row (question + answer). It finds rows that share
wording with the bad answer, which is what a model copies; it does not see paraphrases.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import secrets
import shutil
import time
from typing import Callable, Optional, Sequence

import numpy as np

from core.data.minhash import signatures
from core.errors import UserError
from core.evaluation.checks import CheckResult
from core.evaluation.prompts import last_user_text
from core.evaluation.textmetrics import data_language
from core.fileio import atomic_write_json, read_json
from core.workspace import dataset_dir, kind_dir, new_id, run_dir

ProgressFn = Callable[[float, str], None]
METHOD = "MinHash"
NEAREST_K = 5          # training rows shown per bad answer
NUM_PERM = 128         # more permutations than the duplicate finder: similarities here are ranked, not thresholded
FAIL_F1 = 0.5          # a free-text test answer below this token F1 counts as failing


def row_texts(conv: dict) -> tuple[str, str]:
    """(the last user turn, the last assistant turn) of a training conversation."""
    messages = conv.get("messages") or []
    answer = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "assistant"), "")
    return last_user_text(messages), answer


def similarity(query_sig: np.ndarray, sigs: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of one signature to each row of ``sigs``."""
    return (sigs == query_sig[None, :]).mean(axis=1) if len(sigs) else np.zeros(0)


def nearest_rows(question: str, answer: str, train_rows: Sequence[dict], k: int = NEAREST_K,
                 sigs: Optional[np.ndarray] = None) -> list[dict]:
    """The ``k`` training rows most similar (MinHash) to a question and its answer, most similar first."""
    if not train_rows:
        return []
    if sigs is None:
        sigs = train_signatures(train_rows)
    query = signatures([f"{question}\n{answer}"], num_perm=NUM_PERM)[0]
    sims = similarity(query, sigs)
    order = np.argsort(-sims, kind="stable")[:k]
    out = []
    for i in order.tolist():
        q, a = row_texts(train_rows[i])
        out.append({"index": i, "similarity": round(float(sims[i]), 4), "question": q, "answer": a,
                    "method": METHOD})
    return out


def train_signatures(train_rows: Sequence[dict]) -> np.ndarray:
    """MinHash signatures of every training row's question + answer."""
    return signatures(["\n".join(row_texts(c)) for c in train_rows], num_perm=NUM_PERM)


def is_failing(example: dict) -> bool:
    """Whether a test example of the report is a failing answer (wrong label, or token F1 under FAIL_F1)."""
    if "correct" in example:
        return not example["correct"]
    return float(example.get("token_f1") or 0.0) < FAIL_F1


def check_causes(report: dict, train_rows: Sequence[dict], limit: Optional[int] = None,
                 progress: Optional[ProgressFn] = None) -> CheckResult:
    """For each failing tuned test answer (at most ``limit``), the nearest training rows by MinHash."""
    t0 = time.perf_counter()
    progress = progress or (lambda f, m: None)
    tuned = (report.get("tuned") or {}).get("examples") or []
    failing = [e for e in tuned if is_failing(e)]
    chosen = failing[:limit] if limit else failing
    sigs = train_signatures(train_rows)
    items = []
    for n, ex in enumerate(chosen):
        question = last_user_text(ex.get("messages") or [])
        items.append({"test_index": ex.get("index"), "prompt": question, "answer": ex.get("answer", ""),
                      "reference": ex.get("reference", ""),
                      "nearest": nearest_rows(question, ex.get("answer", ""), train_rows, sigs=sigs)})
        progress((n + 1) / max(1, len(chosen)), f"causes: {n + 1}/{len(chosen)}")
    base = (report.get("base") or {}).get("examples") or []
    return CheckResult(name="causes", base={"failing": sum(map(is_failing, base)), "total": len(base)},
                       tuned={"failing": len(failing), "total": len(tuned), "shown": len(items),
                              "method": METHOD},
                       items=items, seconds=time.perf_counter() - t0, notes=["causes.method_minhash"])


# ---------------------------------------------------------------- a new dataset version, a retrain, a comparison
def _read_rows(path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _write_rows(path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


ABSTAIN_ROWS = 24  # refusal rows the abstention fix adds: a few per out-of-scope domain, small beside the data


def derive_dataset(parent: str, drop: Sequence[int] = (), edits: Optional[dict[int, dict]] = None,
                   keep: Optional[Sequence[int]] = None, reason: str = "edit", add: Sequence[dict] = ()) -> str:
    """A new dataset version of ``parent``: its train split with rows ``drop``ped, ``edits`` (index ->
    conversation) applied, or only ``keep`` kept, then the ``add`` rows appended; val and test unchanged.
    meta.json names the parent; returns the id."""
    src = dataset_dir(parent)
    if not (src / "splits" / "train.jsonl").exists():
        raise UserError(f"{parent!r} is not a prepared dataset in this workspace; new versions can only be made "
                        "of datasets prepared on the Prepare page or with `python -m core prepare`.")
    rows = _read_rows(src / "splits" / "train.jsonl")
    bad = sorted({i for i in [*drop, *(edits or {}), *(keep or [])] if not 0 <= int(i) < len(rows)})
    if bad:
        raise UserError(f"Training row(s) {bad} do not exist; the train split of {parent!r} has {len(rows)} rows.")
    edited = [dict((edits or {}).get(i, r)) for i, r in enumerate(rows)]
    kept = set(range(len(rows))) if keep is None else {int(i) for i in keep}
    new_rows = [r for i, r in enumerate(edited) if i in kept and i not in set(map(int, drop))] + list(add)
    if not new_rows:
        raise UserError("The new dataset version would have no training rows; drop fewer rows.")
    meta = read_json(src / "meta.json", {}) or {}
    lineage = meta.get("lineage") or parent
    child = new_id(f"{lineage}-{reason}", kind="datasets")
    tmp = kind_dir("datasets") / f".tmp-{child}-{secrets.token_hex(3)}"
    try:
        shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("baselines"))  # the parent's job and result
        _write_rows(tmp / "splits" / "train.jsonl", new_rows)
        changes = {"dropped": sorted(map(int, drop)), "edited": sorted(map(int, edits or {})), "added": len(add),
                   "kept": None if keep is None else len(kept), "reason": reason}
        counts = {**(meta.get("counts") or {}), "train": len(new_rows)}
        atomic_write_json(tmp / "meta.json", {**meta, "id": child, "parent": parent, "changes": changes,
                                              "counts": counts, "created": _now()})
        os.rename(tmp, dataset_dir(child))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return child


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def run_dataset(run_id: str) -> str:
    """The dataset id a run was trained on (UserError when its data is a plain file)."""
    cfg = read_json(run_dir(run_id) / "config.json", None)
    if not isinstance(cfg, dict):
        raise UserError(f"There is no run {run_id!r} in this workspace.")
    data = str(cfg.get("data") or "")
    folder = dataset_dir(os.path.basename(data.rstrip("/"))) if data else None
    if not folder or not (folder / "splits").is_dir():
        raise UserError(f"Run {run_id!r} was trained on {data!r}, not a prepared dataset; prepare the data first so "
                        "it can be versioned.")
    return folder.name


def retrain_config(run_id: str, dataset_id: str) -> dict:
    """The parent run's config with only the data (and the name) changed."""
    cfg = dict(read_json(run_dir(run_id) / "config.json"))
    cfg["data"] = str(dataset_dir(dataset_id))
    cfg["name"] = f"{cfg.get('name') or run_id}-retrain"
    return cfg


def retrain(run_id: str, dataset_id: str) -> str:
    """Launch a run with ``run_id``'s settings on ``dataset_id`` (core.runs.launch); returns the new run id."""
    from core.runs import launch

    new_run = launch(retrain_config(run_id, dataset_id))
    atomic_write_json(run_dir(new_run) / "retrained_from.json", {"run": run_id, "dataset": dataset_id,
                                                                 "created": _now()})
    return new_run


def with_texts(conv: dict, question: str, answer: str) -> dict:
    """A copy of a training conversation whose last user and last assistant turns read ``question`` and ``answer``."""
    messages = [dict(m) for m in conv.get("messages") or []]
    for role, text in (("user", question), ("assistant", answer)):
        turn = next((m for m in reversed(messages) if m.get("role") == role), None)
        if turn is not None:
            turn["content"] = text
    return {**conv, "messages": messages}


def revise_and_retrain(run_id: str, drop: Sequence[int] = (),
                       edits: Optional[dict[int, tuple[str, str]]] = None) -> tuple[str, str]:
    """Drop and edit (index -> (question, answer)) training rows of a run's dataset into a new version, then
    retrain with the run's settings on it; returns (dataset id, run id)."""
    parent = run_dataset(run_id)
    rows = _read_rows(dataset_dir(parent) / "splits" / "train.jsonl")
    bad = sorted(i for i in (edits or {}) if not 0 <= int(i) < len(rows))
    if bad:
        raise UserError(f"Training row(s) {bad} do not exist; the train split of {parent!r} has {len(rows)} rows.")
    conv_edits = {int(i): with_texts(rows[int(i)], q, a) for i, (q, a) in (edits or {}).items()}
    dataset = derive_dataset(parent, drop=drop, edits=conv_edits, reason="edit" if conv_edits else "drop")
    return dataset, retrain(run_id, dataset)


def add_abstentions_and_retrain(run_id: str, n: int = ABSTAIN_ROWS) -> tuple[str, str]:
    """The abstention check's fix: ``n`` "I can't help with that" rows from the run's system prompt added to its
    dataset as a new version, then a retrain with the run's settings; returns (dataset id, run id)."""
    from core.evaluation.abstention import abstention_examples

    parent = run_dataset(run_id)
    cfg = read_json(run_dir(run_id) / "config.json")
    lang = data_language(_read_rows(dataset_dir(parent) / "splits" / "train.jsonl"))
    added = abstention_examples(cfg.get("system_prompt") or "", n, lang)
    dataset = derive_dataset(parent, add=added, reason="abstain")
    return dataset, retrain(run_id, dataset)


def nearest_for_run(run_id: str, question: str, answer: str, k: int = NEAREST_K) -> list[dict]:
    """The training rows of a run nearest (MinHash) to a question and an answer marked bad, e.g. in chat."""
    from core.data import load_split

    cfg = read_json(run_dir(run_id) / "config.json", None)
    if not isinstance(cfg, dict) or not cfg.get("data"):
        raise UserError(f"Run {run_id!r} has no readable config with its training data.")
    return nearest_rows(question, answer, load_split(cfg["data"], "train"), k)


def compare_runs(report_a: dict, report_b: dict) -> list[dict]:
    """Test answers that changed between two runs' reports (matched by test prompt), with whether each passes."""
    def key(ex: dict) -> str:
        return json.dumps(ex.get("messages"), ensure_ascii=False, sort_keys=True)

    after = {key(e): e for e in (report_b.get("tuned") or {}).get("examples") or []}
    out = []
    for a in (report_a.get("tuned") or {}).get("examples") or []:
        b = after.get(key(a))
        if b is None or b.get("answer") == a.get("answer"):
            continue
        out.append({"prompt": last_user_text(a.get("messages") or []), "reference": a.get("reference"),
                    "answer_a": a.get("answer"), "answer_b": b.get("answer"),
                    "passed_a": not is_failing(a), "passed_b": not is_failing(b)})
    return out


# ---------------------------------------------------------------- chat answers marked as bad
FEEDBACK_FILE = "chat_feedback.jsonl"


def mark_bad(run_id: str, question: str, answer: str, step: Optional[int] = None) -> dict:
    """Record a chat answer the user marked as bad in ``runs/<id>/chat_feedback.jsonl`` (one whole line per
    append, so it survives a reload and a reader never sees half a record); returns the record."""
    from core.fileio import append_jsonl, file_lock

    folder = run_dir(run_id)
    if not folder.is_dir():
        raise UserError(f"There is no run {run_id!r} in this workspace.")
    record = {"question": question, "answer": answer, "step": step, "verdict": "bad", "when": _now()}
    with file_lock(folder / (FEEDBACK_FILE + ".lock"), timeout=10):  # two sessions marking it: one line
        if (question, answer) not in {(r["question"], r["answer"]) for r in marked_bad(run_id)}:
            append_jsonl(folder / FEEDBACK_FILE, record)
    return record


def marked_bad(run_id: str) -> list[dict]:
    """The chat answers marked as bad for a run, oldest first (a damaged line is skipped)."""
    from core.fileio import read_jsonl

    return [r for r in read_jsonl(run_dir(run_id) / FEEDBACK_FILE)
            if isinstance(r.get("question"), str) and isinstance(r.get("answer"), str)]
