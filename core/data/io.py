"""Read whatever a user uploads into a table of records, or refuse it with a message saying what and where.

Supported files: CSV, TSV, JSON, JSONL, Parquet, XLSX and TXT. Text files are decoded as UTF-8 (with or
without BOM), UTF-16 (BOM or the NUL-byte pattern) or GBK (when it decodes and looks like Chinese); any other
encoding is refused with the encoding charset-normalizer finds most likely. Every refusal is a ``UserError``.

Compressed formats are bounded by what they inflate to, not only by their file size: an XLSX (a ZIP) is refused
when its members add up to more than ``DECOMPRESS_FACTOR`` times the upload limit or one large member inflates
more than ``MAX_ZIP_RATIO`` times; a Parquet file when its metadata's uncompressed size is over the same bound.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import charset_normalizer

from core.errors import UserError

from .findings import note
from .text import CJK_PUNCT_RANGES, HAN_RANGES, char_class

TEXT_EXTS = {".csv", ".tsv", ".json", ".jsonl", ".txt"}
BINARY_EXTS = {".parquet", ".xlsx"}
ALIASES = {".ndjson": ".jsonl", ".tab": ".tsv", ".text": ".txt", ".md": ".txt", ".pq": ".parquet"}
DEFAULT_MAX_MB = 200.0
# Magic numbers of common binary files, to refuse e.g. a PDF renamed to .csv with a precise message.
MAGIC = {b"%PDF": "a PDF document", b"PK\x03\x04": "a ZIP archive (or an Excel/Word file)", b"\x89PNG": "a PNG image",
         b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image", b"PAR1": "a Parquet file",
         b"\x1f\x8b": "a gzip archive",
         b"\xd0\xcf\x11\xe0": "an old Office (.xls/.doc) file", b"SQLite format 3": "an SQLite database",
         b"\x7fELF": "a program (ELF binary)"}
_CHINESE = re.compile(f"[{char_class(HAN_RANGES + CJK_PUNCT_RANGES)}]")
# What a compressed upload may inflate to: a multiple of the upload limit, and a per-member ratio far above
# what real spreadsheets reach (their XML compresses 5-30x) but far below a zip bomb's (1000x and more).
DECOMPRESS_FACTOR = 5
MAX_ZIP_RATIO = 100
_RATIO_MIN_BYTES = 1024 * 1024  # small members (styles, tiny sheets) may compress well without harm
# Labels of the encodings charset-normalizer may name, most specific first, for the refusal message.
ENCODING_LABELS = {"cp1252": "Windows-1252 / Latin-1 (Western European)", "latin_1": "Windows-1252 / Latin-1 "
                   "(Western European)", "shift_jis": "Shift_JIS (Japanese)", "cp932": "Shift_JIS (Japanese)",
                   "euc_jp": "EUC-JP (Japanese)", "euc_kr": "EUC-KR (Korean)", "cp949": "EUC-KR (Korean)",
                   "cp1251": "Windows-1251 (Cyrillic)", "koi8_r": "KOI8-R (Cyrillic)",
                   "big5": "Big5 (traditional Chinese)", "cp1250": "Windows-1250 (Central European)",
                   "cp1253": "Windows-1253 (Greek)", "cp1254": "Windows-1254 (Turkish)",
                   "cp1256": "Windows-1256 (Arabic)", "cp1255": "Windows-1255 (Hebrew)"}


@dataclass
class Table:
    """A file read into records (one dict per row) plus what we learned about it."""

    records: list[dict[str, Any]]
    columns: list[str]
    file_type: str
    encoding: str | None = None
    notes: list[dict] = field(default_factory=list)  # core.data.findings.note(...) items
    source: str = ""


def max_upload_mb() -> float:
    """The size limit in MB: ``$ASSISTANT_FACTORY_MAX_UPLOAD_MB`` or 200."""
    raw = os.environ.get("ASSISTANT_FACTORY_MAX_UPLOAD_MB", "")
    try:
        return float(raw) if raw.strip() else DEFAULT_MAX_MB
    except ValueError:
        raise UserError(f"ASSISTANT_FACTORY_MAX_UPLOAD_MB={raw!r} is not a number; set it to a size in MB, "
                        "e.g. 200.") from None


def file_kind(path: Path) -> str:
    """The normalised extension (``.csv`` …) or a UserError listing the supported ones."""
    ext = ALIASES.get(path.suffix.lower(), path.suffix.lower())
    if ext not in TEXT_EXTS | BINARY_EXTS:
        raise UserError(f"{path.name}: files of type {path.suffix or '(no extension)'!r} are not supported. "
                        "Save the data as CSV, TSV, JSON, JSONL, Parquet, XLSX or TXT.")
    return ext


def check_file(path: str | os.PathLike) -> Path:
    """Existence, regular file, non-empty and within the size limit."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"{path} does not exist; check the path (relative paths start from {Path.cwd()}).")
    if not path.is_file():
        raise UserError(f"{path} is a folder, not a file; give one data file inside it.")
    size = path.stat().st_size
    if size == 0:
        raise UserError(f"{path.name} is empty (0 bytes); upload a file with at least one example.")
    limit = max_upload_mb()
    if size > limit * 1024 * 1024:
        raise UserError(f"{path.name} is {size / 1024 / 1024:.1f} MB, over the {limit:g} MB limit. Split it into "
                        "smaller files, or raise the limit with ASSISTANT_FACTORY_MAX_UPLOAD_MB.")
    return path


