"""AdvancedTrainer: the training loop that never loses work and never reports a run done that did not learn.

One optimizer step = ``grad_accum`` micro-batches on each of ``world_size`` processes. The loss of a step is the sum
of token cross-entropies over the whole global batch divided by its number of label tokens, so 1 process with
accumulation and N processes under torchrun compute the same update. Checkpoints (``checkpoints/step-N/``) hold
the PEFT tensors, the optimizer state, the RNG states and the data position, all as safetensors + JSON; resuming
from one continues the exact same loss curve. SIGTERM finishes the current step, checkpoints and exits "stopped".
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import signal
import time
import traceback
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch

from core import checkpoints as C
from core.device import autocast, autocast_dtype, describe, grad_scaler
from core.defaults import EVAL_CAP
from core.checkpoints import CHECKPOINTS, latest_checkpoint  # noqa: F401 - the tests and older callers import them here
from core.errors import UserError
from core.training import distributed as D
from core.training.config import TrainingConfig
from core.training.loss import causal_lm_loss, label_tokens, real_tokens, split_rows, to_device
from core.training.monitor import SlowCheck, TrainingMetrics, TrainingMonitor
from core.training.optim import SmartOptimizer
from core.training.pairsteps import PairSteps

DEBUG_DELAY_ENV = "AF_DEBUG_STEP_DELAY"  # seconds to sleep after each step: lets tests stop a tiny run mid-way
FIRST_EVAL_EXAMPLES = 16  # the baseline pass before step 1 samples this many, so the first step is not kept waiting


def _step_delay() -> float:
    """The test-only per-step delay, read once at start."""
    raw = os.environ.get(DEBUG_DELAY_ENV, "") or "0"
    try:
        return max(float(raw), 0.0)
    except ValueError:
        raise UserError(f"{DEBUG_DELAY_ENV}={raw!r} is not a number of seconds; unset it or give e.g. 0.5.") from None


class AdvancedTrainer(PairSteps):
    """Train one run folder from a :class:`TrainingConfig`; :meth:`train` returns the final state."""

    def __init__(self, config: TrainingConfig, run_dir: str | Path, *, resume: bool = False,
                 ctx: Optional[D.DistContext] = None, run_id: Optional[str] = None):
        self.config, self.tc = config, config.train
        self.run_dir = Path(run_dir)
        self.run_id = run_id or self.run_dir.name
        self.resume = resume
        self.ctx = ctx or D.init_distributed(self.tc.device)
        self.monitor = TrainingMonitor(self.run_dir, enabled=self.ctx.is_main)
        self._stop_requested = False
        self.step = 0
        self.best_eval: Optional[float] = None
        self.evals_without_improvement = 0
        self.consecutive_nonfinite = 0
        self.skipped_steps = 0
        self.pending_eval = True  # the step-0 evaluation
        self.elapsed_before = 0.0
        self.early_stopped = False
        self.applied_steps = 0  # optimizer steps actually applied (finite loss and gradient)
        self.notes: list[dict] = []  # {"code", "params"} the UI translates: fallbacks, sampled evaluations
        self.step_delay = _step_delay()
        self.amp_dtype = autocast_dtype(self.ctx.device)  # bf16 / fp16 autocast on CUDA, None (float32) on CPU
        self.scaler = grad_scaler(self.ctx.device, self.amp_dtype)  # fp16 only

    # ================================================================ public
    def train(self) -> str:
        """Run to completion, stop or failure; returns "completed", "stopped" or "failed"."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.monitor.update(state="running", run_id=self.run_id, step=0, total_steps=None, error=None, failure=None,
                            phase="train", eval_batch=None, eval_batches=None, eta_s=None, slow=None, notes=[],
                            world_size=self.ctx.world_size, started_at=time.time())
        self.monitor.start_heartbeat()
        old_handlers = self._install_signal_handlers()
        try:
            with C.disk_full_is_user_error(self.run_dir):
                state = self._train()
        except BaseException as exc:
            user = isinstance(exc, UserError)
            msg = str(exc) if user else f"{type(exc).__name__}: {exc}"
            if not user:
                traceback.print_exc()
            code = getattr(exc, "code", None) or ("user_error" if user else "crash")
            with contextlib.suppress(OSError):  # a full disk must not hide the real error behind a second one
                self.monitor.finish("failed", error=msg, step=self.step,
                                    failure={"code": code, "params": {"type": type(exc).__name__}})
            raise
        finally:
            self._restore_signal_handlers(old_handlers)
        return state

    # ================================================================ setup
    def _install_signal_handlers(self) -> dict:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return {}
        old = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            old[sig] = signal.signal(sig, self._on_signal)
        return old

    def _restore_signal_handlers(self, old: dict) -> None:
        for sig, handler in old.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum, _frame) -> None:
        # Only set a flag: the loop checks it between steps, so the step in flight completes and is checkpointed.
        self._stop_requested = True
        self.monitor.stop_requested = True  # the heartbeat thread shows "stopping" within a beat
        print(f"received signal {signum}: finishing the current step, then checkpointing", flush=True)

    def _say(self, message: str) -> None:
        """A progress line on stdout (train.log), from rank 0 only."""
        if self.ctx.is_main:
            print(message, flush=True)

    def request_stop(self) -> None:
        """Ask the loop to stop after the current step (same as SIGTERM)."""
        self._stop_requested = True
        self.monitor.stop_requested = True

    def _seed(self) -> None:
        seed = self.tc.seed
        random.seed(seed)
        torch.manual_seed(seed)
        np.random.seed(seed)

    def _build_model(self):
        from core.models import load_model
        from core.peft import apply_peft, trainable_parameters
        from core.training.swiglu import lean_swiglu

        model, tok = load_model(self.config.model)
        model = apply_peft(model, self.config.peft_config())
        lean_swiglu(model)  # same numbers, a fifth less activation memory (core/training/swiglu.py)
        model.to(self.ctx.device)
        model.train()
        self._say(f"device: {describe(self.ctx.device)}")
        from core.models import template_choices

        chosen = template_choices().get(self.config.model)  # recorded: a later change of choice is visible
        self.monitor.update(chat_template=chosen or "own")
        self._note_loss_path(model)
        trainable, total = trainable_parameters(model)
        self._say(f"model {self.config.model}: method {self.config.method}, {trainable:,} trainable of {total:,} "
                  f"parameters ({100 * trainable / max(total, 1):.3f}%)")
        return model, tok

    def _note_loss_path(self, model) -> None:
        """Say (log and status note) which parts of the fast loss path this model's family makes the trainer skip."""
        from core.training.loss import path_reasons

        for reason in path_reasons(model, self.tc.max_seq_len):
            self.notes.append({"code": "plain_loss_path", "params": {"reason": reason}})
            self._say(f"loss path: the plain path for this model ({reason}); same numbers, less of the speed-up")
        if self.notes:
            self.monitor.update(notes=self.notes)

    def _build_data(self, tok):
        if self.config.is_preference:
            self._build_pair_data(tok)
        else:
            self._build_chat_data(tok)
        self._plan_steps()

    def _build_chat_data(self, tok):
        from core.data import load_split
        from core.data.loader import SmartDataLoader

        tc = self.tc
        self.loader = SmartDataLoader(tok, system_prompt=self.config.system_prompt, max_seq_len=tc.max_seq_len)
        train_convs = load_split(self.config.data, "train")
        if tc.max_train_examples:
            train_convs = train_convs[: tc.max_train_examples]
        if not train_convs:
            raise UserError(f"The data {self.config.data!r} has no training conversations; prepare a dataset with "
                            "at least a few examples and point `data:` at it.")
        self.train_examples, stats = self.loader.encode_all(train_convs)
        if not self.train_examples:
            raise UserError("No training example has an assistant answer inside max_seq_len tokens; raise "
                            "train.max_seq_len or check the data's assistant turns.")
        try:
            val_convs = load_split(self.config.data, "val")
        except UserError:
            val_convs = []
        val_convs = val_convs[: tc.max_eval_examples or EVAL_CAP]  # every pass is bounded, even without a cap set
        self.val_examples = self.loader.encode_all(val_convs)[0] if val_convs else []
        if isinstance(stats, dict):
            self._say(f"encoding stats: {json.dumps(stats, default=str)[:500]}")

    def _plan_steps(self) -> None:
        tc = self.tc
        self.packing = bool(tc.packing) and self.config.method != "prefix" and not self.config.is_preference
        self.batches_per_epoch = self.loader.num_batches(self.train_examples, tc.batch_size, packing=self.packing)
        self.per_step = self.ctx.world_size * tc.grad_accum
        self.steps_per_epoch = max(1, math.ceil(self.batches_per_epoch / self.per_step))
        self.total_steps = tc.max_steps or max(1, math.ceil(tc.epochs * self.steps_per_epoch))
        self._say(f"data: {len(self.train_examples)} training examples, {len(self.val_examples)} validation examples, "
                  f"{self.batches_per_epoch} batches/epoch, {self.steps_per_epoch} steps/epoch, "
                  f"{self.total_steps} steps "
                  f"(global batch {tc.batch_size} x {self.ctx.world_size} processes x {tc.grad_accum} accumulation)")

    # ================================================================ the loop
    def _train(self) -> str:
        self._seed()
        self.model, self.tok = self._build_model()
        self._build_data(self.tok)
        self._build_optimizer()
        if self.ctx.is_main:  # half-written or set-aside checkpoints of an earlier process are never loaded
            for stale in (self.run_dir / CHECKPOINTS).glob(".*step-*"):
                shutil.rmtree(stale, ignore_errors=True)
        if self.resume and C.step_dirs(self.run_dir):
            self._resume()
        elif self.ctx.is_main:
            (self.run_dir / "metrics.jsonl").unlink(missing_ok=True)
        self.ddp_model = D.wrap_model(self.model, self.ctx)
        self.monitor.update(step=self.step, total_steps=self.total_steps, steps_per_epoch=self.steps_per_epoch,
                            lr=self.optimizer.base_lr)
        every = self.tc.eval_every
        evals = set(range(every, self.total_steps + 1, every)) | {self.total_steps} if self.val_examples else ()
        self.metrics = TrainingMetrics(self.total_steps, start_step=self.step, elapsed_before=self.elapsed_before,
                                       eval_steps=evals)
        self.slow_check = SlowCheck(self.tc.expected_step_s)
        return self._finish(*self._loop())

    def _build_optimizer(self) -> None:
        tc = self.tc
        self.optimizer = SmartOptimizer(
            D.unwrap(self.model).named_parameters(), method=self.config.method, lr=tc.lr,
            weight_decay=tc.weight_decay, total_steps=self.total_steps,
            warmup_steps=round(tc.warmup_ratio * self.total_steps), scheduler=tc.scheduler,
            min_lr_ratio=tc.min_lr_ratio, max_grad_norm=tc.max_grad_norm)
        source = f"recommended for {self.config.method}" if tc.lr is None else "from the config"
        self._say(f"optimizer: AdamW peak lr {self.optimizer.base_lr:g} ({source}), {tc.scheduler} schedule, "
                  f"{self.optimizer.warmup_steps} warmup steps")

    def _loop(self) -> tuple[bool, Optional[dict]]:
        """Steps, validations and periodic checkpoints until the end, a stop or a failure: (stopping, failure)."""
        tc = self.tc
        stopping = False
        failure: Optional[dict] = None
        if self.pending_eval and not self._run_eval():
            stopping = True
        batches: Optional[Iterator[dict]] = None
        batches_epoch = -1
        while not stopping and self.step < self.total_steps and not self.early_stopped:
            if D.any_rank(self._stop_requested, self.ctx):
                stopping = True
                break
            epoch, pos = divmod(self.step, self.steps_per_epoch)
            if batches is None or batches_epoch != epoch:
                batches = self.loader.batches(self.train_examples, tc.batch_size, packing=self.packing, shuffle=True,
                                              seed=tc.seed, epoch=epoch, start=pos * self.per_step)
                batches_epoch = epoch
            micro = [b for _, b in zip(range(self.per_step), batches)]
            if not micro:  # fewer batches than expected (should not happen): move to the next epoch
                self.step = (epoch + 1) * self.steps_per_epoch
                continue
            failure = self._train_step(micro)
            if failure:
                break
            if self.step_delay:
                time.sleep(self.step_delay)
            if self.step % tc.eval_every == 0 or self.step == self.total_steps:
                if not self._run_eval():
                    stopping = True
            if self.step % tc.save_every == 0 and self.step < self.total_steps and not stopping:
                self._save_checkpoint()
        return stopping, failure

    def _resume(self) -> None:
        """Load the newest checkpoint that verifies; newer damaged ones are set aside and noted."""
        path, skipped = C.choose(self.run_dir)
        if path is None:
            found = ", ".join(f"{s['skipped']} ({s['why']})" for s in skipped)
            raise UserError(f"No checkpoint of run {self.run_id!r} can be resumed: {found}. The files are damaged "
                            "(a full disk or a killed copy); start a new run with the same config.")
        for s in skipped:
            self._say(f"checkpoint {s['skipped']} is damaged ({s['why']}); resuming from {path.name} instead")
            self.notes.append({"code": "resume_fallback", "params": {**s, "used": path.name}})
        self._load_checkpoint(path)
        D.barrier(self.ctx)  # every rank has verified before rank 0 moves the damaged ones away
        if self.ctx.is_main:
            for s in skipped:
                C.set_aside(self.run_dir / CHECKPOINTS / s["skipped"])
        if self.notes:
            self.monitor.update(notes=self.notes)

    def _learning_failure(self) -> Optional[dict]:
        """Why a run that reached its end did not learn (no applied step, non-finite weights), or None."""
        if self.applied_steps == 0:
            return {"code": "no_finite_step", "params": {"steps": self.step},
                    "message": f"No optimizer step was applied: all {self.step} steps had a non-finite loss or "
                               "gradient, so the weights never changed. Lower train.lr, check the data for empty "
                               "or huge examples, or use a smaller max_seq_len."}
        bad = [n for n, p in D.unwrap(self.model).named_parameters()
               if p.requires_grad and not torch.isfinite(p.detach()).all()]
        if bad:
            return {"code": "nonfinite_weights", "params": {"step": self.step, "tensors": len(bad)},
                    "message": f"{len(bad)} trainable tensors (e.g. {bad[0]}) hold NaN or Inf at step {self.step}; "
                               "the adapter would be useless. Lower train.lr or train.max_grad_norm."}
        return None

    def _finish(self, stopping: bool, failure: Optional[dict]) -> str:
        if not failure and not stopping:
            failure = self._learning_failure()
        if failure:
            self._say(f"run failed: {failure['message']}")
            self.monitor.finish("failed", error=failure["message"], step=self.step, skipped_steps=self.skipped_steps,
                                failure={"code": failure["code"], "params": failure["params"]}, phase=None)
            return "failed"
        self._save_checkpoint()
        if stopping:
            self.monitor.finish("stopped", step=self.step, skipped_steps=self.skipped_steps, phase=None)
            self._say(f"stopped at step {self.step}; resume with: python -m core train --resume {self.run_id}")
            return "stopped"
        if self.ctx.is_main:
            from core.peft import save_adapter

            with C.disk_full_is_user_error(self.run_dir / "adapter"):
                save_adapter(D.unwrap(self.model), self.run_dir / "adapter")
        D.barrier(self.ctx)
        self.monitor.finish("completed", step=self.step, skipped_steps=self.skipped_steps, phase=None,
                            early_stopped=self.early_stopped, best_eval_loss=self.best_eval)
        self._say(f"completed at step {self.step}; adapter in {self.run_dir / 'adapter'}")
        return "completed"

    def _slots(self, micro: list[dict]) -> list[tuple[dict, float]]:
        """This rank's micro-batches with a weight: 1 for real ones, 0 for padding slots that keep DDP in step."""
        W, r = self.ctx.world_size, self.ctx.rank
        slots = []
        for j in range(self.tc.grad_accum):
            idx = j * W + r
            if idx < len(micro):
                slots.append((micro[idx], 1.0))
            elif self.ctx.distributed:  # every rank must run the same number of backward passes under DDP
                slots.append((micro[0], 0.0))
        return slots

    def _train_step(self, micro: list[dict]) -> Optional[dict]:
        """One optimizer step over this global batch; returns a failure after too many non-finite steps."""
        if self.config.is_preference:
            return self._pair_step(micro)
        dev = self.ctx.device
        # Each accumulation slot runs as row groups of <= micro_batch_tokens tokens (same gradients, less memory).
        slots = [([to_device(sub, dev) for sub in split_rows(b, self.tc.micro_batch_tokens)], w)
                 for b, w in self._slots(micro)]
        local_labels = sum(label_tokens(g) for groups, w in slots if w for g in groups)
        local_real = sum(real_tokens(g, self.tok.pad_token_id) for groups, w in slots if w for g in groups)
        global_labels, global_real = D.all_reduce_sum([local_labels, local_real], self.ctx)
        epoch = self.step / self.steps_per_epoch
        if global_labels == 0:
            self.step += 1
            self.monitor.log({"step": self.step, "epoch": epoch, "skipped": True, "reason": "no label tokens"})
            return None
        scale = self.ctx.world_size / global_labels  # DDP averages gradients over ranks; undo that, normalise by tokens
        local_loss = 0.0
        for j, (groups, weight) in enumerate(slots):
            # Dropout masks depend only on (seed, step, global micro-batch index), not on which process or which
            # accumulation slot runs the batch: N processes then match one process with the same global batch.
            torch.manual_seed(D.micro_seed(self.tc.seed, self.step, j * self.ctx.world_size + self.ctx.rank))
            for k, batch in enumerate(groups):
                last = j == len(slots) - 1 and k == len(groups) - 1
                sync_ctx = (self.ddp_model.no_sync() if self.ctx.distributed and not last
                            else contextlib.nullcontext())
                with sync_ctx:
                    with autocast(dev, self.amp_dtype):
                        loss_sum, _ = causal_lm_loss(self.ddp_model, batch)
                    scaled = loss_sum * (scale * weight)
                    (self.scaler.scale(scaled) if self.scaler else scaled).backward()
                if weight:
                    local_loss += float(loss_sum.detach())
        loss = D.all_reduce_sum([local_loss], self.ctx)[0] / global_labels
        return self._apply_step(loss, int(global_real))

    def _apply_step(self, loss: float, real: int, extra: Optional[dict] = None) -> Optional[dict]:
        """Clip, step the optimizer and log, or skip a non-finite step."""
        dev = self.ctx.device
        if self.scaler:  # fp16: true gradients before clipping; an overflow shows as a non-finite norm below
            self.scaler.unscale_(self.optimizer.optimizer)
        grad_norm = self.optimizer.grad_norm()
        if self.scaler:
            self.scaler.update()  # halves the scale after an overflow, grows it after a run of good steps
        self.step += 1
        epoch = self.step / self.steps_per_epoch
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            return self._skip_step(loss, grad_norm, epoch)
        lr = self.optimizer.step(self.step - 1)
        self.optimizer.zero_grad()
        self.consecutive_nonfinite = 0
        self.applied_steps += 1
        record = {**self.metrics.record(self.step, epoch, loss, lr, grad_norm, real, dev), **(extra or {})}
        self.monitor.log(record)
        self.monitor.update(step=self.step, epoch=round(epoch, 4), loss=loss, eta_s=record["eta_s"],
                            slow=self.slow_check.check(self.metrics.step_time(), self.metrics.steps_timed))
        self._say(f"step {self.step}/{self.total_steps} loss {loss:.4f} lr {lr:.3g} grad_norm {grad_norm:.3f} "
                  f"tok/s {record['tokens_per_s']:.0f} eta {record['eta_s']:.0f}s")
        return None

    def _skip_step(self, loss: float, grad_norm: float, epoch: float) -> Optional[dict]:
        """Drop a step with a non-finite loss or gradient; a failure once too many came in a row."""
        self.optimizer.zero_grad()
        self.consecutive_nonfinite += 1
        self.skipped_steps += 1
        what = "loss" if not math.isfinite(loss) else "gradient norm"
        reason = f"non-finite {what} ({loss if what == 'loss' else grad_norm}) at step {self.step}"
        self._say(f"skipping step {self.step}: {reason} ({self.consecutive_nonfinite} in a row)")
        self.monitor.log({"step": self.step, "epoch": epoch, "skipped": True, "reason": reason,
                          "loss": loss, "grad_norm": grad_norm})
        self.monitor.update(step=self.step, skipped_steps=self.skipped_steps)
        if self.consecutive_nonfinite >= self.tc.nonfinite_patience:
            return {"code": "nonfinite_steps", "params": {"count": self.consecutive_nonfinite, "step": self.step},
                    "message": f"{self.consecutive_nonfinite} consecutive steps had a non-finite loss or "
                               f"gradient (last: {reason}). Lower train.lr, check the data for empty or huge "
                               "examples, or use a smaller max_seq_len."}
        return None

    # ================================================================ evaluation
    def evaluate(self, limit: Optional[int] = None) -> Optional[float]:
        """Mean validation loss per label token over the first ``limit`` examples (None: none, or a stop came)."""
        examples = self.val_examples[:limit] if limit else self.val_examples
        if not examples:
            return None
        if self.config.is_preference:
            return self._pair_evaluate(examples)
        model = D.unwrap(self.model)
        model.eval()
        bs = self.tc.eval_batch_size or self.tc.batch_size
        n_batches = self.loader.num_batches(examples, bs, packing=False)
        loss_sum, n_tokens = 0.0, 0
        try:
            with torch.no_grad():
                for i, batch in enumerate(self.loader.batches(examples, bs, packing=False, shuffle=False)):
                    if i % self.ctx.world_size != self.ctx.rank:
                        continue
                    if self._stop_requested and not self.ctx.distributed:
                        return None
                    self.monitor.update(phase="eval", state_detail="evaluating", eval_batch=i + 1,
                                        eval_batches=n_batches)
                    with autocast(self.ctx.device, self.amp_dtype):
                        s, n = causal_lm_loss(model, to_device(batch, self.ctx.device))
                    loss_sum += float(s)
                    n_tokens += n
        finally:
            model.train()
            self.monitor.update(phase="train", state_detail=None, eval_batch=None, eval_batches=None)
        loss_sum, n_tokens = D.all_reduce_sum([loss_sum, n_tokens], self.ctx)
        return loss_sum / max(n_tokens, 1)

    def _eval_limit(self) -> Optional[int]:
        """Sample the baseline pass before step 1 (noted), so the first training step starts soon."""
        n = len(self.val_examples)
        if self.step > 0 or n <= FIRST_EVAL_EXAMPLES:
            return None
        note = {"code": "first_eval_sampled", "params": {"examples": FIRST_EVAL_EXAMPLES, "of": n}}
        if note not in self.notes:
            self.notes.append(note)
            self.monitor.update(notes=self.notes)
            self._say(f"baseline validation before step 1 on the first {FIRST_EVAL_EXAMPLES} of {n} examples "
                      "(later passes use all of them)")
        return FIRST_EVAL_EXAMPLES

    def _run_eval(self) -> bool:
        """Evaluate, log, track early stopping; False when a stop request interrupted the evaluation."""
        limit = self._eval_limit()
        t0 = time.perf_counter()
        eval_loss = self.evaluate(limit)
        if eval_loss is None:
            self.metrics.mark()
            if self.val_examples:
                self.pending_eval = True
                return False
            self.pending_eval = False
            return True
        used = min(limit or len(self.val_examples), len(self.val_examples))
        self.metrics.record_eval(time.perf_counter() - t0, used / max(len(self.val_examples), 1))
        self.pending_eval = False
        epoch = self.step / self.steps_per_epoch
        self.monitor.log({**self.monitor.eval_record(self.step, epoch, eval_loss), "eval_examples": used,
                          **getattr(self, "pair_eval", {})})
        self.monitor.update(eval_loss=eval_loss, eta_s=self.metrics.eta(self.step))
        self._say(f"eval at step {self.step}: loss {eval_loss:.4f} ppl {math.exp(min(eval_loss, 50)):.2f}")
        if limit:  # a sampled baseline is not compared with full passes for early stopping
            return True
        if self.best_eval is None or eval_loss < self.best_eval:
            self.best_eval, self.evals_without_improvement = eval_loss, 0
        elif self.step > 0:
            self.evals_without_improvement += 1
            patience = self.tc.early_stopping_patience
            if patience and self.evals_without_improvement >= patience:
                self.early_stopped = True
                self._say(f"early stopping: validation loss has not improved for {patience} evaluations "
                          f"(best {self.best_eval:.4f})")
        return True

    # ================================================================ checkpoints
    def _save_checkpoint(self) -> None:
        """Write checkpoints/step-N (atomically, see core.checkpoints) and prune to the last k; never NaN weights."""
        from core.peft import peft_state_dict

        rngs = D.gather_objects(C.torch_rng_state(self.ctx.device), self.ctx)
        if self.ctx.is_main:
            peft_sd = {k: v.detach().to("cpu").clone().contiguous()  # clone: tied/shared tensors save separately
                       for k, v in peft_state_dict(D.unwrap(self.model)).items()}
            if all(torch.isfinite(t).all() for t in peft_sd.values() if t.is_floating_point()):
                opt_tensors, opt_meta = self.optimizer.state_tensors()
                final = C.save(self.run_dir / CHECKPOINTS, self.step,
                               {C.WEIGHTS: peft_sd, C.OPTIMIZER: opt_tensors, C.RNG: C.rng_tensors(rngs)},
                               {C.OPTIMIZER_META: opt_meta, C.RNG_META: C.host_rng_state(),
                                C.TRAINER_STATE: self._trainer_state()})
                C.prune(self.run_dir, self.tc.keep_checkpoints)
                self.monitor.update(last_checkpoint=final.name)
                self._say(f"checkpoint saved: {final}")
            else:  # keeping the earlier good checkpoints is worth more than saving these
                self._say(f"checkpoint at step {self.step} not saved: the weights hold NaN or Inf")
        D.barrier(self.ctx)
        self.metrics.mark()

    def _trainer_state(self) -> dict:
        return C.trainer_state(self)

    def _load_checkpoint(self, path: Path) -> None:
        """Restore weights, optimizer, counters and RNG from checkpoints/step-N."""
        C.restore(self, path)
        self.monitor.truncate_after(self.step)
        self._say(f"resumed from {path} at step {self.step}/{self.total_steps}")

