"""Readers, encodings and bad input: every refusal is a UserError naming what and where (CLI exit 2)."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from core.__main__ import main
from core.data.io import read_table
from core.errors import UserError

ROWS = [{"question": "What is the capital of France?", "answer": "Paris, of course."},
        {"question": "Who wrote Hamlet?", "answer": "Shakespeare wrote it, around 1600."}]


# ---------------------------------------------------------------- readers
def test_csv_with_quoted_commas_and_newlines(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text('question,answer\n"Hi, there","line one\nline two"\nplain,text\n', encoding="utf-8")
    t = read_table(p)
    assert t.columns == ["question", "answer"]
    assert t.records == [{"question": "Hi, there", "answer": "line one\nline two"},
                         {"question": "plain", "answer": "text"}]
    assert t.file_type == "csv" and t.encoding == "utf-8"


def test_tsv(tmp_path):
    p = tmp_path / "d.tsv"
    p.write_text("text\tlabel\nhello, world\tgreet\n", encoding="utf-8")
    assert read_table(p).records == [{"text": "hello, world", "label": "greet"}]


def test_semicolon_csv(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("text;label\nbonjour;greet\n", encoding="utf-8")
    assert read_table(p).records == [{"text": "bonjour", "label": "greet"}]


def test_short_csv_row_is_padded_not_refused(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("question,answer\nonly a question\n", encoding="utf-8")
    assert read_table(p).records == [{"question": "only a question", "answer": ""}]


def test_json_list_and_wrapped(tmp_path):
    p = tmp_path / "d.json"
    p.write_text(json.dumps(ROWS), encoding="utf-8")
    assert read_table(p).records == ROWS
    p.write_text(json.dumps({"data": ROWS}), encoding="utf-8")
    t = read_table(p)
    assert t.records == ROWS and t.notes[0]["code"] == "json_key" and t.notes[0]["params"] == {"field": "data"}


def test_json_dict_of_pair_splits(tmp_path):
    p = tmp_path / "d.json"
    p.write_text(json.dumps({"train": [["hi", "greet"], ["bye", "leave"]], "test": [["hello", "greet"]]}))
    t = read_table(p)
    assert t.columns == ["text", "label", "split"]
    assert t.records[2] == {"text": "hello", "label": "greet", "split": "test"}


def test_jsonl_skips_blank_lines(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps(ROWS[0]) + "\r\n\n" + json.dumps(ROWS[1]) + "\n", encoding="utf-8")
    assert read_table(p).records == ROWS
    odd = {"question": "line\u2028separator", "answer": "kept"}
    p.write_text(json.dumps(odd, ensure_ascii=False) + "\n", encoding="utf-8")
    assert read_table(p).records == [odd]


def test_parquet(tmp_path):
    p = tmp_path / "d.parquet"
    pd.DataFrame(ROWS).to_parquet(p)
    t = read_table(p)
    assert t.records == ROWS and t.file_type == "parquet"


def test_xlsx(tmp_path):
    p = tmp_path / "d.xlsx"
    with pd.ExcelWriter(p) as writer:
        pd.DataFrame(ROWS).to_excel(writer, index=False, sheet_name="qa")
        pd.DataFrame([{"x": 1}]).to_excel(writer, index=False, sheet_name="other")
    t = read_table(p)
    assert t.records == ROWS and t.file_type == "xlsx"
    assert any("first sheet" in n["text"] for n in t.notes)


def test_txt_paragraphs_and_lines(tmp_path):
    p = tmp_path / "d.txt"
    p.write_text("First doc\nstill first.\n\nSecond doc.\n", encoding="utf-8")
    assert [r["text"] for r in read_table(p).records] == ["First doc\nstill first.", "Second doc."]
    p.write_text("one\ntwo\nthree\n", encoding="utf-8")
    assert [r["text"] for r in read_table(p).records] == ["one", "two", "three"]


# ---------------------------------------------------------------- encodings
CHINESE = "问题,答案\n你好吗？,我很好，谢谢。\n今天天气怎么样？,今天是晴天。\n"


@pytest.mark.parametrize("encoding,expected", [("utf-8-sig", "utf-8-sig"), ("gbk", "gbk"), ("utf-16", "utf-16"),
                                               ("utf-16-le", "utf-16-le"), ("utf-16-be", "utf-16-be")])
def test_encodings_read(tmp_path, encoding, expected):
    p = tmp_path / "d.csv"
    p.write_bytes(CHINESE.encode(encoding) if encoding != "utf-16-le" else
                  "question,answer\nhello there,hi\n".encode("utf-16-le"))
    t = read_table(p)
    assert t.encoding == expected
    first = t.records[0]
    assert first in ({"问题": "你好吗？", "答案": "我很好，谢谢。"}, {"question": "hello there", "answer": "hi"})


def test_latin1_refused_naming_encoding(tmp_path):
    p = tmp_path / "d.csv"
    p.write_bytes("question,answer\nQu'est-ce qu'un café?,Une boisson été chaude.\n".encode("cp1252"))
    with pytest.raises(UserError, match=r"not UTF-8 \(first bad byte on line 2\).*Windows-1252"):
        read_table(p)


def test_shift_jis_refused_naming_encoding(tmp_path):
    p = tmp_path / "d.csv"
    p.write_bytes("question,answer\nこんにちは,こんばんは\n".encode("shift_jis"))
    with pytest.raises(UserError, match="Shift_JIS"):
        read_table(p)


def test_binary_with_text_extension_refused(tmp_path):
    p = tmp_path / "d.csv"
    p.write_bytes(b"%PDF-1.7\n" + bytes(range(256)))
    with pytest.raises(UserError, match="PDF"):
        read_table(p)
    p.write_bytes(b"\x00\x01\x02binary\x00\xff\xfe\x00" * 10)
    with pytest.raises(UserError, match="NUL bytes"):
        read_table(p)


def test_fake_xlsx_refused(tmp_path):
    p = tmp_path / "d.xlsx"
    p.write_text("question,answer\na,b\n")
    with pytest.raises(UserError, match="not a real XLSX"):
        read_table(p)


# ---------------------------------------------------------------- bad input
def test_empty_and_blank_files(tmp_path):
    p = tmp_path / "d.csv"
    p.write_bytes(b"")
    with pytest.raises(UserError, match="empty"):
        read_table(p)
    p.write_text("  \n\n")
    with pytest.raises(UserError, match="no content"):
        read_table(p)
    p.write_text("question,answer\n")
    with pytest.raises(UserError, match="no data rows"):
        read_table(p)


def test_size_limit_from_env(tmp_path, monkeypatch):
    p = tmp_path / "d.csv"
    p.write_text("question,answer\n" + "a,b\n" * 400)
    monkeypatch.setenv("ASSISTANT_FACTORY_MAX_UPLOAD_MB", "0.001")
    with pytest.raises(UserError, match="over the 0.001 MB limit.*ASSISTANT_FACTORY_MAX_UPLOAD_MB"):
        read_table(p)
    monkeypatch.setenv("ASSISTANT_FACTORY_MAX_UPLOAD_MB", "1")
    assert len(read_table(p).records) == 400


def test_malformed_csv_row_names_line(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("question,answer\ngood,row\nbad,row,with extra\n", encoding="utf-8")
    with pytest.raises(UserError, match="line 3: 3 fields but the header has 2"):
        read_table(p)
    p.write_text('question,answer\ngood,row\n"oops"x,y\n', encoding="utf-8")
    with pytest.raises(UserError, match="line 3: malformed row"):
        read_table(p)


def test_malformed_jsonl_names_line(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps(ROWS[1]) + "\n{\"question\": \"x\", \n")
    with pytest.raises(UserError, match="line 3: invalid JSON"):
        read_table(p)
    p.write_text(json.dumps(ROWS[0]) + "\n[1, 2]\n")
    with pytest.raises(UserError, match="line 2: a list, not a JSON object"):
        read_table(p)


def test_malformed_json_names_line(tmp_path):
    p = tmp_path / "d.json"
    p.write_text('[\n {"question": "a", "answer": "b"},\n {"question": "c" "answer": "d"}\n]\n')
    with pytest.raises(UserError, match="line 3, column"):
        read_table(p)


def test_unsupported_extension_and_missing_file(tmp_path):
    p = tmp_path / "d.docx"
    p.write_text("x")
    with pytest.raises(UserError, match="not supported.*CSV"):
        read_table(p)
    with pytest.raises(UserError, match="does not exist"):
        read_table(tmp_path / "nope.csv")


@pytest.mark.parametrize("content,needle", [
    (b"", "empty"),
    ("question,answer\nQu'est-ce qu'un café?,Oui\n".encode("cp1252"), "not UTF-8"),
    (b"question,answer\na,b,c\n", "line 2"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "PNG"),
    (b"id,number\n1,2\n", "Columns found: id, number"),
])
def test_cli_bad_input_exit_2(tmp_path, capsys, content, needle):
    p = tmp_path / "upload.csv"
    p.write_bytes(content)
    assert main(["analyze", str(p), "--model", "approx"]) == 2
    assert needle in capsys.readouterr().err
    assert main(["prepare", str(p), "--model", "approx"]) == 2


def test_cli_size_limit_exit_2(tmp_path, capsys, monkeypatch):
    p = tmp_path / "big.jsonl"
    p.write_text(json.dumps(ROWS[0]) + "\n" * 3000)
    monkeypatch.setenv("ASSISTANT_FACTORY_MAX_UPLOAD_MB", "0.001")
    assert main(["analyze", str(p), "--model", "approx"]) == 2
    assert "limit" in capsys.readouterr().err
