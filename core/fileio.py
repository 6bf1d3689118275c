"""Atomic file I/O, a leaf module: it imports only core.errors (itself a leaf), so any part of core/ may use it.

Every JSON file written here is standard JSON: NaN and infinities (also numpy/torch scalars) become null, because
browsers, ``jq`` and most JSON parsers reject the ``NaN`` tokens Python's json module writes by default.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, Optional

import filelock

from core.errors import CorruptFileError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path`` then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Atomic UTF-8 text write."""
    atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(obj: Any) -> Any:
    """``obj`` with non-finite floats (NaN, +-inf) replaced by None, recursively; numpy/torch values made plain."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in obj]
    if callable(getattr(obj, "tolist", None)):  # numpy scalars/arrays and torch tensors, without importing them
        try:
            return json_safe(obj.tolist())
        except (TypeError, ValueError, RuntimeError):
            return str(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return str(obj)


def dumps(obj: Any, indent: Optional[int] = None) -> str:
    """Standard JSON text of ``obj`` (non-finite floats as null; never the non-standard NaN/Infinity tokens)."""
    return json.dumps(json_safe(obj), indent=indent, ensure_ascii=False, allow_nan=False)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomic JSON write (UTF-8, indented, non-ASCII kept readable, non-finite floats as null)."""
    atomic_write_text(path, dumps(obj, indent=2) + "\n")


def _corrupt(path: Path, why: str) -> CorruptFileError:
    return CorruptFileError(
        f"The file {path} is damaged ({why}), so it cannot be read. Restore it from a backup, or delete it "
        f"(or its folder) to start that item again; other files are not affected.")


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """A JSON file's value, ``default`` when it does not exist; CorruptFileError when it is not valid UTF-8 JSON."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return default
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise _corrupt(path, "it is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise _corrupt(path, f"invalid JSON at line {exc.lineno}, column {exc.colno}") from None


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON record as one line in a single write, so a reader never sees half a record."""
    line = dumps(record) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()


def read_jsonl(path: str | os.PathLike, errors: Optional[list] = None) -> Iterator[dict]:
    """Yield complete JSON lines; a trailing partial line (a writer mid-append) is skipped, and so is a damaged
    line (one message per damaged line is appended to ``errors`` when given) so one bad line never hides the rest."""
    try:
        with open(path, "rb") as fh:
            for number, raw in enumerate(fh, start=1):
                if not raw.endswith(b"\n"):
                    break
                try:
                    line = raw.decode("utf-8").strip()
                    record = json.loads(line) if line else {}
                except (UnicodeDecodeError, json.JSONDecodeError):
                    record = None
                if not isinstance(record, dict):  # damaged, or JSON that is not an object
                    if errors is not None:
                        errors.append(f"{path}: line {number} is damaged (not a JSON object) and was skipped")
                    continue
                if not record and not line:
                    continue
                yield record
    except FileNotFoundError:
        return


def file_lock(path: str | os.PathLike, timeout: float = -1) -> filelock.FileLock:
    """An inter-process lock on ``path`` (use as ``with file_lock(p, timeout=5): ...``; -1 waits forever).

    Raises ``filelock.Timeout`` when not acquired in ``timeout`` seconds. The lock file is separate from the data.
    """
    return filelock.FileLock(str(path), timeout=timeout)
