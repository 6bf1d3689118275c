"""``python -m core <verb>``: the headless face of every step (docs/architecture.md).

Exit codes: 0 success, 2 bad input (a message on stderr saying what is wrong and how to fix it),
1 internal error. Each verb's work lives in the module named in ``VERBS``; this file only parses.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from core.defaults import DEFAULT_MODEL
from core.errors import UserError

# verb -> (module, function, one-line help). The function takes the parsed args and returns an exit code.
VERBS = {
    "analyze": ("core.data.cli", "analyze_command", "detect the format, normalise, print the quality report"),
    "prepare": ("core.data.cli", "prepare_command", "write a dataset into the workspace; prints its id"),
    "estimate": ("core.strategy", "estimate_command", "trainable parameters, memory and time per epoch for a config"),
    "recommend": ("core.strategy.cli", "recommend_command",
                  "the run config the Choose page recommends for a dataset, with reasons and an estimate"),
    "train": ("core.training.cli", "train_command", "run training in this process (works under torchrun)"),
    "eval": ("core.evaluation.cli", "eval_command", "metrics, error analysis, robustness, performance of a run"),
    "baselines": ("core.evaluation.pretrain_baselines", "baselines_command",
                  "before training: few-shot base model and retrieval baselines on a dataset's test split"),
    "chat": ("core.chat", "chat_command", "one answer (--prompt) or an interactive chat with a run"),
    "serve": ("core.serve.cli", "serve_command", "an OpenAI-compatible HTTP API answering with a run's model"),
    "export": ("core.export", "export_command", "export a run as our adapter, a PEFT LoRA, a merged model or a GGUF file"),
    "bench": ("core.cli_misc", "bench_command", "print the benchmark tables of bench/ (runs python -m bench)"),
    "hello": ("core.cli_misc", "hello_command", "load a base model and ask it one question (smoke check)"),
    "models": ("core.models", "models_command", "the base models to choose from, their facts; a chat template"),
}


def _add_data_arguments(sub: dict[str, argparse.ArgumentParser]) -> None:
    fmt_help = ("alpaca|qa|prompt_completion|messages|sharegpt|classification|text|preference|openai_dpo|"
                "transcript_pairs (auto-detected by default)")
    p = sub["analyze"]
    p.add_argument("data", help="a file: CSV, TSV, JSON, JSONL, Parquet, XLSX or TXT")
    p.add_argument("--format", help=fmt_help)
    p.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN",
                   help="explicit column mapping, e.g. --map question=text --map answer=intent")
    p.add_argument("--model", default=None, help="tokenizer for token lengths (default: the default model)")
    p.add_argument("--max-seq-len", type=int, default=512)
    p.add_argument("--json", action="store_true")
    p = sub["prepare"]
    p.add_argument("data")
    p.add_argument("--format", help=fmt_help)
    p.add_argument("--map", action="append", default=[], metavar="FIELD=COLUMN")
    p.add_argument("--dedupe", action="store_true", help="drop exact and near duplicates")
    p.add_argument("--clean", action="store_true", help="normalise whitespace, strip control characters and HTML")
    p.add_argument("--mask-pii", action="store_true", help="replace e-mails, phones, cards and ids by placeholders")
    p.add_argument("--split", default="0.8,0.1,0.1",
                   help="train,val,test fractions, or 'source' to keep the file's own splits")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--name", help="dataset id (default: from the file name)")
    p.add_argument("--model", default=None, help="tokenizer for the quality report (default: the default model; "
                   "'approx' = fast estimate)")
    p.add_argument("--max-seq-len", type=int, default=512)
    p.add_argument("--json", action="store_true")


def _add_verb_arguments(sub: dict[str, argparse.ArgumentParser]) -> None:
    _add_data_arguments(sub)
    p = sub["estimate"]
    p.add_argument("--config", required=True, help="a run config, YAML or JSON")
    p.add_argument("--json", action="store_true")
    p = sub["recommend"]
    p.add_argument("data", help="a data file (CSV, TSV, JSON, JSONL, Parquet, XLSX, TXT) or a prepared dataset id")
    p.add_argument("--budget", type=float, metavar="MINUTES", help="training time budget in minutes")
    p.add_argument("--model", default=None, help="base model (default: the default model)")
    p.add_argument("--system-prompt", default=None, help="the assistant's system prompt (counts in the lengths)")
    p.add_argument("--task", default=None, help="style|knowledge_qa|classification|multi_turn (default: from the data)")
    p.add_argument("--out", help="write the run config here (YAML) for `python -m core train --config`")
    p.add_argument("--json", action="store_true")
    p = sub["train"]
    p.add_argument("--config", help="a run config, YAML or JSON")
    p.add_argument("--resume", metavar="RUN_ID", help="continue this run from its last checkpoint")
    p.add_argument("--run-id", help="use this id for a new run (the app passes it)")
    p = sub["eval"]
    p.add_argument("run_id")
    p.add_argument("--data", help="test data file (default: the run's test split)")
    p.add_argument("--limit", type=int, help="evaluate at most N examples")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-robustness", action="store_true", help="skip the perturbation tests")
    p.add_argument("--no-performance", action="store_true", help="skip the speed measurements")
    p.add_argument("--label-scoring", choices=["auto", "on", "off"], default="auto",
                   help="rank known labels by likelihood (auto: on for classification data)")
    p.add_argument("--fresh-base", action="store_true",
                   help="score the base model again instead of reusing its cached results for the same prompts")
    p.add_argument("--compare", metavar="OTHER_RUN", help="no evaluation: list the test answers that changed "
                   "between this run's report and OTHER_RUN's (e.g. a retrain without some rows)")
    p.add_argument("--checks", help="release-gate checks after the evaluation: all, or a comma list of "
                   "forgetting,abstention,leaks,causes,baselines,curve (each limited by --limit)")
    p = sub["baselines"]
    p.add_argument("dataset", help="a prepared dataset id (chat data with a test split)")
    p.add_argument("--limit", type=int, help="use at most N test examples")
    p.add_argument("--model", default=None, help="base model for the few-shot baseline (default: the default model)")
    p.add_argument("--system-prompt", default=None, help="the assistant's system prompt, as training will use it")
    p = sub["chat"]
    p.add_argument("run_id")
    p.add_argument("--prompt")
    p.add_argument("--base", action="store_true", help="answer with the base model instead of the tuned one")
    p.add_argument("--fast", action="store_true",
                   help="fast answers: int8 weights (about 2x tokens/s on CPU; answers may differ from float ones)")
    _add_serve_arguments(sub["serve"])
    p = sub["export"]
    p.add_argument("run_id")
    p.add_argument("--format", required=True, choices=["adapter", "peft", "merged", "gguf"])
    p.add_argument("--quant", choices=["f16", "q8_0"], help="GGUF weight type (--format gguf only; default f16)")
    p.add_argument("--out", required=True)
    p.add_argument("--force", action="store_true", help="replace the contents of an existing --out folder")
    p.add_argument("--accept-failing-gate", action="store_true",
                   help="export a run that does not pass the release gate (recorded in its report)")
    p = sub["bench"]
    p.add_argument("--quick", action="store_true")
    p.add_argument("names", nargs="*", help="which benchmarks (default: all)")
    p = sub["hello"]
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--prompt", default="What is the capital of France?")
    p = sub["models"]
    p.add_argument("--model", action="append", default=[], help="also describe this local folder or Hub id")
    p.add_argument("--chat-template", choices=["chatml", "llama3", "plain", "none"],
                   help="give --model this chat template (none: forget the choice)")


def _add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_id")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    p.add_argument("--api-key", help="require 'Authorization: Bearer KEY' (default: $ASSISTANT_FACTORY_API_KEY)")
    p.add_argument("--merged", action="store_true", help="fold a LoRA into the base weights (faster, same answers)")
    p.add_argument("--base", action="store_true", help="serve the base model instead of the tuned one")
    p.add_argument("--status-file", help=argparse.SUPPRESS)  # written by core.serve.control's background server


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of all verbs."""
    parser = argparse.ArgumentParser(prog="python -m core", description="Assistant Factory, headless.")
    subs = parser.add_subparsers(dest="verb", metavar="VERB")
    sub = {verb: subs.add_parser(verb, help=help_, description=help_) for verb, (_, _, help_) in VERBS.items()}
    _add_verb_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse, dispatch, map errors to exit codes."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.verb:
        parser.print_help()
        return 2
    module_name, func_name, _ = VERBS[args.verb]
    func = getattr(importlib.import_module(module_name), func_name)  # an import error is a bug: fail loudly
    try:
        return int(func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception:  # noqa: BLE001 - last resort: a traceback for the developer, exit 1
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main())
