"""Baselines before training: ``python -m core baselines DATASET`` runs core.evaluation.baselines.dataset_baselines
(few-shot base model, retrieval) on a prepared dataset's test split as a background job and stores the result in
``datasets/<id>/baselines/`` (job.json, progress.json, baselines.log, result.json), so the Choose page can poll it
and show the bar tuning has to beat. The after-training baselines check reuses a stored result for the same
dataset, model and system prompt (``stored_answers``) instead of asking the base model again.
"""
from __future__ import annotations

import functools
import hashlib
import sys
import time
from pathlib import Path
from typing import Optional

from core import jobs
from core.defaults import DEFAULT_MODEL
from core.errors import CorruptFileError, UserError
from core.evaluation.answering import answer_all
from core.evaluation.prompts import last_user_text
from core.fileio import atomic_write_json, read_json
from core.workspace import dataset_dir, list_ids

FOLDER = "baselines"
JOB_FILE = "job.json"
LOG_FILE = "baselines.log"
PROGRESS_FILE = "progress.json"
RESULT_FILE = "result.json"


def folder(dataset: str) -> Path:
    """``datasets/<id>/baselines``: the job's files and the result."""
    return dataset_dir(dataset) / FOLDER


def checked_dataset(dataset: str) -> str:
    """The id of a prepared chat dataset with a test split; UserError saying what is wrong otherwise."""
    from core.data.kinds import dataset_kind

    splits = dataset_dir(dataset) / "splits"
    if not (splits / "test.jsonl").is_file() or not (splits / "train.jsonl").is_file():
        known = ", ".join(list_ids("datasets")[:10]) or "none yet"
        raise UserError(f"There is no prepared dataset {dataset!r} in this workspace (prepared: {known}); prepare "
                        "one first with the Prepare page or `python -m core prepare FILE`.")
    kind = dataset_kind(dataset_dir(dataset))
    if kind != "chat":
        raise UserError(f"Dataset {dataset!r} holds {kind} data, not conversations; the baselines compare answers "
                        "to the test split's assistant answers, so they need a chat dataset.")
    if not (splits / "test.jsonl").read_text(encoding="utf-8").strip():
        raise UserError(f"The test split of {dataset!r} is empty; prepare it again with a test share above 0 %.")
    return dataset


def _sha(path: Path) -> str:
    stat = path.stat()  # the Choose page asks on every rerun: hash a split again only when it changed
    return _sha_of(str(path), stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _sha_of(path: str, inode: int, mtime_ns: int, ctime_ns: int, size: int) -> str:  # ctime: no utime sets it back
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def fingerprint(dataset: str, model: str, system_prompt: Optional[str]) -> dict:
    """What a stored result depends on: the train and test splits' bytes, the base model, the system prompt."""
    splits = dataset_dir(dataset) / "splits"
    return {"dataset": dataset, "model": model, "system_prompt": system_prompt or None,
            "train_sha256": _sha(splits / "train.jsonl"), "test_sha256": _sha(splits / "test.jsonl")}


def stored(dataset: str, model: str, system_prompt: Optional[str]) -> Optional[dict]:
    """The stored result when it was computed for these splits, model and system prompt (else None)."""
    try:
        record = read_json(folder(dataset) / RESULT_FILE, None)
        if not isinstance(record, dict) or not (dataset_dir(dataset) / "splits" / "train.jsonl").is_file():
            return None
        current = fingerprint(dataset, model, system_prompt)
    except (CorruptFileError, UserError, OSError):
        return None
    return record if all(record.get(k) == v for k, v in current.items()) else None


def stored_answers(run_id: str, cfg: dict, examples: list[dict]) -> Optional[dict]:
    """The stored few-shot and retrieval answers for a run's test ``examples`` (same dataset, model, system
    prompt, every prompt and reference found), as ``{"few_shot": [...], "retrieval": [...], "source": path}``;
    few-shot answers are None for the prompts outside the few-shot sample."""
    from core.evaluation.baselines import FEW_SHOT_MAX, sample_indices
    from core.evaluation.causes import run_dataset

    try:
        dataset = run_dataset(run_id)
    except UserError:  # trained on a plain file: nothing was stored before training
        return None
    record = stored(dataset, cfg.get("model") or DEFAULT_MODEL, cfg.get("system_prompt"))
    if record is None:
        return None
    by_prompt = {(i["prompt"], i["reference"]): i for i in (record.get("result") or {}).get("items") or []}
    found = [by_prompt.get((last_user_text(e.get("messages") or []), e.get("reference", ""))) for e in examples]
    # Reused only when the stored answers cover the sample a fresh check would ask (a --limit'ed evaluation asks
    # other prompts than the whole split's sample); answers outside that sample are left out.
    asked = set(sample_indices(len(examples), FEW_SHOT_MAX))
    if not examples or None in found or any(found[i].get("few_shot") is None for i in asked):
        return None
    return {"few_shot": [f["few_shot"] if i in asked else None for i, f in enumerate(found)],
            "retrieval": [f["retrieval"] for f in found], "source": str(folder(dataset) / RESULT_FILE)}


# ---------------------------------------------------------------- the job: start and poll (the page's side)
def start(dataset: str, model: str, system_prompt: Optional[str], limit: Optional[int]) -> dict:
    """Start ``python -m core baselines DATASET --model M [--system-prompt S] [--limit N]`` in the background."""
    from core.fileio import file_lock

    checked_dataset(dataset)
    args = [dataset, "--model", model] + (["--limit", str(int(limit))] if limit else [])
    args += ["--system-prompt", system_prompt] if system_prompt else []
    folder(dataset).mkdir(parents=True, exist_ok=True)
    with file_lock(folder(dataset) / "start.lock", timeout=10):  # two tabs (or the CLI) never start two jobs
        if state(dataset)["state"] == "running":
            raise UserError(f"The baselines of {dataset!r} are being computed already; wait for them to finish.")
        (folder(dataset) / PROGRESS_FILE).unlink(missing_ok=True)  # the previous job's
        return jobs.spawn(folder(dataset), "baselines", args, log_name=LOG_FILE, job_file=JOB_FILE,
                          extra={"model": model, "limit": limit})


def state(dataset: str) -> dict:
    """``{"state": idle|running|done|failed, "fraction", "message", "started_at", "done", "total",
    "answering_since"}`` of the dataset's latest baselines job."""
    current = jobs.job_state(folder(dataset), JOB_FILE, PROGRESS_FILE)
    progress, job = current.pop("progress", {}), current.pop("job", {})
    return {**current, **{k: progress.get(k) for k in ("done", "total", "answering_since")},
            "started_at": job.get("started_at")}


def log_tail(dataset: str, lines: int = 15) -> str:
    """The last lines of the job's log."""
    return jobs.log_tail(folder(dataset) / LOG_FILE, lines)


def remaining_s(job: dict, now: Optional[float] = None) -> Optional[float]:
    """Seconds left, from the rate of the answers so far (None before the first answers: no honest guess yet)."""
    done, total, since = job.get("done"), job.get("total"), job.get("answering_since")
    if not done or not total or not since:
        return None
    return ((now or time.time()) - float(since)) / done * max(0, total - done)


# ---------------------------------------------------------------- the verb (the job's side)
class _Progress:
    """Writes progress.json with the answer count, so the page can estimate the time left."""

    def __init__(self, path: Optional[Path]):
        self.path, self.extra = path, {}

    def __call__(self, fraction: float, message: str) -> None:
        if self.path is not None:
            jobs.write_progress(self.path, "running", fraction, message, **self.extra)
        print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)

    def answers(self, answer, share: tuple[float, float] = (0.1, 1.0)):
        """``answer`` through answer_all (chunks of CHUNK prompts), with the count done after each chunk."""
        def chunked(prompts: list[list[dict]]) -> list[str]:
            total, (lo, hi) = len(prompts), share
            self.extra = {"done": 0, "total": total, "answering_since": time.time()}

            def counted(fraction: float, _code: str) -> None:
                self.extra["done"] = round((fraction - lo) / (hi - lo) * total)
                self(fraction, f"few-shot answers {self.extra['done']}/{total}")
            return answer_all(answer, prompts, counted, share)
        return chunked


