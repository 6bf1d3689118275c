"""Findings are codes with parameters: the UI translates them (en, zh), the CLI prints English from the same table."""
from __future__ import annotations

import json
import re

from core.__main__ import main
from core.data import DataQualityAnalyzer
from core.data.findings import CODES, I18N_DIR, english, render_finding

from .helpers import cls_rows, convs_of, qa_rows

ZH = json.loads((I18N_DIR / "zh.json").read_text(encoding="utf-8"))


def chinese(key: str, **fmt) -> str:
    return ZH[key].format(**fmt) if fmt else ZH[key]


def _messy_reports() -> list[dict]:
    rows = qa_rows(30)
    rows[1] = dict(rows[0])
    rows[2]["answer"] = "<b>mail</b> john.doe@example.com"
    rows[3] = {"question": "你好吗？", "answer": "我很好。"}
    rows[4] = {"question": rows[5]["question"], "answer": "A different answer entirely."}
    rows[6]["answer"] = ""
    labels = [dict(r) for r in cls_rows(120)] + [{"text": "odd one", "label": "Label 0"}]
    cls = [{"messages": [{"role": "user", "content": r["text"]}, {"role": "assistant", "content": r["label"]}],
            "meta": {"row": i + 1, "label": r["label"]}} for i, r in enumerate(labels)]
    analyzer = DataQualityAnalyzer(tokenizer=None, max_seq_len=8)
    return [analyzer.analyze(convs_of(rows)), analyzer.analyze(cls, {"format": "classification"})]


def test_every_code_has_cause_and_fix_in_both_languages():
    en = json.loads((I18N_DIR / "en.json").read_text(encoding="utf-8"))
    for code in CODES:
        for part in ("cause", "fix"):
            assert en[f"finding.{code}.{part}"] and re.search(r"[\u4e00-\u9fff]", ZH[f"finding.{code}.{part}"])


def test_findings_carry_codes_and_render_in_chinese():
    findings = [d for report in _messy_reports() for d in report["deductions"]]
    codes = {d["code"] for d in findings}
    assert {"size_small", "exact_duplicates", "conflicts_answers", "too_long", "pii_personal", "formatting",
            "labels_variants", "empty_fields"} <= codes, codes
    for d in findings:
        json.dumps(d["params"])  # JSON-able, so the report can be kept on disk
        assert (d["cause"], d["fix"]) == render_finding(d["code"], d["params"], english)
        cause, fix = render_finding(d["code"], d["params"], chinese)
        assert re.search(r"[\u4e00-\u9fff]", cause) and re.search(r"[\u4e00-\u9fff]", fix)
        assert "{" not in cause + fix
    pii = next(d for d in findings if d["code"] == "pii_personal")
    assert "电子邮箱: 1" in render_finding("pii_personal", pii["params"], chinese)[0]


def test_list_parameters_are_joined_and_cut():
    cause, _ = render_finding("labels_rare", {"n": 12, "labels": [f"l{i}" for i in range(12)], "min_examples": 5})
    assert cause == "12 rare labels: l0, l1, l2, l3, l4, l5, l6, l7, l8, l9 …"
    cause, _ = render_finding("labels_variants", {"groups": [["Label 0", "label_0"]]})
    assert cause == "labels spelled several ways: Label 0 / label_0"


def test_cli_prints_the_english_of_the_codes(tmp_path, capsys):
    path = tmp_path / "d.csv"
    rows = qa_rows(30)
    rows[1] = dict(rows[0])
    path.write_text("question,answer\n" + "".join(f"{r['question']},{r['answer']}\n" for r in rows), encoding="utf-8")
    assert main(["analyze", str(path), "--model", "approx"]) == 0
    out = capsys.readouterr().out
    assert "1 exact duplicate rows (same text after normalising case, spacing and punctuation)" in out
    assert "fix: Remove them with `prepare --dedupe` (keeps the first copy)." in out
    assert "script: Latin script 100%" in out
    assert main(["analyze", str(path), "--model", "approx", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    dup = next(d for d in doc["deductions"] if d["code"] == "exact_duplicates")
    assert dup["params"] == {"rows": 1} and dup["cause"].startswith("1 exact duplicate rows")


def test_no_template_uses_a_placeholder_that_clashes_with_the_translators_arguments():
    en = json.loads((I18N_DIR / "en.json").read_text(encoding="utf-8"))
    names = {m for k, v in en.items() if k.startswith(("finding.", "drift.", "note."))
             for m in re.findall(r"\{(\w+)", v)}
    assert names and not names & {"key", "code"}  # t(key, code, **fmt) and english(key, **fmt)
