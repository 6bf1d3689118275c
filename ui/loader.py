"""Load models in a background thread so a page shows progress and its script never waits on a load.

One loader per key per process (shared by every browser session: a model is held once). A page polls
``loader.done`` from a fragment and reruns once the model is ready.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

ProgressFn = Callable[[float, str], None]
_LOCK = threading.Lock()
# One load at a time: transformers' from_pretrained builds models on the meta device through process-wide state, so
# two loads in parallel threads (the tuned and the base model of one chat) can leave weights on "meta"; loads are
# CPU-bound anyway, so running them one after the other costs nothing.
_LOAD_LOCK = threading.Lock()
_LOADERS: dict[str, "ModelLoader"] = {}


@dataclass
class ModelLoader:
    """The state of one model load: progress fraction, message, result or error."""

    name: str
    load: Callable[[ProgressFn], Any]
    fraction: float = 0.0
    message: str = ""
    result: Optional[Any] = None
    error: Optional[BaseException] = None
    started: float = field(default_factory=time.time)

    @property
    def done(self) -> bool:
        """True when loading finished (successfully or not)."""
        return self.result is not None or self.error is not None

    def _progress(self, fraction: float, message: str) -> None:
        self.fraction, self.message = max(0.0, min(1.0, fraction)), message

    def _run(self) -> None:
        try:
            with _LOAD_LOCK:
                self.result = self.load(self._progress)
            self._progress(1.0, "ready")
        except Exception as exc:  # noqa: BLE001 - kept and shown by the page
            self.error = exc


def _base_load(name: str) -> Callable[[ProgressFn], Any]:
    def load(progress: ProgressFn):
        from core.models import load_model

        return load_model(name, progress=progress)
    return load


def get_loader(name: str, start: bool = True, load: Optional[Callable[[ProgressFn], Any]] = None,
               ) -> Optional[ModelLoader]:
    """The loader of ``name`` (a base model by default, or ``load``); starts it when ``start`` and not yet
    started (or a previous try failed)."""
    with _LOCK:
        loader = _LOADERS.get(name)
        if start and (loader is None or loader.error is not None):
            loader = ModelLoader(name, load or _base_load(name))
            _LOADERS[name] = loader
            threading.Thread(target=loader._run, name=f"load-{name}", daemon=True).start()
        return loader


def forget(prefix: str, keep: str) -> None:
    """Drop the loaders whose key starts with ``prefix`` except ``keep`` (older weights of the same run)."""
    with _LOCK:
        for key in [k for k in _LOADERS if k.startswith(prefix) and k != keep]:
            del _LOADERS[key]
