"""The workspace refuses ids that could escape it and writes files atomically."""
import json
import os

import pytest

from core import fileio
from core import workspace as wsp
from core.errors import UserError


@pytest.mark.parametrize("bad, why", [
    ("../x", "path"), ("a/../../b", "path"), ("/abs", "absolute"), ("C:evil", "absolute"),
    ("", "empty"), ("   ", "empty"), ("x" * 300, "300 characters"), (".hidden", "characters"), ("a b", "characters"),
])
def test_bad_ids_are_refused_with_reason(bad, why):
    with pytest.raises(UserError, match=why):
        wsp.run_dir(bad)
    with pytest.raises(UserError):
        wsp.dataset_dir(bad, create=True)


def test_good_id_stays_inside_workspace(workspace):
    path = wsp.run_dir("my-run_1.v2", create=True)
    assert path.is_dir() and path.parent == workspace.resolve() / "runs"


def test_workspace_home_follows_env(workspace):
    assert wsp.workspace_home() == workspace.resolve()


def test_new_id_is_valid_and_unique():
    ids = {wsp.new_id("Support FAQ / 中文") for _ in range(20)}
    assert len(ids) == 20
    for i in ids:
        assert wsp.validate_id(i) == i and i.startswith("Support-FAQ")


def test_atomic_write_leaves_no_temp_and_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "status.json"
    fileio.atomic_write_json(target, {"state": "running"})
    with pytest.raises(TypeError):
        fileio.atomic_write_bytes(target, "not bytes")  # fails mid-write
    assert json.loads(target.read_text()) == {"state": "running"}
    assert os.listdir(tmp_path) == ["status.json"]


def test_read_jsonl_skips_partial_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    fileio.append_jsonl(path, {"step": 1})
    with open(path, "a") as fh:
        fh.write('{"step": 2, "lo')  # a writer mid-append
    assert list(fileio.read_jsonl(path)) == [{"step": 1}]


def test_list_ids_newest_first():
    for name in ("a", "b"):
        wsp.run_dir(name, create=True)
    os.utime(wsp.run_dir("a"), (1, 1))
    assert wsp.list_ids("runs") == ["b", "a"]
