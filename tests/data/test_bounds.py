"""Hostile or huge input stays bounded: inflating archives, deep nesting and multi-MB rows are refused or capped."""
from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
import zipfile

import pandas as pd
import pytest

from core.__main__ import main
from core.data.io import read_table
from core.data.minhash import MAX_MINHASH_CHARS, near_duplicate_groups, signatures
from core.errors import UserError

ROWS = [{"question": f"Question {i}?", "answer": f"Answer number {i}."} for i in range(5)]


def _xlsx_with_member(path, member_bytes: int):
    """A real spreadsheet plus one extra part of ``member_bytes`` zeros (it compresses ~1000x)."""
    pd.DataFrame(ROWS).to_excel(path, index=False)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/media/padding.xml", b"0" * member_bytes)


def test_xlsx_that_inflates_past_the_limit_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_FACTORY_MAX_UPLOAD_MB", "1")
    path = tmp_path / "bomb.xlsx"
    _xlsx_with_member(path, 8 * 1024 * 1024)  # 8 MB inflated from ~8 KB: over 5x the 1 MB limit
    assert path.stat().st_size < 1024 * 1024  # the compressed size passes the upload limit
    with pytest.raises(UserError, match=r"bomb.xlsx inflates to 8 MB when uncompressed, over the 5 MB limit"):
        read_table(path)
    assert main(["analyze", str(path), "--model", "approx"]) == 2


def test_xlsx_part_with_a_bomb_ratio_is_refused(tmp_path):
    path = tmp_path / "ratio.xlsx"
    _xlsx_with_member(path, 3 * 1024 * 1024)  # within the size bound, but ~1000x compressed
    with pytest.raises(UserError, match=r"padding.xml' inflates [\d,]+x \(over 100x\)"):
        read_table(path)


def test_ordinary_xlsx_still_reads(tmp_path):
    path = tmp_path / "ok.xlsx"
    pd.DataFrame(ROWS).to_excel(path, index=False)
    assert read_table(path).records == ROWS


def test_parquet_whose_uncompressed_size_is_over_the_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("ASSISTANT_FACTORY_MAX_UPLOAD_MB", "0.2")
    path = tmp_path / "big.parquet"
    frame = pd.DataFrame({"text": ["the same sentence over and over " * 4] * 20_000, "label": ["a"] * 20_000})
    frame.to_parquet(path, compression="zstd", use_dictionary=False)
    assert path.stat().st_size < 0.2 * 1024 * 1024
    with pytest.raises(UserError, match=r"big.parquet holds \d+ MB when uncompressed, over the 1 MB limit"):
        read_table(path)


@pytest.mark.parametrize("suffix,content", [
    (".json", "[" * 100_000 + "]" * 100_000),
    (".jsonl", json.dumps(ROWS[0]) + "\n" + '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}\n"),
])
def test_deeply_nested_json_is_a_user_error_and_exit_2(tmp_path, capsys, suffix, content):
    path = tmp_path / f"deep{suffix}"
    path.write_text(content)
    with pytest.raises(UserError, match="nested too deeply"):
        read_table(path)
    assert main(["analyze", str(path), "--model", "approx"]) == 2
    err = capsys.readouterr().err
    assert "nested too deeply" in err and "Traceback" not in err
    if suffix == ".jsonl":
        assert "line 2" in err


def test_minhash_memory_is_bounded_by_the_cap_not_the_longest_row():
    long_row = "".join(f"word{i} " for i in range(600_000))  # ~5.6 MB of distinct 5-grams
    texts = [f"short question number {i}" for i in range(200)] + [long_row]
    tracemalloc.start()
    try:
        sig = signatures(texts)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sig.shape == (201, 64)
    # uncapped, the 64 x 5.6M uint32 block of the long row alone takes 1.4 GB
    assert peak < 150 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB"


def test_minhash_cap_judges_long_rows_by_their_first_characters():
    base = "".join(f"token{i} " for i in range(MAX_MINHASH_CHARS // 7 + 10))
    a, b = base + "tail one " * 1000, base + "another ending " * 1000
    assert near_duplicate_groups([a, b, "unrelated short text"]) == [[0, 1]]


def test_core_data_loader_imports_without_the_analyzer_or_pandas():
    code = ("import sys, core.data.loader; "
            "print(any(m in sys.modules for m in ('pandas', 'core.data.quality', 'core.data.dataset')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_pipe_delimited_csv_is_sniffed(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("question|answer\nHi, there|Hello, you\n", encoding="utf-8")
    assert read_table(path).records == [{"question": "Hi, there", "answer": "Hello, you"}]


def test_cyrillic_encoding_is_named(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("question,answer\nПривет мир, как дела сегодня,спасибо большое\n".encode("cp1251"))
    with pytest.raises(UserError, match="Windows-1251"):
        read_table(path)


def test_analysis_of_a_multi_megabyte_row_stays_within_a_memory_bound():
    from core.data.quality import DataQualityAnalyzer

    long_answer = "".join(f"word{i} " for i in range(600_000))  # one 5.6 MB JSONL line
    convs = [{"messages": [{"role": "user", "content": f"Question {i}?"},
                           {"role": "assistant", "content": f"Answer {i}."}], "meta": {"row": i + 1}}
             for i in range(150)]
    convs.append({"messages": [{"role": "user", "content": "Long one?"},
                               {"role": "assistant", "content": long_answer}], "meta": {"row": 151}})
    tracemalloc.start()
    try:
        report = DataQualityAnalyzer(tokenizer=None).analyze(convs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report["rows"] == 151 and report["checks"]["lengths"]["over_max"] == 1
    assert peak < 250 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB"


@pytest.mark.parametrize("name,content", [("bad.xlsx", b"PK\x03\x04" + b"not a zip" * 50),
                                          ("bad.parquet", b"PAR1" + b"not parquet" * 50)])
def test_corrupt_archives_are_user_errors(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UserError, match=f"{name} could not be opened as"):
        read_table(path)
