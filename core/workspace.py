"""The workspace folders: safe ids, and where models, datasets, runs and labs live (docs/architecture.md).

Layout under ``$ASSISTANT_FACTORY_HOME`` (default ``./workspace``)::

    models/<name>/      safetensors cache of converted base models
    datasets/<id>/      raw/, normalized.jsonl, splits/, quality.json, meta.json
    runs/<id>/          config.json, status.json, metrics.jsonl, train.log, checkpoints/, adapter/, eval/, export/
"""
from __future__ import annotations

import datetime as _dt
import os
import re
import secrets
from pathlib import Path

from core.errors import UserError

MAX_ID_LEN = 100
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
KINDS = ("models", "datasets", "runs", "labs")


def repo_root() -> Path:
    """The project's root folder (where ``python -m core`` is run from by the job runner)."""
    return Path(__file__).resolve().parents[1]


def workspace_home() -> Path:
    """The workspace root: ``$ASSISTANT_FACTORY_HOME`` or ``./workspace``, created on first use."""
    root = Path(os.environ.get("ASSISTANT_FACTORY_HOME", "workspace")).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def validate_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a safe folder name; raise UserError saying why not otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"The {what} is empty. Use letters, digits, '.', '_' or '-', e.g. 'support-faq-v1'.")
    if len(value) > MAX_ID_LEN:
        raise UserError(f"The {what} is {len(value)} characters long; the limit is {MAX_ID_LEN}. Choose a shorter name.")
    if value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", value):
        raise UserError(f"The {what} {value!r} is an absolute path; give a plain name such as 'support-faq-v1'.")
    if ".." in value or "/" in value or "\\" in value:
        raise UserError(f"The {what} {value!r} contains a path ('..' or a slash); give a plain name such as 'support-faq-v1'.")
    if not _ID_RE.match(value):
        raise UserError(f"The {what} {value!r} has characters other than letters, digits, '.', '_' and '-' "
                        f"(or starts with one of '.', '_', '-'); rename it, e.g. 'support-faq-v1'.")
    return value


def slugify(text: str, fallback: str = "item") -> str:
    """Turn free text (a file name, an assistant name) into a safe id fragment."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")[:40]
    return slug or fallback


def new_id(prefix: str, kind: str | None = None) -> str:
    """A fresh, sortable id: ``<prefix>-YYYYmmdd-HHMMSS-<4 hex>``; with ``kind``, one no folder of that kind uses."""
    for _ in range(100):
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        candidate = validate_id(f"{slugify(prefix)}-{stamp}-{secrets.token_hex(2)}")
        if kind is None or not (kind_dir(kind) / candidate).exists():
            return candidate
    raise UserError(f"Could not find an unused {kind} id for {prefix!r}; remove old folders under {kind_dir(kind)}.")


def reserve_dir(kind: str, item_id: str) -> Path:
    """Create the folder of a NEW item (``runs/<id>``...); UserError when it already exists, so an id is never reused."""
    path = item_dir(kind, item_id)
    try:
        path.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise UserError(f"The {kind[:-1]} id {item_id!r} is already used in {path.parent}; choose another id, "
                        "or continue the existing one.") from None
    return path


def kind_dir(kind: str) -> Path:
    """``<workspace>/<kind>``, one of models, datasets, runs."""
    if kind not in KINDS:
        raise ValueError(f"unknown workspace kind {kind!r}; expected one of {KINDS}")
    # The model cache may live elsewhere (tests share one across temporary workspaces).
    override = os.environ.get("ASSISTANT_FACTORY_MODELS") if kind == "models" else None
    path = Path(override).expanduser().resolve() if override else workspace_home() / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def item_dir(kind: str, item_id: str, create: bool = False) -> Path:
    """The folder of one dataset/run/model, refusing ids that could escape the workspace."""
    base = kind_dir(kind)
    path = (base / validate_id(item_id, f"{kind[:-1]} id")).resolve()
    if path.parent != base.resolve():  # belt and braces: symlinks or odd names
        raise UserError(f"The id {item_id!r} points outside the workspace; give a plain name.")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def dataset_dir(dataset_id: str, create: bool = False) -> Path:
    """``datasets/<id>``."""
    return item_dir("datasets", dataset_id, create)


def run_dir(run_id: str, create: bool = False) -> Path:
    """``runs/<id>``."""
    return item_dir("runs", run_id, create)


def list_ids(kind: str) -> list[str]:
    """Ids in a workspace kind, newest first (by folder modification time)."""
    base = kind_dir(kind)
    items = [p for p in base.iterdir() if p.is_dir() and _ID_RE.match(p.name)]
    return [p.name for p in sorted(items, key=lambda p: p.stat().st_mtime, reverse=True)]
