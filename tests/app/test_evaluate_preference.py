"""The Evaluate page of a preference (DPO) run: pair accuracy base vs tuned, margins, samples, speed, no checks."""
import json

import pytest

from core.checkpoints import ADAPTER
from core.fileio import atomic_write_json
from tests.app.conftest import LANGS, open_page, seed_dataset, seed_run_files, texts, write_project
from tests.evaluation.planted import preference_report
from ui.i18n import t


def _preference_run(workspace, report: dict | None, objective: str = "dpo") -> None:
    """A completed run whose config trains ``objective``, with a (fake) final adapter and optionally a report."""
    seed_dataset(workspace)
    folder = seed_run_files(workspace, "pref-run", "completed")
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "objective": objective}))
    (folder / ADAPTER).mkdir()
    (folder / ADAPTER / "adapter_config.json").write_text("{}")  # usable weights: the page offers Evaluate
    if report is not None:
        atomic_write_json(folder / "eval" / "report.json", report)
    write_project(workspace, active_dataset="demo-data", active_run="pref-run")


@pytest.mark.parametrize("lang", LANGS)
def test_evaluate_shows_pair_accuracy_of_base_and_tuned(workspace, lang):
    _preference_run(workspace, preference_report("pref-run", base_acc=0.5, tuned_acc=0.875))
    at = open_page("7_evaluate", lang)
    cards = {m.label: m for m in at.metric}
    assert cards[t("evaluate.pairs.acc_base", lang)].value == "50.0%"
    tuned = cards[t("evaluate.pairs.acc_tuned", lang)]
    assert tuned.value == "87.5%" and tuned.proto.delta.startswith("+37.5")
    assert cards[t("evaluate.pairs.fig.mean_margin", lang)].value == "4.50"
    figures = at.dataframe[0].value
    assert list(figures[t("evaluate.col.metric", lang)]) == [t(f"evaluate.pairs.fig.{k}", lang) for k in
                                                              ("accuracy", "mean_margin", "logp_chosen",
                                                               "logp_rejected")]
    assert list(figures[t("evaluate.col.tuned", lang)])[:2] == [0.875, 4.5]
    samples = at.dataframe[1].value
    chosen = "Within 5 working days <after> the return arrives."
    assert list(samples.iloc[0]) == ["How long does a refund take?", chosen, "Never.", "Refunds take forever.",
                                     "About five working days."]
    assert list(at.dataframe[2].value["name"]) == ["base", "tuned (unmerged)"]  # the speed table
    shown = texts(at)
    assert t("evaluate.tab.pairs", lang) in shown and t("evaluate.pairs.dropped", lang, n=1) in shown
    assert t("evaluate.pairs.no_checks", lang) in shown and not at.multiselect  # the gate's checks do not apply
    assert t("checks.title", lang) not in shown and t("evaluate.tab.errors", lang) not in shown


def test_a_conversation_run_keeps_its_report_and_checks(workspace):
    _preference_run(workspace, None, objective="sft")
    at = open_page("7_evaluate")
    assert at.multiselect and t("evaluate.pairs.no_checks") not in texts(at)
    assert any(i.value == t("evaluate.none_yet") for i in at.info)