# ---------------------------------------------------------------- encodings
def _utf16_by_nul_pattern(head: bytes) -> str | None:
    """UTF-16 without BOM: mostly-ASCII text has a NUL in every other byte."""
    sample = head[: 4096 - (len(head[:4096]) % 2)]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    n = len(even)
    # ASCII characters (at least the separators and newlines) put NULs on one side only
    if odd.count(0) > 0.1 * n and even.count(0) <= 0.01 * n:
        candidate = "utf-16-le"
    elif even.count(0) > 0.1 * n and odd.count(0) <= 0.01 * n:
        candidate = "utf-16-be"
    else:
        return None
    try:
        text = sample.decode(candidate, errors="strict")
    except UnicodeDecodeError:
        return None
    controls = sum(1 for ch in text if ch < " " and ch not in "\n\r\t")
    return candidate if controls <= 0.01 * len(text) else None


def _binary_reason(data: bytes) -> str | None:
    """Why ``data`` is not text (a known magic number or NUL bytes), or None."""
    for magic, what in MAGIC.items():
        if data.startswith(magic):
            return what
    if b"\x00" in data[:8192]:
        return "binary data (it contains NUL bytes)"
    return None


def _guess_encoding(data: bytes) -> str:
    """A best guess (charset-normalizer) for a non-UTF-8, non-GBK text, for the refusal message."""
    best = charset_normalizer.from_bytes(data[:65536], cp_exclusion=["utf_16", "utf_16_be", "utf_16_le", "utf_32",
                                                                     "utf_32_be", "utf_32_le", "utf_7"]).best()
    if best is None:
        return "an unknown 8-bit encoding"
    for name in ENCODING_LABELS:  # a friendlier name among the equally likely ones
        if name in best.could_be_from_charset:
            return ENCODING_LABELS[name]
    return f"{best.encoding} ({best.language})" if best.language != "Unknown" else best.encoding


def _gb2312_share(data: bytes, limit: int = 65536) -> float:
    """Share of double-byte characters (in the first ``limit`` bytes) inside the common GB2312 area."""
    i, total, common, sample = 0, 0, 0, data[:limit]
    while i < len(sample) - 1:
        if sample[i] < 0x80:
            i += 1
            continue
        total += 1
        common += 0xA1 <= sample[i] <= 0xF7 and 0xA1 <= sample[i + 1] <= 0xFE
        i += 2
    return common / total if total else 0.0


