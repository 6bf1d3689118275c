"""Every default the line shares, defined once: methods, the default model, run states (a leaf module)."""
from __future__ import annotations

DEFAULT_MODEL = "smollm2-135m-instruct"
METHODS = ("lora", "adapter", "prefix", "full", "freeze")

ACTIVE_STATES = ("queued", "running", "stopping")
FINAL_STATES = ("stopped", "failed", "completed")
DAMAGED_STATE = "damaged"  # a run whose own files (status.json, config.json) cannot be read; the message says which
