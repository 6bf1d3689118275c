"""Where uploads and built-in samples go: ``<workspace>/uploads/<safe name>``; the user's file name is never a path."""
from __future__ import annotations

import hashlib
from pathlib import Path

from core.errors import UserError
from core.fileio import atomic_write_bytes
from core.workspace import slugify, workspace_home

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "samples"
SAMPLES = {"support_en": "support_faq_en.csv", "support_zh": "support_faq_zh.jsonl",
           "routing": "intent_routing.csv", "preference_en": "support_preference_en.jsonl"}
UPLOAD_TYPES = ("csv", "tsv", "json", "jsonl", "parquet", "xlsx", "txt", "md")
FORMATS = ("qa", "alpaca", "prompt_completion", "classification", "messages", "sharegpt", "text", "preference",
           "openai_dpo", "transcript_pairs")


def format_fields(fmt: str) -> tuple[str, ...]:
    """Required then optional mapping fields of a format (the engine's schema), for the upload page's mapping."""
    from core.data.preference import PAIR_FIELDS
    from core.data.schema import OPTIONAL, REQUIRED

    if fmt in PAIR_FIELDS:
        return PAIR_FIELDS[fmt]
    return tuple(REQUIRED.get(fmt, ())) + tuple(OPTIONAL.get(fmt, ()))


def uploads_dir() -> Path:
    """``<workspace>/uploads``."""
    path = workspace_home() / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def safe_name(original: str, data: bytes) -> str:
    """A file name built from the upload's name (slugified) plus a content hash; the extension is whitelisted."""
    suffix = Path(original).suffix.lower().lstrip(".")
    if suffix not in UPLOAD_TYPES:
        raise UserError(f"Files of type '.{suffix}' are not supported; save the data as "
                        f"{', '.join(UPLOAD_TYPES).upper()}.")
    stem = slugify(Path(original).stem, fallback="upload")
    return f"{stem}-{hashlib.sha256(data).hexdigest()[:8]}.{suffix}"


def save_upload(original_name: str, data: bytes) -> Path:
    """Write uploaded bytes under a sanitised name in ``<workspace>/uploads`` (atomically); refuses an empty file."""
    if not data:
        raise UserError(f"{original_name!r} is empty (0 bytes); upload a file with at least one example.")
    path = uploads_dir() / safe_name(original_name, data)
    atomic_write_bytes(path, data)
    return path


def save_sample(key: str) -> Path:
    """Copy a built-in sample into the workspace's uploads (so the raw file there is ours to keep)."""
    name = SAMPLES[key]
    return save_upload(name, (ASSETS / name).read_bytes())