def decode_bytes(data: bytes, name: str) -> tuple[str, str]:
    """Decode text bytes; returns (text, encoding) or raises UserError naming the likely encoding."""
    if data.startswith(b"\xef\xbb\xbf"):
        return _strict(data[3:], "utf-8", name), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _strict(data, "utf-16", name), "utf-16"
    utf16 = _utf16_by_nul_pattern(data)
    if utf16:
        return _strict(data, utf16, name), utf16
    reason = _binary_reason(data)
    if reason:
        raise UserError(f"{name} looks like {reason}, not text. Export the data as CSV, JSON, JSONL or TXT "
                        "(or give the file its real extension, e.g. .xlsx or .parquet).")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        utf8_error = exc
    try:
        text = data.decode("gbk")
        non_ascii = [ch for ch in text if ch > "\x7f"]
        # GBK decodes many byte strings (Shift_JIS, Big5 …); accept it only when the non-ASCII part is Chinese
        # and mostly from the common GB2312 block, as real Chinese text is.
        if non_ascii and len(_CHINESE.findall("".join(non_ascii))) >= 0.9 * len(non_ascii) and _gb2312_share(data) >= 0.8:
            return text, "gbk"
    except UnicodeDecodeError:
        pass
    line = data[: utf8_error.start].count(b"\n") + 1
    guess = _guess_encoding(data)
    raise UserError(f"{name} is not UTF-8 (first bad byte on line {line}); it looks like {guess}. Re-save it as "
                    "UTF-8 (in Excel: 'CSV UTF-8'; or `iconv -f <encoding> -t UTF-8 in > out`). "
                    "UTF-8, UTF-16 and GBK are read directly.")


def _strict(data: bytes, encoding: str, name: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise UserError(f"{name} starts like {encoding} but has an invalid byte at offset {exc.start}; "
                        "re-save it as UTF-8.") from None


# ---------------------------------------------------------------- readers
def read_table(path: str | os.PathLike) -> Table:
    """Read any supported file into a Table, or raise UserError saying what is wrong and where."""
    path = check_file(path)
    kind = file_kind(path)
    if kind in BINARY_EXTS:
        table = _read_binary(path, kind)
    else:
        text, encoding = decode_bytes(path.read_bytes(), path.name)
        if not text.strip():
            raise UserError(f"{path.name} has no content (only whitespace); upload a file with at least one example.")
        reader = {".csv": _read_csv, ".tsv": _read_csv, ".json": _read_json, ".jsonl": _read_jsonl,
                  ".txt": _read_txt}[kind]
        table = reader(text, path.name, kind)
        table.encoding = encoding
        if encoding not in ("utf-8", "utf-8-sig"):
            table.notes.append(note("decoded", encoding=encoding))
    if not table.records:
        raise UserError(f"{path.name} has a header or structure but no data rows; add at least one example.")
    table.source = str(path)
    return table


def _columns(records: list[dict]) -> list[str]:
    """Union of keys in order of first appearance."""
    seen: dict[str, None] = {}
    for rec in records:
        for key in rec:
            seen.setdefault(key, None)
    return list(seen)


def sniff_delimiter(text: str) -> str:
    """The delimiter csv.Sniffer finds among , ; tab and |, when the header line has it; else a comma."""
    try:
        found = csv.Sniffer().sniff(text[:65536], delimiters=",;\t|").delimiter
    except csv.Error:
        return ","
    return found if found in text.split("\n", 1)[0] else ","


def _read_csv(text: str, name: str, kind: str) -> Table:
    delimiter = "\t" if kind == ".tsv" else sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except csv.Error as exc:
        raise UserError(f"{name}, line 1: the header row is malformed ({exc}).") from None
    header = [h.strip() for h in header]
    if not any(header):
        raise UserError(f"{name}: the first line (the header) is empty; put column names on line 1, e.g. text,label.")
    dupes = sorted({h for h in header if header.count(h) > 1 and h})
    if dupes:
        raise UserError(f"{name}: the header repeats the column name(s) {', '.join(dupes)}; give each column a "
                        "unique name.")
    records = []
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise UserError(f"{name}, line {start}: malformed row ({exc}). Check the quotes on that line: a field "
                            "with a comma, quote or newline must be wrapped in double quotes, and quotes inside "
                            'it doubled ("").') from None
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            raise UserError(f"{name}, line {start}: {len(row)} fields but the header has {len(header)} "
                            f"({delimiter!r}-separated). A field that contains {delimiter!r} must be wrapped in "
                            "double quotes.")
        row = row + [""] * (len(header) - len(row))  # short rows: missing values, reported by the analyzer
        records.append({h: v for h, v in zip(header, row) if h})
    return Table(records, [h for h in header if h], kind.lstrip("."))


def _json_error(name: str, exc: json.JSONDecodeError, line_offset: int = 0) -> UserError:
    return UserError(f"{name}, line {exc.lineno + line_offset}, column {exc.colno}: invalid JSON ({exc.msg}). "
                     "Fix that line (a missing comma, quote or bracket is the usual cause).")


def _too_deep(name: str, where: str = "") -> UserError:
    return UserError(f"{name}{where}: the data is nested too deeply to read (thousands of brackets inside one "
                     "another). Flatten it to one record per row with plain text fields.")


def _read_json(text: str, name: str, kind: str) -> Table:
    try:
        obj = json.loads(text)
    except RecursionError:
        raise _too_deep(name) from None
    except json.JSONDecodeError as exc:
        if text.lstrip().startswith("{") and "\n{" in text.strip():
            return _read_jsonl(text, name, ".jsonl")  # JSON Lines saved as .json
        raise _json_error(name, exc) from None
    notes: list[dict] = []
    if isinstance(obj, dict):
        obj, notes = _unwrap_json_dict(obj, name)
    if not isinstance(obj, list):
        raise UserError(f"{name}: expected a JSON list of records (objects), found a {type(obj).__name__}.")
    records = []
    for i, item in enumerate(obj):
        if isinstance(item, dict):
            records.append(item)
        elif isinstance(item, str):
            records.append({"text": item})
        else:
            raise UserError(f"{name}: item {i} of the list is a {type(item).__name__}, not an object with named "
                            'fields; use records like {"question": ..., "answer": ...}.')
    return Table(records, _columns(records), "json", notes=notes)


def _is_pair_list(value: Any) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in value[:50]))


