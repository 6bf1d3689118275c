"""Every default the line shares, defined once: methods, the default model, run states (a leaf module)."""
from __future__ import annotations

DEFAULT_MODEL = "smollm2-135m-instruct"
METHODS = ("lora", "adapter", "prefix", "full", "freeze")

ACTIVE_STATES = ("queued", "running", "stopping")
FINAL_STATES = ("stopped", "failed", "completed")
DAMAGED_STATE = "damaged"  # a run whose own files (status.json, config.json) cannot be read; the message says which

# ---------------------------------------------------------------- training
# The ``train:`` section's defaults: TrainSection's fields, the estimator and the Choose page all start from these.
TRAIN_DEFAULTS = {
    "epochs": 3, "max_steps": None, "batch_size": 8, "grad_accum": 1, "lr": None, "scheduler": "cosine",
    "warmup_ratio": 0.05, "weight_decay": 0.0, "max_seq_len": 512,
    # Off by default on CPU: packed rows need an explicit block-diagonal mask, which sends attention down sdpa's
    # slow math path; length-grouped padded rows ran 2x faster (bench/throughput.py: 109 vs 203 real tokens/s).
    "packing": False,
    "eval_every": 50, "save_every": 100, "seed": 42, "early_stopping_patience": None, "max_grad_norm": 1.0,
    "keep_checkpoints": 2, "max_train_examples": None,
    "max_eval_examples": 200,  # validation examples per evaluation (bounded so evaluations stay cheap on CPU)
    "eval_batch_size": None, "nonfinite_patience": 5, "min_lr_ratio": 0.1, "device": "auto",
    # Rows go through forward+backward in groups of at most this many tokens: peak activation memory follows
    # this budget, not batch_size x max_seq_len; 1024 keeps CPU matmuls efficient (bench/throughput.py).
    "micro_batch_tokens": 1024,
}
EVAL_CAP = 64  # validation examples per pass when train.max_eval_examples is null
# Minutes of training a recommendation plans for unless the user says otherwise: the whole line (define to chat)
# on an assets/ sample then fits a sitting on a 2-core laptop.
DEFAULT_BUDGET_MIN = 6
# Training objectives: sft learns conversations; dpo and orpo learn from preference pairs (core/training/preference.py).
OBJECTIVES = ("sft", "dpo", "orpo")

# ---------------------------------------------------------------- data
# Documents (continued pretraining) are cut into max_seq_len token windows that overlap by this many tokens, so
# the first tokens of a window are predicted with context; the overlap is learned once, in the earlier window.
DOC_CHUNK_OVERLAP = 32
# Documents shorter on average than this share of max_seq_len are packed (concatenated with eos between them)
# before chunking: per-document windows would be mostly padding.
DOC_PACK_BELOW = 0.5
# ---------------------------------------------------------------- decoding
# A decode step uses every core only when other programs leave them idle: OpenMP threads that share a busy core
# spin-wait, and a SmolLM2 batch-8 step went from 220 ms on 1 thread to 3,083 ms on 2 on a loaded 2-core machine.
# $ASSISTANT_FACTORY_DECODE_THREADS fixes the count instead.
DECODE_IDLE_CORE_SLACK = 0.2  # a core counts as idle when other programs leave at least 80% of it
# Rows evaluation decodes at once (continuous batching refills them): a SmolLM2 step on one thread took 220 ms for
# 8 rows and 348 ms for 32, so 32 rows answer ~2.5x the tokens per second; greedy answers do not depend on it.
EVAL_DECODE_ROWS = 32
