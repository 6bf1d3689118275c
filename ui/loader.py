"""Load base models in a background thread so a page can show progress and stay responsive.

One loader per model name per process (shared by every browser session: the model is held once).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

_LOCK = threading.Lock()
_LOADERS: dict[str, "ModelLoader"] = {}


@dataclass
class ModelLoader:
    """The state of one model load: progress fraction, message, result or error."""

    name: str
    fraction: float = 0.0
    message: str = ""
    result: Optional[tuple[Any, Any]] = None
    error: Optional[BaseException] = None
    started: float = field(default_factory=time.time)
    thread: Optional[threading.Thread] = None

    @property
    def done(self) -> bool:
        """True when loading finished (successfully or not)."""
        return self.result is not None or self.error is not None

    def _progress(self, fraction: float, message: str) -> None:
        self.fraction, self.message = max(0.0, min(1.0, fraction)), message

    def _run(self) -> None:
        from core.models import load_model

        try:
            self.result = load_model(self.name, progress=self._progress)
            self._progress(1.0, "ready")
        except Exception as exc:  # noqa: BLE001 - kept and shown by the page
            self.error = exc


def get_loader(name: str, start: bool = True) -> Optional[ModelLoader]:
    """The loader of ``name``; starts loading when ``start`` and not yet started (or a previous try failed)."""
    with _LOCK:
        loader = _LOADERS.get(name)
        if start and (loader is None or loader.error is not None):
            loader = ModelLoader(name)
            loader.thread = threading.Thread(target=loader._run, name=f"load-{name}", daemon=True)
            _LOADERS[name] = loader
            loader.thread.start()
        return loader


def loaded_model(name: str) -> Optional[tuple[Any, Any]]:
    """``(model, tokenizer)`` when ``name`` is loaded in this process, else None."""
    loader = _LOADERS.get(name)
    return loader.result if loader else None
