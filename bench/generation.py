"""Generation speed: our decoder (core/decoding) against HF ``generate`` on the same model and prompts (issue 17).

Every case runs in a fresh subprocess (its own peak RSS), and the cases alternate HF/ours so machine noise hits
both alike. Greedy decoding throughout.
  * chat: a 3-turn conversation on Bitext questions. HF ``generate`` with a ``TextIteratorStreamer`` re-encodes
    the whole conversation every turn; ours keeps the conversation's KV cache (ChatSession). Time to first token (TTFT: first
    streamed text) and decode tokens/s on turns 1 and 3.
  * eval: answers to N Bitext questions (system prompt + chat template) at batch 1, 8, 32. HF is today's
    hf_generate_batch below (length-sorted, left-padded ``generate``, what evaluation used before); ours is
    Decoder.generate (shared prefix once, continuous batching). Tokens/s and prompts/s over generated tokens, and
    the share of answers identical to HF's at batch 1 (the unpadded reference).

  * int8: single-stream answers of the fp32 model and its int8 copy (core.decoding.quantize_for_chat, the chat's
    "fast answers"), alternating prompt by prompt: tokens/s of each and the share of greedy answers that agree.

Threads: ours decodes with core.decoding.decode_threads() (the idle cores); HF runs with torch's default count, as
``generate`` does out of the box, unless ``--same-threads`` gives it ours. The table shows each case's count.

    python -m core bench generation [--quick]          # the same as running this file
    python bench/generation.py --quick                  # SmolLM2-135M, 16 prompts, short answers
    python bench/generation.py --model tiny-llama --quick   # smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere
from core.defaults import DEFAULT_MODEL  # noqa: E402 - after the path insert

BITEXT = ROOT / ".." / "shared" / "data" / "bitext_customer_support"  # see its SOURCE.md (CDLA-Sharing-1.0)
CSV = "v1_short_responses/Bitext_Sample_Customer_Support_Training_Dataset.csv"
SYSTEM = "You are a friendly customer-support assistant."


def questions(n: int, seed: int = 0) -> list[str]:
    """n Bitext customer questions (a seeded sample, read from the shared data; never copied into the project)."""
    import pandas as pd

    frame = pd.read_csv(BITEXT / CSV)
    return frame["instruction"].sample(n=n, random_state=seed).tolist()


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed_stream(chunks) -> tuple[str, float, float]:
    """(text, seconds to the first chunk, seconds in all) of an iterator of text chunks."""
    t0, first, parts = time.perf_counter(), None, []
    for chunk in chunks:
        if first is None and chunk:
            first = time.perf_counter() - t0
        parts.append(chunk)
    return "".join(parts), first or 0.0, time.perf_counter() - t0


def hf_stream(model, tok, messages: list[dict], max_new_tokens: int):
    """HF ``generate`` (greedy) on the whole conversation, streamed through a ``TextIteratorStreamer``."""
    import threading

    from transformers import TextIteratorStreamer

    from core.chat_template import end_token_ids, prompt_ids

    ids = torch.tensor([prompt_ids(tok, messages)])
    ends = end_token_ids(tok)
    streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
    kwargs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                  do_sample=False, temperature=None, top_p=None, top_k=None, eos_token_id=ends,
                  pad_token_id=ends[0], streamer=streamer)
    worker = threading.Thread(target=lambda: torch.no_grad()(model.generate)(**kwargs))
    worker.start()
    yield from streamer
    worker.join()


def chat_worker(spec: dict, model, tok) -> dict:
    """Three turns; per turn TTFT, decode tokens/s and the answer."""
    from core.decoding import ChatSession, SamplingParams

    n_new = spec["max_new_tokens"]
    session = ChatSession(model, tok, SYSTEM, SamplingParams(max_new_tokens=n_new))
    messages, turns = [{"role": "system", "content": SYSTEM}], []
    for q in questions(3, seed=1):
        messages.append({"role": "user", "content": q})
        if spec["impl"] == "hf":
            text, ttft, total = _timed_stream(hf_stream(model, tok, messages, n_new))
        else:
            text, ttft, total = _timed_stream(session.stream(q))
        n = len(tok(text, add_special_tokens=False)["input_ids"])
        turns.append({"ttft_s": ttft, "decode_tokens_per_s": max(n - 1, 1) / max(total - ttft, 1e-9),
                      "tokens": n, "text": text})
        messages.append({"role": "assistant", "content": text})
    return {"turns": turns}


@torch.no_grad()
def hf_generate_batch(model, tok, prompts, decoding, progress=None, label: str = "generating") -> list:
    """The HF reference: length-sorted, left-padded ``model.generate`` batches (what evaluation used before)."""
    from core.chat_template import end_token_ids

    device = next(model.parameters()).device
    ends = end_token_ids(tok)
    pad = tok.pad_token_id if tok.pad_token_id is not None else ends[0]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    answers: list = [None] * len(prompts)
    if decoding.do_sample:
        torch.manual_seed(decoding.seed)
    done = 0
    for start in range(0, len(order), decoding.batch_size):
        idx = order[start:start + decoding.batch_size]
        width = max(len(prompts[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        att = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):
            p = list(prompts[i])
            ids[r, width - len(p):] = torch.tensor(p, dtype=torch.long)
            att[r, width - len(p):] = 1
        kwargs = dict(max_new_tokens=decoding.max_new_tokens, do_sample=decoding.do_sample,
                      pad_token_id=pad, eos_token_id=ends)
        if decoding.do_sample:
            kwargs.update(temperature=decoding.temperature, top_p=decoding.top_p)
        else:  # the model's generation_config may carry sampling defaults; greedy must not see them
            kwargs.update(temperature=None, top_p=None, top_k=None)
        out = model.generate(input_ids=ids.to(device), attention_mask=att.to(device), **kwargs)
        for r, i in enumerate(idx):
            answers[i] = _answer(tok, out[r, width:].tolist(), ends)
        done += len(idx)
        if progress:
            progress(done / len(prompts), label)
    return answers  # type: ignore[return-value]


def _answer(tok, new_tokens: list[int], ends: list[int]):
    from core.decoding import Answer

    for n, t in enumerate(new_tokens):
        if t in ends:
            return Answer(tok.decode(new_tokens[:n], skip_special_tokens=True), n, True)
    return Answer(tok.decode(new_tokens, skip_special_tokens=True), len(new_tokens), False)


def eval_worker(spec: dict, model, tok) -> dict:
    """Answers to spec['prompts'] questions at spec['batch']; tokens/s, prompts/s and the answers."""
    from core.decoding import Decoder, SamplingParams
    from core.evaluation.generation import Decoding
    from core.evaluation.prompts import prompt_ids

    prompts = [prompt_ids(tok, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}])
               for q in questions(spec["prompts"])]
    t0 = time.perf_counter()
    if spec["impl"] == "hf":
        answers = hf_generate_batch(model, tok, prompts, Decoding(max_new_tokens=spec["max_new_tokens"],
                                                               batch_size=spec["batch"]))
    else:
        answers = Decoder(model, tok).generate(prompts, SamplingParams(max_new_tokens=spec["max_new_tokens"]),
                                               batch_size=spec["batch"])
    dt = time.perf_counter() - t0
    tokens = sum(a.n_tokens for a in answers)
    return {"tokens_per_s": tokens / dt, "prompts_per_s": len(prompts) / dt, "seconds": dt, "tokens": tokens,
            "texts": [a.text for a in answers]}


def int8_worker(spec: dict, model, tok) -> dict:
    """Single-stream greedy answers of fp32 and int8, alternating per prompt: tokens/s each, answers that agree."""
    from core.decoding import Decoder, SamplingParams, quantize_for_chat
    from core.evaluation.prompts import prompt_ids

    fast = quantize_for_chat(model)
    params = SamplingParams(max_new_tokens=spec["max_new_tokens"])
    tokens, seconds, answers = {"fp32": 0, "int8": 0}, {"fp32": 0.0, "int8": 0.0}, {"fp32": [], "int8": []}
    for q in questions(spec["prompts"]):
        ids = prompt_ids(tok, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}])
        for name, m in (("fp32", model), ("int8", fast)):
            t0 = time.perf_counter()
            answer = Decoder(m, tok).generate([ids], params, batch_size=1)[0]
            seconds[name] += time.perf_counter() - t0
            tokens[name] += answer.n_tokens
            answers[name].append(answer.token_ids)
    agree = sum(a == b for a, b in zip(answers["fp32"], answers["int8"]))
    return {"tokens_per_s": {k: tokens[k] / seconds[k] for k in tokens}, "agree": agree,
            "answers": len(answers["fp32"])}


def worker(spec: dict) -> dict:
    """One case in this (fresh) process."""
    from core.decoding import decode_threads
    from core.models import load_model

    model, tok = load_model(spec["model"])
    model.eval()
    threads = decode_threads() if spec["impl"] != "hf" or spec.get("same_threads") else torch.get_num_threads()
    torch.set_num_threads(threads)  # ours sets it per step anyway; HF keeps it for the whole case
    work = {"chat": chat_worker, "eval": eval_worker, "int8": int8_worker}[spec["kind"]]
    with torch.no_grad():
        out = work(spec, model, tok)
    return {**spec, **out, "threads": threads, "peak_rss_mb": _rss_mb()}


def run_case(spec: dict) -> dict:
    """One case in a fresh interpreter."""
    from bench.common import run_worker

    print(f"… {spec['kind']} {spec['impl']}" + (f" batch {spec['batch']}" if "batch" in spec else ""),
          file=sys.stderr, flush=True)
    return run_worker(__file__, spec, f"{spec['kind']}/{spec['impl']}")


def table(chat: dict, evals: list[dict], int8: dict) -> str:
    """The printed table: chat TTFT and tokens/s per turn, eval throughput per batch size, int8 against fp32."""
    lines = [f"{'case':<22} {'TTFT t1 s':>9} {'TTFT t3 s':>9} {'tok/s t1':>8} {'tok/s t3':>8} {'prompts/s':>9} "
             f"{'peak RSS MB':>11} {'same as HF':>10} {'threads':>7}"]
    ref_chat = [t["text"] for t in chat["hf"]["turns"]]
    for impl in ("hf", "ours"):
        t = chat[impl]["turns"]
        same = sum(a["text"] == b for a, b in zip(t, ref_chat)) / len(t)
        lines.append(f"{'chat ' + impl:<22} {t[0]['ttft_s']:9.3f} {t[2]['ttft_s']:9.3f} "
                     f"{t[0]['decode_tokens_per_s']:8.1f} {t[2]['decode_tokens_per_s']:8.1f} {'-':>9} "
                     f"{chat[impl]['peak_rss_mb']:11.0f} {same:10.0%} {chat[impl]['threads']:7d}")
    ref = next(r["texts"] for r in evals if r["impl"] == "hf" and r["batch"] == 1)
    for r in evals:
        same = sum(a == b for a, b in zip(r["texts"], ref)) / len(ref)
        lines.append(f"{'eval ' + r['impl'] + ' batch ' + str(r['batch']):<22} {'-':>9} {'-':>9} "
                     f"{r['tokens_per_s']:8.1f} {'-':>8} {r['prompts_per_s']:9.2f} {r['peak_rss_mb']:11.0f} "
                     f"{same:10.0%} {r['threads']:7d}")
    by = {r["impl"]: r for r in evals if r["batch"] == 8}
    ratio = by["ours"]["tokens_per_s"] / by["hf"]["tokens_per_s"]
    turns = {impl: chat[impl]["turns"] for impl in ("hf", "ours")}
    lines.append(f"eval batch 8: ours/HF tokens/s = {ratio:.2f}x; chat turn 1: ours/HF tokens/s = "
                 f"{turns['ours'][0]['decode_tokens_per_s'] / turns['hf'][0]['decode_tokens_per_s']:.2f}x")
    tps = int8["tokens_per_s"]
    lines.append(f"int8 chat (single stream, {int8['answers']} prompts): fp32 {tps['fp32']:.1f} tok/s, int8 "
                 f"{tps['int8']:.1f} tok/s ({tps['int8'] / tps['fp32']:.2f}x); greedy answers equal to fp32's: "
                 f"{int8['agree']}/{int8['answers']} ({int8['agree'] / int8['answers']:.0%}); "
                 f"peak RSS {int8['peak_rss_mb']:.0f} MB")
    return "\n".join(lines)


def main(quick: bool = False, model: str = DEFAULT_MODEL, prompts: int | None = None,
         same_threads: bool = False) -> dict:
    """Run the chat and eval cases (HF and ours alternated), the int8 case, and print one table."""
    n_prompts = prompts or (16 if quick else 50)
    base = {"model": model, "max_new_tokens": 32 if quick else 64, "same_threads": same_threads}
    chat = {impl: run_case({**base, "kind": "chat", "impl": impl}) for impl in ("hf", "ours")}
    evals = [run_case({**base, "kind": "eval", "impl": impl, "batch": b, "prompts": n_prompts})
             for b in (1, 8, 32) for impl in ("hf", "ours")]
    int8 = run_case({**base, "kind": "int8", "impl": "ours", "prompts": min(8, n_prompts) if quick else 50})
    print(f"Generation on {os.cpu_count()} CPU cores, {model} float32, greedy, up to {base['max_new_tokens']} new "
          f"tokens; chat: 3 turns; eval: {n_prompts} Bitext prompts (tok/s t1 = eval tokens/s):")
    print(table(chat, evals, int8))
    return {"chat": chat, "eval": evals, "int8": int8}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="default SmolLM2-135M; tiny-llama for a smoke run")
    parser.add_argument("--prompts", type=int, help="eval prompts (default 50; 16 with --quick)")
    parser.add_argument("--same-threads", action="store_true", help="run HF with our decode thread count too")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
    else:
        main(args.quick, args.model, args.prompts, args.same_threads)
