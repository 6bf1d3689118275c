"""core.project: project.json read once per change, updated under a lock, and the steps done judged from files."""
import json
import multiprocessing as mp

from core import project as proj


def _writer(home: str, field: str, n: int) -> None:
    import os

    os.environ["ASSISTANT_FACTORY_HOME"] = home
    for i in range(n):
        proj.update_project(**{field: f"{field}-{i}"})


def test_concurrent_updates_of_different_fields_lose_nothing(workspace):
    proj.save_project(proj.load_project())
    ctx = mp.get_context("spawn")
    fields = ("name", "persona", "system_prompt", "base_model")  # without the lock, some update is lost
    workers = [ctx.Process(target=_writer, args=(str(workspace), field, 200)) for field in fields]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    saved = json.loads((workspace / "project.json").read_text())
    assert [saved[f] for f in fields] == [f"{f}-199" for f in fields]


def test_load_reads_the_file_once_until_it_changes(workspace, monkeypatch):
    proj.update_project(name="A")
    reads = []
    real = proj.read_json
    monkeypatch.setattr(proj, "read_json", lambda *a, **k: reads.append(1) or real(*a, **k))
    assert proj.load_project()["name"] == "A"
    for _ in range(5):
        assert proj.load_project()["name"] == "A"
    assert len(reads) == 1
    proj.update_project(name="B")  # reads under the lock, never from the cache
    assert proj.load_project()["name"] == "B"
    first = proj.load_project()
    first["name"] = "changed by a caller"
    assert proj.load_project()["name"] == "B"  # callers get copies


def test_a_corrupt_file_gives_the_defaults_and_the_language_is_kept(workspace):
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "project.json").write_text("{nope")
    assert proj.load_project() == proj.DEFAULTS
    proj.update_project(language="zh")
    assert proj.load_project()["language"] == "zh"


def test_steps_done_come_from_the_workspace_files(workspace):
    folder = workspace / "runs" / "r1"
    folder.mkdir(parents=True)
    (folder / "status.json").write_text(json.dumps({"state": "completed"}))
    (workspace / "datasets" / "d1" / "splits").mkdir(parents=True)
    done = proj.step_done({**proj.DEFAULTS, "name": "x", "system_prompt": "y", "active_run": "r1",
                           "active_dataset": "d1", "run_config": {"method": "lora"}})
    assert {k for k, v in done.items() if v} == {"define", "prepare", "choose", "train"}
    assert proj.step_done({**proj.DEFAULTS, "active_run": "../escape"})["train"] is False
