"""The request queue: one worker owns the model and decodes waiting requests together.

Handlers put a ``Job`` on an asyncio queue and read its events from the job's own asyncio queue. The worker task
takes every job waiting, picks the oldest one and the other waiting jobs that can share its sampling settings
(up to ``max_batch``), and decodes them as ONE ``Decoder.events`` batch on a single worker thread (the model is
never used by two threads). Jobs that cannot share wait for the next round, in arrival order; nothing is refused
because another request runs. Greedy jobs batch whenever their stop strings match; sampled jobs with a seed run
alone, so the same seed gives the same answer whatever else is being served.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

from core.decoding import Decoder, SamplingParams

log = logging.getLogger("core.serve")
MAX_BATCH = 8              # rows decoded together; more waiting requests queue for the next round
GATHER_S = 0.01            # an idle worker waits this long after a first request, for the ones sent with it
_ids = itertools.count()


@dataclass
class Job:
    """One request's prompt and settings; ``events`` receives ("delta", text), ("done", Answer) or ("error", exc)."""

    prompt: list[int]
    params: SamplingParams
    events: asyncio.Queue
    seeded: bool = False
    cancelled: bool = False          # set by the handler when its client went away
    id: int = field(default_factory=lambda: next(_ids))

    def key(self) -> tuple:
        """Jobs with equal keys decode in one batch (max_new_tokens differs per row through ``limits``)."""
        p = self.params
        if not p.do_sample:
            return ("greedy", tuple(p.stop_strings))
        if self.seeded:
            return ("seeded", self.id)   # unique: a seeded answer never depends on its batch mates
        return ("sampled", p.temperature, p.top_p, tuple(p.stop_strings))


class Engine:
    """A model, its tokenizer and the worker that serves decode jobs from an asyncio queue."""

    def __init__(self, model, tok, model_id: str, system_prompt: Optional[str] = None, max_batch: int = MAX_BATCH):
        self.model, self.tok, self.model_id = model, tok, model_id
        self.system_prompt, self.max_batch = system_prompt, max_batch
        self.decoder = Decoder(model, tok)
        self.context = _context_length(model)
        self.batches: list[int] = []     # size of every batch decoded (for tests and the status line)
        self._queue: Optional[asyncio.Queue] = None
        self._task: Optional[asyncio.Task] = None
        self._pool: Optional[ThreadPoolExecutor] = None
        self._current: list[Job] = []    # the batch being decoded (close() cancels it)
        self._waiting: list[Job] = []    # taken off the queue, not decoded yet

    # ------------------------------------------------------------------ prompts
    def render(self, messages: list[dict]) -> list[int]:
        """Token ids of ``messages`` with the run's system prompt when they bring none, as core.chat renders them."""
        if self.system_prompt and not any(m["role"] == "system" for m in messages):
            messages = [{"role": "system", "content": self.system_prompt}] + messages
        text = self.tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self.tok(text, add_special_tokens=False)["input_ids"]

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Start the worker task on the running loop (the app's startup)."""
        self._queue = asyncio.Queue()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="serve-decoder")
        self._task = asyncio.create_task(self._work())

    async def close(self) -> None:
        """Stop the worker; jobs still waiting get an error event, the batch decoding stops after its next token."""
        for job in self._current:
            job.cancelled = True
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        while self._queue and not self._queue.empty():
            self._waiting.append(self._queue.get_nowait())
        for job in self._waiting:
            job.events.put_nowait(("error", RuntimeError("the server is shutting down")))
        self._waiting = []
        if self._pool:
            self._pool.shutdown(wait=True, cancel_futures=True)

    async def submit(self, prompt: list[int], params: SamplingParams, seeded: bool = False) -> Job:
        """Queue a decode job; read its events from ``job.events``."""
        if self._queue is None:
            raise RuntimeError("Engine.start() was not called")
        job = Job(prompt, params, asyncio.Queue(), seeded)
        await self._queue.put(job)
        return job

    # ------------------------------------------------------------------ the worker
    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._waiting:
                self._waiting.append(await self._queue.get())
                await asyncio.sleep(GATHER_S)  # clients that fire together arrive a few ms apart: batch them
            while not self._queue.empty():  # every job that arrived while the last batch decoded
                self._waiting.append(self._queue.get_nowait())
            self._waiting = [j for j in self._waiting if not j.cancelled]
            if not self._waiting:
                continue
            key = self._waiting[0].key()
            batch = [j for j in self._waiting if j.key() == key][:self.max_batch]
            self._waiting = [j for j in self._waiting if j not in batch]
            self.batches.append(len(batch))
            self._current = batch
            try:
                await loop.run_in_executor(self._pool, self._decode, batch, loop)
            finally:
                self._current = []

    def _decode(self, batch: list[Job], loop: asyncio.AbstractEventLoop) -> None:
        """Decode one batch on the worker thread, sending each job its deltas and its answer."""
        def send(job: Job, event: tuple) -> None:
            loop.call_soon_threadsafe(job.events.put_nowait, event)

        params = batch[0].params
        limits = [j.params.max_new_tokens for j in batch]
        try:
            for row in self.decoder.events([j.prompt for j in batch], params, len(batch), limits):
                job = batch[row.index]
                delta = row.delta()
                if delta:
                    send(job, ("delta", delta))
                if row.done:
                    send(job, ("done", row.answer()))
                if all(j.cancelled for j in batch):  # every client left: stop spending compute on them
                    break
        except Exception as exc:  # reported to the waiting handlers, the worker lives on
            log.exception("decoding failed")
            for job in batch:
                send(job, ("error", exc))


def new_seed() -> int:
    """A fresh seed for a sampled request that brought none (OpenAI answers vary between calls)."""
    return random.SystemRandom().randrange(2**63)


def _context_length(model) -> int:
    """Positions the model can attend to, less prefix-tuning virtual tokens."""
    from core.decoding.kvcache import virtual_tokens

    cfg = model.config
    n = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or 2048
    return int(n) - virtual_tokens(model)
