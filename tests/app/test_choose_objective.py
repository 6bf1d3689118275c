"""Choose offers DPO and ORPO for a preference dataset (the recommended one preselected) and saves the pick."""
import json

import pytest

from core.data.dataset import prepare_dataset
from core.data.uploads import save_sample
from tests.app.conftest import LANGS, open_page, seed_dataset, texts, write_project
from ui.i18n import t


@pytest.mark.parametrize("lang", LANGS)
def test_choose_offers_dpo_and_orpo_for_pairs_and_saves_the_pick(workspace, lang):
    dataset = prepare_dataset(save_sample("preference_en"), name="pairs-v1", model=None)
    write_project(workspace, active_dataset=dataset)
    at = open_page("5_choose", lang)
    pick = at.radio(key="objective_pick")
    assert pick.label == t("choose.objective", lang) and list(pick.options) == [t("objective.dpo", lang),
                                                                                t("objective.orpo", lang)]
    recommended = pick.value
    assert t("baselines.title", lang) not in texts(at)  # pairs have no answers for a baseline to be scored on

    def save() -> None:
        next(b for b in at.button if b.label == t("choose.save", lang)).click().run()

    save()
    assert json.loads((workspace / "project.json").read_text())["run_config"]["objective"] == recommended
    pick.set_value("orpo" if recommended == "dpo" else "dpo").run()
    save()
    assert not at.exception
    assert json.loads((workspace / "project.json").read_text())["run_config"]["objective"] != recommended


def test_a_conversation_dataset_offers_no_objective(workspace):
    seed_dataset(workspace)
    write_project(workspace, active_dataset="demo-data")
    at = open_page("5_choose")
    assert t("choose.objective") not in texts(at)
    assert t("baselines.title") in texts(at)
    next(b for b in at.button if b.label == t("choose.save")).click().run()
    assert "objective" not in json.loads((workspace / "project.json").read_text())["run_config"]
