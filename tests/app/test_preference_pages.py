"""Upload, Analyze and Prepare recognise preference pairs and documents (issue 21, the data side)."""
import json

import pytest

from core.data.uploads import save_sample, save_upload
from tests.app.conftest import LANGS, open_page, texts, write_project
from ui.i18n import t


def _project_with(workspace, path, name):
    return write_project(workspace, upload={"path": str(path), "display_name": name, "format": None,
                                            "mapping": None})


@pytest.mark.parametrize("lang", LANGS)
def test_preference_sample_through_upload_analyze_prepare(workspace, lang):
    path = save_sample("preference_en")
    _project_with(workspace, path, "support_preference_en.jsonl")
    at = open_page("2_upload", lang)
    assert any(t("upload.detected_pairs", lang, format=t("format.preference", lang), rows=40) == s.value
               for s in at.success)
    assert t("upload.pair_chosen", lang) in texts(at) and t("upload.pair_rejected", lang) in texts(at)
    at = open_page("3_analyze", lang)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[t("analyze.pref.identical", lang)] == "0" and metrics[t("analyze.pref.longer", lang)] == "50%"
    at = open_page("4_prepare", lang)
    at.text_input[0].input("pairs-v1")
    next(b for b in at.button if b.label == t("prepare.run", lang)).click().run()
    assert not at.exception, at.exception
    meta = json.loads((workspace / "datasets" / "pairs-v1" / "meta.json").read_text())
    assert meta["kind"] == "preference"
    assert t("prepare.kind", lang, kind=t("kind.preference", lang)) in texts(at)


def test_document_upload_shows_tokens_and_windows(workspace):
    text = "\n\n".join("".join(f"Part {d} sentence {i} of the manual. " for i in range(80)) for d in range(3))
    path = save_upload("manual.md", text.encode())
    _project_with(workspace, path, "manual.md")
    at = open_page("2_upload")
    assert t("upload.document_note") in texts(at)
    at = open_page("3_analyze")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[t("analyze.docs.documents")] == "3" and int(metrics[t("analyze.docs.chunks")]) >= 3
