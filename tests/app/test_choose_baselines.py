"""Step 5 · Choose: "Baselines before training" starts a background job (python -m core baselines), then shows
the few-shot and retrieval figures with the metric's name and the bar tuning has to beat."""
import pytest

from core import jobs
from core.evaluation import pretrain_baselines as pre
from tests.app.conftest import LANGS, open_page, seed_dataset, texts, write_project
from ui.i18n import t

SYSTEM = "You are a test helper."


def test_the_button_starts_the_job_and_its_result_is_shown_when_it_ends(workspace):
    seed_dataset(workspace)
    write_project(workspace, active_dataset="demo-data")
    at = open_page("5_choose")
    assert t("baselines.none_yet", model="tiny-llama") in texts(at)
    next(n for n in at.number_input if n.label == t("baselines.limit")).set_value(2)
    next(b for b in at.button if b.label == t("baselines.start")).click().run()
    assert not at.exception, at.exception
    job = jobs.read_job(pre.folder("demo-data"))
    assert job["verb"] == "baselines" and job["args"] == ["demo-data", "--model", "tiny-llama", "--limit", "2",
                                                          "--system-prompt", SYSTEM]
    bars = [p.proto.text for p in at.get("progress")]  # the job takes seconds to start: it still runs here
    assert bars and bars[0].startswith(t("baselines.running")) and "0:0" in bars[0]
    assert jobs.wait(job) == 0, pre.log_tail("demo-data")
    at.run()
    assert not at.exception, at.exception
    record = pre.stored("demo-data", "tiny-llama", SYSTEM)
    assert record["n"] == 2
    best, metric = pre.bar(record)
    assert t("baselines.bar", score=best, metric=metric, n=2) in [e.value for e in at.info]


@pytest.mark.parametrize("lang", LANGS)
def test_a_finished_result_shows_both_figures_and_the_bar(workspace, lang):
    seed_dataset(workspace)
    write_project(workspace, active_dataset="demo-data")
    record = pre.compute("demo-data", "tiny-llama", SYSTEM, limit=2)
    at = open_page("5_choose", lang)
    base = record["result"]["base"]
    figures = {m.label: m.value for m in at.metric}
    assert figures[t("baselines.few_shot", lang, k=base["k"])] == f"{base['few_shot']:.3f}"
    assert figures[t("baselines.retrieval", lang)] == f"{base['retrieval']:.3f}"
    assert t("baselines.bar", lang, score=max(base["few_shot"], base["retrieval"]), metric="token_f1", n=2) in \
        [e.value for e in at.info]
    assert t("baselines.none_yet", lang, model="tiny-llama") not in texts(at)
