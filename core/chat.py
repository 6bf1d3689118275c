"""Chat with a run: the run's system prompt and chat template, streaming, base vs tuned side by side.

``python -m core chat RUN_ID [--prompt TEXT] [--base] [--fast]`` answers once, or opens an interactive session
(empty line or ``/exit`` quits, ``/reset`` forgets the history) that keeps the conversation's KV cache between
turns (core.decoding.ChatSession). ``--fast`` answers with int8 weights (core.decoding.quantize_for_chat): about
twice the tokens/s on a CPU, but greedy answers can differ from the float ones, so it is off by default.
"""
from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

from core.checkpoints import UsableWeights, load_weights, usable_weights
from core.errors import UserError
from core.chat_template import prompt_ids
from core.decoding import ChatSession, Decoder, SamplingParams, quantize_for_chat
from core.fileio import read_json
from core.workspace import run_dir

History = Sequence[Union[dict, tuple, list]]


# ---------------------------------------------------------------- loading a run
def load_run_config(run_id: str) -> dict:
    """``runs/<id>/config.json`` as a dict (UserError when the run does not exist)."""
    folder = run_dir(run_id)
    cfg = read_json(folder / "config.json")
    if not folder.is_dir() or not isinstance(cfg, dict):
        raise UserError(f"There is no run '{run_id}' (no {folder / 'config.json'}). "
                        "List runs on the Train page or in workspace/runs/, and check the id.")
    return cfg


def run_weights(run_id: str) -> UsableWeights:
    """The weights chat, evaluation and export load; a UserError saying why when there are none.

    The final adapter of a completed run, else the newest verified checkpoint of a stopped or failed run.
    """
    load_run_config(run_id)  # a missing run is reported before missing weights
    weights = usable_weights(run_id)
    if weights is None:
        from core.runs import status as run_status

        status = run_status(run_id)  # liveness checked: a killed trainer reads "failed", never "still training"
        state = status.get("state", "unknown")
        hints = {"running": "it is still training; wait until it completes, or stop it to use its last checkpoint",
                 "stopping": "it is stopping; try again in a moment",
                 "queued": "it is queued and has not started training yet",
                 "failed": "it failed before saving a usable checkpoint; read runs/<id>/train.log and train again",
                 "stopped": "it was stopped before a usable checkpoint was saved; resume it with "
                            f"`python -m core train --resume {run_id}`",
                 "damaged": str(status.get("error"))}
        hint = hints.get(state, "train it to completion first")
        raise UserError(f"Run '{run_id}' has no trained adapter yet (state: {state}): {hint}.")
    if weights.final:  # fail before minutes of work on the base model, not after
        from core.peft.io import read_adapter_config, read_adapter_weights

        read_adapter_config(weights.path)
        read_adapter_weights(weights.path)
    return weights


def adapter_dir(run_id: str) -> Path:
    """The folder of the run's usable weights (``adapter/``, or a checkpoint: load it with ``load_weights``)."""
    return run_weights(run_id).path


def load_base_model(run_id: str):
    """(base model, tokenizer, run config): the run's base model without its adapter."""
    from core.defaults import DEFAULT_MODEL
    from core.models import load_model

    cfg = load_run_config(run_id)
    model, tok = load_model(cfg.get("model") or DEFAULT_MODEL)
    return model, tok, cfg


def load_run_model(run_id: str, merged: bool = False):
    """(tuned model, tokenizer, run config): the base model with the run's usable weights (see ``run_weights``).

    ``merged=True`` folds a LoRA into the base weights (faster answers, same outputs); other methods ignore it.
    """
    from core.peft import merge_lora

    weights = run_weights(run_id)
    model, tok, cfg = load_base_model(run_id)
    model = load_weights(model, weights, cfg)
    if merged and (cfg.get("method") or "lora") == "lora":
        model = merge_lora(model)
    model.eval()
    return model, tok, cfg


# ---------------------------------------------------------------- messages and generation
def build_messages(system_prompt: Optional[str], history: History, user_msg: str) -> list[dict]:
    """System prompt (when given), the history, then the new user message.

    ``history`` holds message dicts ({"role", "content"}) or (user, assistant) pairs.
    """
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    for item in history or ():
        if isinstance(item, dict):
            messages.append({"role": item["role"], "content": item["content"]})
        else:
            user, assistant = item
            messages.append({"role": "user", "content": user})
            if assistant is not None:
                messages.append({"role": "assistant", "content": assistant})
    messages.append({"role": "user", "content": user_msg})
    return messages


def generate(model, tok, messages: list[dict], max_new_tokens: int = 256, do_sample: bool = False,
             temperature: float = 0.7, top_p: float = 0.95, stream: bool = False,
             seed: Optional[int] = None) -> Union[str, Iterator[str]]:
    """The assistant's answer to ``messages`` (greedy by default); ``stream=True`` returns an iterator of chunks.

    Our decoder (core.decoding) answers: greedy answers equal HF ``generate``'s token for token, and the streamed
    chunks joined equal the non-streamed answer. Sampling draws a fresh seed unless one is given.
    """
    params = SamplingParams(max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature,
                            top_p=top_p, seed=secrets.randbits(31) if seed is None else seed)
    decoder, ids = Decoder(model, tok), prompt_ids(tok, messages)
    if stream:
        return decoder.stream(ids, params)
    return decoder.generate([ids], params, batch_size=1)[0].text


def side_by_side(base, tuned, messages: list[dict], **gen_kwargs) -> dict:
    """Answers of the base and the tuned model to the same messages with the same decoding.

    ``base`` and ``tuned`` are (model, tokenizer) pairs; returns {"base": text, "tuned": text, "decoding": {...}}.
    """
    gen_kwargs = {k: v for k, v in gen_kwargs.items() if k != "stream"}
    return {"base": generate(base[0], base[1], messages, **gen_kwargs),
            "tuned": generate(tuned[0], tuned[1], messages, **gen_kwargs),
            "decoding": {"do_sample": False, "max_new_tokens": 256, **gen_kwargs}}


# ---------------------------------------------------------------- CLI
def chat_command(args) -> int:
    """``python -m core chat RUN_ID [--prompt TEXT] [--base] [--fast]``."""
    if args.base:
        model, tok, cfg = load_base_model(args.run_id)
    else:
        weights = run_weights(args.run_id)
        if not weights.final:
            print(f"note: run {args.run_id} did not finish; using its weights {weights.describe()}.", file=sys.stderr)
        model, tok, cfg = load_run_model(args.run_id)
    if getattr(args, "fast", False):
        model = quantize_for_chat(model)
    system_prompt = cfg.get("system_prompt")
    if args.prompt is not None:
        _print_stream(generate(model, tok, build_messages(system_prompt, [], args.prompt), stream=True))
        return 0
    who = "base model" if args.base else f"run {args.run_id}"
    print(f"Chatting with the {who}. Empty line or /exit quits, /reset clears the history.", file=sys.stderr)
    session = ChatSession(model, tok, system_prompt=system_prompt, params=SamplingParams(max_new_tokens=256))
    while True:
        try:
            user = input("you> ")
        except EOFError:
            break
        if not user.strip() or user.strip() == "/exit":
            break
        if user.strip() == "/reset":
            session.reset()
            continue
        print("assistant> ", end="", flush=True)
        _print_stream(session.stream(user))  # only the new turn's tokens run: the rest is in the session's cache
    return 0


def _print_stream(chunks: Iterator[str]) -> str:
    parts = []
    for chunk in chunks:
        parts.append(chunk)
        print(chunk, end="", flush=True)
    print()
    return "".join(parts)