def _unwrap_json_dict(obj: dict, name: str) -> tuple[Any, list[str]]:
    """Dict layouts: {split: [[text, label], ...]} (CLINC150), {"data": [...]}, or one record."""
    pair_splits = {k: v for k, v in obj.items() if _is_pair_list(v)}
    if pair_splits and len(pair_splits) == len(obj):
        records = [{"text": a, "label": b, "split": k} for k, v in pair_splits.items() for a, b in v]
        sizes = ", ".join(f"{k} {len(v)}" for k, v in pair_splits.items())
        return records, [note("json_pair_splits", sizes=sizes)]
    lists = {k: v for k, v in obj.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v[:50])}
    if len(lists) == 1:
        key = next(iter(lists))
        return lists[key], [note("json_key", field=key)]
    if len(lists) > 1:
        records = [dict(r, split=k) for k, v in lists.items() for r in v]
        return records, [note("json_split_keys", keys=list(lists))]
    return [obj], []


def _read_jsonl(text: str, name: str, kind: str) -> Table:
    records = []
    for lineno, line in enumerate(text.split("\n"), 1):  # not splitlines(): JSON strings may hold U+2028
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except RecursionError:
            raise _too_deep(name, f", line {lineno}") from None
        except json.JSONDecodeError as exc:
            raise UserError(f"{name}, line {lineno}: invalid JSON ({exc.msg}, column {exc.colno}). Each line must be "
                            "one complete JSON object; fix or delete that line.") from None
        if not isinstance(item, dict):
            raise UserError(f"{name}, line {lineno}: a {type(item).__name__}, not a JSON object; each line must be "
                            'an object like {"question": ..., "answer": ...}.')
        records.append(item)
    return Table(records, _columns(records), "jsonl")


