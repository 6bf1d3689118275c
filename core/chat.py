"""Chat with a run (DESIGN §6): the run's system prompt and chat template, streaming, base vs tuned side by side.

``python -m core chat RUN_ID [--prompt TEXT] [--base]`` answers once, or opens an interactive session
(empty line or ``/exit`` quits, ``/reset`` forgets the history).
"""
from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import torch

from core.errors import UserError
from core.chat_template import end_token_ids
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


def adapter_dir(run_id: str) -> Path:
    """The run's ``adapter/`` folder; a UserError saying why when the run has none yet."""
    folder = run_dir(run_id) / "adapter"
    if not (folder / "adapter_config.json").exists():
        status = read_json(run_dir(run_id) / "status.json", {}) or {}
        state = status.get("state", "unknown")
        hint = {"running": "it is still training; wait until it completes",
                "queued": "it is queued and has not started training yet",
                "failed": "it failed; read runs/<id>/train.log and train again",
                "stopped": "it was stopped before the end; resume it with `python -m core train --resume "
                           f"{run_id}`"}.get(state, "train it to completion first")
        raise UserError(f"Run '{run_id}' has no trained adapter yet (state: {state}): {hint}.")
    return folder


def load_base_model(run_id: str):
    """(base model, tokenizer, run config): the run's base model without its adapter."""
    from core.defaults import DEFAULT_MODEL
    from core.models import load_model

    cfg = load_run_config(run_id)
    model, tok = load_model(cfg.get("model") or DEFAULT_MODEL)
    return model, tok, cfg


def load_run_model(run_id: str, merged: bool = False):
    """(tuned model, tokenizer, run config): the base model with ``runs/<id>/adapter`` loaded.

    ``merged=True`` folds a LoRA into the base weights (faster answers, same outputs); other methods ignore it.
    """
    from core.peft import load_adapter, merge_lora

    load_run_config(run_id)  # a missing run is reported before a missing adapter
    folder = adapter_dir(run_id)
    model, tok, cfg = load_base_model(run_id)
    model = load_adapter(model, folder)
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


def _generate_kwargs(model, tok, messages, max_new_tokens, do_sample, temperature, top_p) -> dict:
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    enc = tok(text, add_special_tokens=False, return_tensors="pt")
    device = next(model.parameters()).device
    ends = end_token_ids(tok)
    kwargs = dict(input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device),
                  max_new_tokens=max_new_tokens, do_sample=do_sample, eos_token_id=ends,
                  pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else ends[0])
    if do_sample:
        kwargs.update(temperature=temperature, top_p=top_p)
    else:  # generation_config may carry sampling defaults that greedy decoding must not see
        kwargs.update(temperature=None, top_p=None, top_k=None)
    return kwargs


def generate(model, tok, messages: list[dict], max_new_tokens: int = 256, do_sample: bool = False,
             temperature: float = 0.7, top_p: float = 0.95, stream: bool = False) -> Union[str, Iterator[str]]:
    """The assistant's answer to ``messages`` (greedy by default); ``stream=True`` returns an iterator of chunks.

    Streaming runs ``model.generate`` on a worker thread feeding a ``TextIteratorStreamer``; the chunks joined
    equal the non-streamed answer for the same settings.
    """
    kwargs = _generate_kwargs(model, tok, messages, max_new_tokens, do_sample, temperature, top_p)
    if stream:
        return _stream(model, tok, kwargs)
    with torch.no_grad():
        out = model.generate(**kwargs)
    return tok.decode(out[0, kwargs["input_ids"].shape[1]:], skip_special_tokens=True)


def _stream(model, tok, kwargs: dict) -> Iterator[str]:
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True, timeout=600)
    errors: list[BaseException] = []

    def work():
        try:
            with torch.no_grad():
                model.generate(**kwargs, streamer=streamer)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer's thread
            errors.append(exc)
            streamer.end()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    for chunk in streamer:
        if chunk:
            yield chunk
    thread.join()
    if errors:
        raise errors[0]


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
    """``python -m core chat RUN_ID [--prompt TEXT] [--base]``."""
    if args.base:
        model, tok, cfg = load_base_model(args.run_id)
    else:
        model, tok, cfg = load_run_model(args.run_id)
    system_prompt = cfg.get("system_prompt")
    if args.prompt is not None:
        _print_stream(generate(model, tok, build_messages(system_prompt, [], args.prompt), stream=True))
        return 0
    who = "base model" if args.base else f"run {args.run_id}"
    print(f"Chatting with the {who}. Empty line or /exit quits, /reset clears the history.", file=sys.stderr)
    history: list[tuple[str, str]] = []
    while True:
        try:
            user = input("you> ")
        except EOFError:
            break
        if not user.strip() or user.strip() == "/exit":
            break
        if user.strip() == "/reset":
            history = []
            continue
        print("assistant> ", end="", flush=True)
        answer = _print_stream(generate(model, tok, build_messages(system_prompt, history, user), stream=True))
        history.append((user, answer))
    return 0


def _print_stream(chunks: Iterator[str]) -> str:
    parts = []
    for chunk in chunks:
        parts.append(chunk)
        print(chunk, end="", flush=True)
    print()
    return "".join(parts)
