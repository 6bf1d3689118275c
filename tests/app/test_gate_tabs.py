"""The Evaluate page's release gate and check tabs on planted reports, in English and Chinese."""
import json

import pytest

from core.evaluation.gate import apply_gate
from core.evaluation.report import write_report
from tests.app.conftest import LANGS, open_page, seed_run_files, texts, write_project
from tests.evaluation.planted import broken_checks, good_checks, report
from ui.checksview import CHECK_KEYS, NOTE_KEYS, STATUS_KEYS
from ui.i18n import strings, t


def _plant(home, run_id, checks):
    seed_run_files(home, run_id, "stopped", steps=0)
    rep = report(run_id, checks)
    rep["gate"] = apply_gate(rep)
    write_report(rep, home / "runs" / run_id / "eval")
    write_project(home, active_run=run_id)


def test_every_key_built_from_an_engine_code_exists_in_both_languages():
    keys = [*CHECK_KEYS.values(), *STATUS_KEYS.values(), *NOTE_KEYS.values()]
    assert [k for k in keys if k not in strings("en") or k not in strings("zh")] == []


@pytest.mark.parametrize("lang", LANGS)
def test_the_gate_tab_fails_a_broken_run_and_new_thresholds_make_it_pass(workspace, lang):
    _plant(workspace, "broken", broken_checks())
    at = open_page("7_evaluate", lang)
    assert t("gate.overall", lang, status=t("gate.status.fail", lang)) in [e.value for e in at.error]
    labels = [tab.label for tab in at.get("tab")]
    assert t("checks.tab.gate", lang) in labels and t("checks.name.causes", lang) in labels
    assert t("checks.note.causes.method_minhash", lang) not in texts(at)  # causes did not run in this planted report
    inputs = {n.label: n for n in at.number_input}
    inputs[t("gate.max_forgotten", lang)].set_value(40)
    inputs[t("gate.min_abstention", lang)].set_value(0.0)
    inputs[t("gate.max_leak_rate", lang)].set_value(0.5)
    next(c for c in at.checkbox if c.label == t("gate.beat_baselines", lang)).uncheck()
    next(b for b in at.button if b.label == t("gate.apply", lang)).click().run()
    assert not at.exception
    stored = json.loads((workspace / "runs" / "broken" / "eval" / "report.json").read_text())
    assert stored["gate"]["status"] == "pass" and stored["gate"]["thresholds"]["max_forgotten"] == 40
    assert t("gate.overall", lang, status=t("gate.status.pass", lang)) in [e.value for e in at.success]


def test_a_good_run_passes(workspace):
    _plant(workspace, "good", good_checks())
    at = open_page("7_evaluate")
    assert t("gate.overall", status=t("gate.status.pass")) in [e.value for e in at.success]


def test_the_causes_tab_drops_the_chosen_rows_into_a_new_version_and_retrains(workspace, monkeypatch):
    import core.evaluation.causes as causes
    from tests.evaluation.planted import CAUSE_INDEX, train_rows, write_dataset

    write_dataset(workspace)
    folder = seed_run_files(workspace, "r1", "stopped", steps=0)
    (folder / "config.json").write_text(json.dumps({"model": "tiny-llama", "method": "lora",
                                                    "data": str(workspace / "datasets" / "faq")}))
    rep = report("r1", {"causes": causes.check_causes(report("r1", {}), train_rows()).to_dict()})
    write_report(rep, folder / "eval")
    write_project(workspace, active_run="r1")
    launched = []
    monkeypatch.setattr(causes, "retrain", lambda run_id, dataset: launched.append((run_id, dataset)) or "r2")
    at = open_page("7_evaluate")
    assert t("checks.note.causes.method_minhash") in texts(at)
    pick = next(m for m in at.multiselect if m.label == t("causes.pick"))
    pick.set_value([CAUSE_INDEX]).run()
    next(b for b in at.button if b.label == t("causes.drop_retrain")).click().run()
    assert not at.exception
    (run_id, dataset), = launched
    meta = json.loads((workspace / "datasets" / dataset / "meta.json").read_text())
    assert run_id == "r1" and meta["parent"] == "faq" and meta["changes"]["dropped"] == [CAUSE_INDEX]
    assert any("r2" in s.value for s in at.success)


@pytest.mark.parametrize("lang", LANGS)
def test_the_export_tab_asks_for_a_confirmation_before_exporting_a_failing_run(workspace, tmp_path, lang):
    from tests.evaluation.conftest import make_run

    make_run(tmp_path, run_id="broken")
    rep = report("broken", broken_checks())
    rep["gate"] = apply_gate(rep)
    write_report(rep, workspace / "runs" / "broken" / "eval")
    write_project(workspace, active_run="broken")
    at = open_page("8_chat_export", lang)
    builds = [b for b in at.button if b.label == t("export.build", lang)]
    assert builds and all(b.disabled for b in builds)
    assert t("gate.overall", lang, status=t("gate.status.fail", lang)) in [e.value for e in at.error]
    next(c for c in at.checkbox if c.label == t("gate.export.confirm", lang)).check().run()
    assert not at.exception
    assert all(not b.disabled for b in at.button if b.label == t("export.build", lang))
