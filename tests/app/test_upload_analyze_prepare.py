"""Steps 2-4: built-in samples, format detection and column mapping, the quality report, dataset preparation."""
import json
import re
from pathlib import Path

import pytest

from tests.app.conftest import LANGS, open_page, seed_upload, texts, write_project
from ui.i18n import t
from core.data.uploads import SAMPLES, UPLOAD_TYPES, safe_name, save_upload


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("sample", list(SAMPLES))
def test_sample_is_copied_detected_and_previewed(workspace, lang, sample):
    write_project(workspace)
    at = open_page("2_upload", lang)
    assert any(i.value == t("upload.nothing", lang) for i in at.info)
    assert t("upload.limit", lang, mb=200, types=", ".join(UPLOAD_TYPES)) in texts(at)
    at.radio(key="sample_pick").set_value(sample)
    at.button(key="sample_use").click().run()
    assert not at.exception
    upload = json.loads((workspace / "project.json").read_text())["upload"]
    assert upload["display_name"] == SAMPLES[sample]
    assert upload["path"].startswith(str(workspace / "uploads"))
    expected = {"support_en": "qa", "support_zh": "messages", "routing": "classification",
                "preference_en": "preference"}[sample]
    assert any(t(f"format.{expected}", lang) in s.value for s in at.success), [s.value for s in at.success]
    assert at.dataframe  # the raw preview


def test_mapping_fixes_a_file_detection_cannot_read(workspace):
    path = save_upload("odd columns.csv", "frage,antwort\nWie geht's?,Gut.\nWo ist es?,Hier.\n".encode())
    write_project(workspace, upload={"path": str(path), "display_name": "odd columns.csv", "format": None,
                                     "mapping": None})
    at = open_page("2_upload")
    assert at.error  # the engine's message, not a traceback
    assert "frage" in at.error[0].value
    at.selectbox(key="map_fmt").set_value("qa").run()
    at.selectbox(key="map_question").set_value("frage")
    at.selectbox(key="map_answer").set_value("antwort")
    at.button(key="map_apply").click().run()
    assert not at.exception
    saved = json.loads((workspace / "project.json").read_text())["upload"]
    assert saved["format"] == "qa" and saved["mapping"] == {"question": "frage", "answer": "antwort"}
    assert any("2" in s.value for s in at.success)


def test_upload_names_are_sanitised_and_never_paths(workspace):
    path = save_upload("../../etc/passwd.csv", b"question,answer\na,b\n")
    assert path.parent == workspace / "uploads"
    assert ".." not in path.name and "/" not in path.name
    assert safe_name("知识 库 (v2).JSONL", b"x").endswith(".jsonl")
    with pytest.raises(ValueError, match="not supported"):
        save_upload("evil.exe", b"MZ")


@pytest.mark.parametrize("lang", LANGS)
def test_analyze_shows_score_findings_and_charts(workspace, lang):
    upload = seed_upload(workspace)
    write_project(workspace, upload=upload)
    at = open_page("3_analyze", lang)
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    score = metrics[t("analyze.score", lang)]
    assert score.endswith("/ 100") and 0 <= int(score.split()[0]) <= 100
    assert metrics[t("analyze.rows", lang)] == "308"
    assert len(at.get("plotly_chart")) >= 2  # token lengths and language mix at least
    assert json.loads((workspace / "project.json").read_text())["analyzed"] == upload["path"]
    findings = at.expander
    assert any(t("analyze.raw", lang) == e.label for e in findings)
    # the report is kept next to the upload: a reload shows it without recomputing
    assert list((workspace / "uploads").glob("*.quality-*.json"))


def test_analyze_lists_affected_rows_of_a_planted_duplicate(workspace):
    rows = "question,answer\n" + "".join(f"Question number {i}?,Answer {i} is here.\n" for i in range(120))
    rows += "Question number 5?,Answer 5 is here.\n"  # an exact duplicate of row 6
    path = save_upload("dups.csv", rows.encode())
    write_project(workspace, upload={"path": str(path), "display_name": "dups.csv", "format": None, "mapping": None})
    at = open_page("3_analyze")
    dup = next(e for e in at.expander if "duplicate" in e.label.lower())
    toggle = next(tg for tg in at.toggle if tg.label == t("analyze.show_rows"))
    toggle.set_value(True).run()
    assert not at.exception
    shown = at.dataframe[0].value
    assert list(shown["row"]) == [121]
    assert list(shown["question"]) == ["Question number 5?"]  # the row itself, one click away
    assert dup


@pytest.mark.parametrize("lang", LANGS)
def test_prepare_writes_a_dataset_and_makes_it_active(workspace, lang):
    upload = seed_upload(workspace)
    write_project(workspace, upload=upload)
    at = open_page("4_prepare", lang)
    at.text_input[0].input("faq-v1")
    next(b for b in at.button if b.label == t("prepare.run", lang)).click().run()
    assert not at.exception
    project = json.loads((workspace / "project.json").read_text())
    assert project["active_dataset"] == "faq-v1"
    folder = workspace / "datasets" / "faq-v1"
    assert (folder / "splits" / "train.jsonl").exists()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[t("prepare.rows_in", lang)] == "308"
    n_train = sum(1 for _ in open(folder / "splits" / "train.jsonl", encoding="utf-8"))
    assert metrics[t("prepare.split.train", lang)] == f"{n_train:,}"
    assert at.dataframe  # what each processing step did (before/after counts)