def _read_txt(text: str, name: str, kind: str) -> Table:
    """Plain text: documents separated by blank lines, or one per line when there are no blank lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if re.search(r"\n[ \t]*\n", text.strip()):
        docs = [d.strip() for d in re.split(r"\n[ \t]*\n", text) if d.strip()]
        how = note("txt_paragraphs")
    else:
        docs = [d.strip() for d in text.split("\n") if d.strip()]
        how = note("txt_lines")
    return Table([{"text": d} for d in docs], ["text"], "txt", notes=[how])


def _clean_cell(value: Any) -> Any:
    """pandas cells to plain Python: NaN -> None, numpy scalars/arrays -> Python values."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "tolist"):
        return _clean_cell(value.tolist())
    if isinstance(value, list):
        return [_clean_cell(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean_cell(v) for k, v in value.items()}
    return value


def _inflate_limit() -> int:
    """Bytes a compressed upload may inflate to."""
    return int(DECOMPRESS_FACTOR * max_upload_mb() * 1024 * 1024)


def _too_big(name: str, what: str, size: int) -> UserError:
    return UserError(f"{name} {what} {size / 1024 / 1024:,.0f} MB when uncompressed, over the "
                     f"{_inflate_limit() / 1024 / 1024:,.0f} MB limit ({DECOMPRESS_FACTOR}x the upload limit). "
                     "Split it into smaller files or save it as CSV; raise the limit with "
                     "ASSISTANT_FACTORY_MAX_UPLOAD_MB if the data really is that large.")


def check_inflated_size(path: Path, kind: str) -> None:
    """Refuse an XLSX or Parquet file whose uncompressed content is too large (e.g. a zip bomb), before reading."""
    try:
        if kind == ".xlsx":
            with zipfile.ZipFile(path) as archive:  # zipfile never inflates a part past its declared size,
                members = archive.infolist()        # so the declared sizes bound what reading it can take
            total = sum(m.file_size for m in members)
            if total > _inflate_limit():
                raise _too_big(path.name, "inflates to", total)
            for m in members:
                if m.file_size > _RATIO_MIN_BYTES and m.file_size > MAX_ZIP_RATIO * max(1, m.compress_size):
                    raise UserError(f"{path.name}: its part {m.filename!r} inflates "
                                    f"{m.file_size / max(1, m.compress_size):,.0f}x (over {MAX_ZIP_RATIO}x), "
                                    "which real spreadsheets never do. Export the data again, or save it as CSV.")
        else:
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(path).metadata
            total = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
            if total > _inflate_limit():
                raise _too_big(path.name, "holds", total)
    except UserError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise UserError(f"{path.name} could not be opened as {kind[1:].upper()} ({type(exc).__name__}: {exc}). "
                        "Export it again, or save it as CSV.") from None


def _read_binary(path: Path, kind: str) -> Table:
    with open(path, "rb") as fh:
        head = fh.read(8)
    expected = b"PAR1" if kind == ".parquet" else b"PK\x03\x04"
    if not head.startswith(expected):
        what = _binary_reason(head) or "text"
        raise UserError(f"{path.name} is not a real {kind[1:].upper()} file (it looks like {what}). Give it its real "
                        "extension, or export it again from the program that made it.")
    check_inflated_size(path, kind)
    import pandas as pd

    notes: list[dict] = []
    try:
        if kind == ".parquet":
            frame = pd.read_parquet(path)
        else:
            sheets = pd.read_excel(path, sheet_name=None, dtype=object)
            name, frame = next(iter(sheets.items()))
            if len(sheets) > 1:
                notes.append(note("xlsx_first_sheet", sheet=name, sheets=len(sheets)))
    except Exception as exc:  # noqa: BLE001 - any parser failure is a corrupt upload
        raise UserError(f"{path.name} could not be read as {kind[1:].upper()} ({type(exc).__name__}: {exc}). "
                        "Export it again, or save it as CSV.") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    try:
        records = [{k: _clean_cell(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
    except RecursionError:
        raise _too_deep(path.name) from None
    records = [r for r in records if any(v not in (None, "") for v in r.values())]
    return Table(records, list(frame.columns), kind[1:], notes=notes)
