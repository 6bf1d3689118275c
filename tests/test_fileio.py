"""core.fileio: standard JSON only (NaN/inf become null), damaged files named with a fix, damaged JSONL lines skipped."""
import json

import numpy as np
import pytest
import torch

from core import fileio
from core.errors import CorruptFileError, UserError


def _strict(text: str):
    """Parse as a strict JSON parser (a browser's JSON.parse, jq) would: NaN/Infinity tokens are errors."""
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=refuse)


NASTY = {"loss": float("nan"), "nested": {"eta": float("inf"), "list": [1.0, float("-inf"), {"x": float("nan")}]},
         "np": np.float32("nan"), "np_ok": np.float64(0.5), "np_int": np.int64(3), "torch": torch.tensor(float("inf")),
         "torch_ok": torch.tensor(2.5), "tuple": (float("nan"), 1)}
CLEAN = {"loss": None, "nested": {"eta": None, "list": [1.0, None, {"x": None}]}, "np": None, "np_ok": 0.5,
         "np_int": 3, "torch": None, "torch_ok": 2.5, "tuple": [None, 1]}


def test_atomic_write_json_writes_standard_json(tmp_path):
    path = tmp_path / "status.json"
    fileio.atomic_write_json(path, NASTY)
    assert _strict(path.read_text(encoding="utf-8")) == CLEAN


def test_append_jsonl_writes_standard_json(tmp_path):
    path = tmp_path / "metrics.jsonl"
    fileio.append_jsonl(path, {"step": 1, **NASTY})
    assert _strict(path.read_text(encoding="utf-8").strip()) == {"step": 1, **CLEAN}


def test_read_json_missing_gives_default_and_damaged_names_the_file(tmp_path):
    assert fileio.read_json(tmp_path / "nope.json", {"d": 1}) == {"d": 1}
    bad = tmp_path / "status.json"
    bad.write_text('{"state": "runn')
    with pytest.raises(CorruptFileError) as err:
        fileio.read_json(bad, {})
    assert isinstance(err.value, UserError) and str(bad) in str(err.value) and "delete" in str(err.value)
    bad.write_bytes(b'{"state": "\xff\xfe"}')
    with pytest.raises(CorruptFileError, match="UTF-8"):
        fileio.read_json(bad)


def test_read_jsonl_skips_and_counts_damaged_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1}\n{"step": 2, "lo\n\xff\xfe\n[1, 2]\n{"step": 3}\n{"step": 4')
    errors: list = []
    assert list(fileio.read_jsonl(path, errors)) == [{"step": 1}, {"step": 3}]  # partial last line: a writer mid-append
    assert len(errors) == 3 and "line 2" in errors[0] and str(path) in errors[0]
    assert list(fileio.read_jsonl(path)) == [{"step": 1}, {"step": 3}]  # without a list: still no exception


def test_file_lock_is_exclusive(tmp_path):
    import filelock

    with fileio.file_lock(tmp_path / "x.lock", timeout=1), pytest.raises(filelock.Timeout), \
            fileio.file_lock(tmp_path / "x.lock", timeout=0):
        pass
    with fileio.file_lock(tmp_path / "x.lock", timeout=0):  # released: free again
        pass