def test_prepare_needs_an_upload(workspace):
    write_project(workspace)
    at = open_page("4_prepare")
    assert any(w.value == t("prepare.need_upload") for w in at.warning)


def _prepare(at, name: str, lang: str = "en"):
    at.text_input[0].input(name)
    next(b for b in at.button if b.label == t("prepare.run", lang)).click().run()
    assert not at.exception, at.exception


def test_prepare_twice_with_a_dataset_present_and_the_sidebar_follows(workspace):
    upload = seed_upload(workspace)
    write_project(workspace, upload=upload)
    at = open_page("4_prepare")
    _prepare(at, "faq-v1")
    # the sidebar, drawn before the page ran, shows the new dataset at once
    assert at.sidebar.selectbox(key="sidebar_dataset").value == "faq-v1"
    assert not any(c.value == t("sidebar.no_dataset") for c in at.sidebar.caption)
    assert any(s.value == t("prepare.done", id="faq-v1") for s in at.success)
    _prepare(at, "faq-v2")  # a dataset is present and its selectbox exists: preparing again must work
    assert json.loads((workspace / "project.json").read_text())["active_dataset"] == "faq-v2"
    assert at.sidebar.selectbox(key="sidebar_dataset").value == "faq-v2"
    assert sorted(at.sidebar.selectbox(key="sidebar_dataset").options) == ["faq-v1", "faq-v2"]


@pytest.mark.parametrize("lang", LANGS)
def test_prepare_table_has_empty_cells_and_the_split_is_explained(workspace, lang):
    upload = seed_upload(workspace)
    write_project(workspace, upload=upload)
    at = open_page("4_prepare", lang)
    _prepare(at, "faq-v1", lang)
    table = at.dataframe[0].value
    assert not table.isna().any().any() and "None" not in table.astype(str).values
    steps = table[t("prepare.col.step", lang)].tolist()
    assert t("prepare.op.split", lang) in steps and t("prepare.op.dedupe", lang) in steps
    dedupe = table[t("prepare.col.details", lang)][steps.index(t("prepare.op.dedupe", lang))]
    assert t("prepare.detail.exact", lang) in dedupe
    meta = json.loads((workspace / "datasets" / "faq-v1" / "meta.json").read_text())
    split = [op for op in meta["operations"] if op["op"] == "split"][0]
    assert t(f"prepare.split_reason.{split['reason']}", lang, n=split["before"], train=split["train"],
             req_train=split["requested"]["train"], req_val=split["requested"]["val"],
             req_test=split["requested"]["test"],
             val=split["val"], test=split["test"], train_pct=80, val_pct=10, test_pct=10) in texts(at)


def test_analyze_in_chinese_shows_the_findings_in_chinese(workspace):
    rows = "question,answer\n" + "".join(f"Question number {i}?,Answer {i} is here.\n" for i in range(120))
    rows += "Question number 5?,Answer 5 is here.\n"
    path = save_upload("dups.csv", rows.encode())
    write_project(workspace, upload={"path": str(path), "display_name": "dups.csv", "format": None, "mapping": None})
    at = open_page("3_analyze", "zh")
    dup = next(e for e in at.expander if "完全重复" in e.label)
    assert t("finding.exact_duplicates.cause", "zh", rows=1) in dup.label
    assert "exact duplicate" not in texts(at)
    assert any(t("finding.exact_duplicates.fix", "zh") in m.value for m in at.markdown)
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert t("analyze.chart.script", "zh") in titles


def test_prepare_in_chinese_shows_drift_warnings_in_chinese(workspace):
    upload = seed_upload(workspace)
    write_project(workspace, upload=upload)
    at = open_page("4_prepare", "zh")
    _prepare(at, "faq-v1", "zh")
    path = Path(upload["path"])
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:1] + lines[1:] * 2 + lines[1:40]), encoding="utf-8")  # many duplicates now
    _prepare(at, "faq-v2", "zh")
    meta = json.loads((workspace / "datasets" / "faq-v2" / "meta.json").read_text())
    assert meta["drift_warnings"], meta
    shown = [w.value for w in at.warning]
    assert shown and all(re.search(r"[\u4e00-\u9fff]", w) for w in shown)
    assert "duplicate rate" not in " ".join(shown)


def test_upload_page_shows_reading_notes_in_chinese(workspace):
    path = save_upload("notes.txt", "第一条文档。\n第二条文档。\n".encode("gbk"))
    write_project(workspace, upload={"path": str(path), "display_name": "notes.txt", "format": None, "mapping": None})
    at = open_page("2_upload", "zh")
    captions = [c.value for c in at.caption]
    assert "ℹ️ " + t("note.decoded", "zh", encoding="gbk") in captions
    assert "ℹ️ " + t("note.txt_lines", "zh") in captions