def compute(dataset: str, model: str = DEFAULT_MODEL, system_prompt: Optional[str] = None,
            limit: Optional[int] = None, progress: Optional[_Progress] = None) -> dict:
    """Run both baselines on the dataset's test split and store them; returns the stored record."""
    from core.evaluation.baselines import dataset_baselines
    from core.evaluation.answering import answer_fn
    from core.models import load_model

    checked_dataset(dataset)
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1 (got {limit}); leave it out to use the whole test split.")
    progress = progress or _Progress(None)
    t0 = time.time()
    progress(0.0, f"loading {model}")
    base, tok = load_model(model)
    base.eval()
    answer = progress.answers(answer_fn(base, tok, system_prompt))
    result = dataset_baselines(dataset, answer, system_prompt, limit, progress)
    record = {**fingerprint(dataset, model, system_prompt), "limit": limit, "n": len(result.items),
              "seconds": time.time() - t0, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "result": result.to_dict()}
    atomic_write_json(folder(dataset) / RESULT_FILE, record)
    return record


def bar(record: dict) -> tuple[float, str]:
    """(the score tuning has to beat: the better baseline, the metric's name)."""
    base = record["result"]["base"]
    return max(base.get("few_shot", 0.0), base.get("retrieval", 0.0)), base["metric"]


def baselines_command(args) -> int:
    """``python -m core baselines DATASET``: exit 2 for a missing dataset or one without conversations."""
    checked_dataset(args.dataset)
    path = folder(args.dataset) / PROGRESS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        record = compute(args.dataset, args.model or DEFAULT_MODEL, args.system_prompt, args.limit, _Progress(path))
    except BaseException as exc:
        jobs.write_progress(path, "failed", 0.0, str(exc) or type(exc).__name__)
        raise
    jobs.write_progress(path, "done", 1.0, "done")
    base = record["result"]["base"]
    best, metric = bar(record)
    print(f"dataset {args.dataset}: {record['n']} test examples, {metric}")
    print(f"few-shot base model ({base['k']} examples, on {base.get('few_shot_n', 0)} of {record['n']} prompts): "
          f"{base.get('few_shot', 0.0):.4f}")
    print(f"retrieval (nearest training row's answer): {base['retrieval']:.4f}")
    print(f"to be worth it, tuning should beat {best:.4f} {metric}; stored in {folder(args.dataset) / RESULT_FILE}")
    return 0
