"""AdvancedTrainer: the training loop that never loses work (DESIGN §5).

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

import torch

from core.errors import UserError
from core.fileio import atomic_write_json, read_json
from core.training import distributed as D
from core.training.config import TrainingConfig
from core.training.loss import IGNORE_INDEX, causal_lm_loss, split_rows
from core.training.monitor import TrainingMetrics, TrainingMonitor
from core.training.optim import SmartOptimizer

CHECKPOINTS = "checkpoints"
DEBUG_DELAY_ENV = "AF_DEBUG_STEP_DELAY"  # seconds to sleep after each step: lets tests stop a tiny run mid-way


def latest_checkpoint(run_dir: str | Path) -> Optional[Path]:
    """The ``checkpoints/step-N`` folder with the largest N (temp folders are ignored), or None."""
    root = Path(run_dir) / CHECKPOINTS
    steps = []
    for p in root.glob("step-*"):
        try:
            steps.append((int(p.name.split("-", 1)[1]), p))
        except ValueError:
            continue
    return max(steps)[1] if steps else None


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}


def _label_tokens(batch: dict) -> int:
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


def _real_tokens(batch: dict, pad_id: Optional[int]) -> int:
    if batch.get("row_lengths") is not None:
        return int(batch["row_lengths"].sum())
    if batch.get("attention_mask") is not None:
        return int(batch["attention_mask"].sum())
    if pad_id is None:
        return batch["input_ids"].numel()
    return int((batch["input_ids"] != pad_id).sum())


class AdvancedTrainer:
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

    # ================================================================ public
    def train(self) -> str:
        """Run to completion, stop or failure; returns "completed", "stopped" or "failed"."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.monitor.update(state="running", run_id=self.run_id, step=0, total_steps=None, error=None,
                            world_size=self.ctx.world_size, started_at=time.time())
        self.monitor.start_heartbeat()
        old_handlers = self._install_signal_handlers()
        try:
            state = self._train()
        except BaseException as exc:
            msg = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, UserError):
                traceback.print_exc()
            self.monitor.finish("failed", error=msg, step=self.step)
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
        try:
            import numpy as np

            np.random.seed(seed)
        except ImportError:
            pass

    def _build_model(self):
        from core.models import load_model
        from core.peft import apply_peft, trainable_parameters
        from core.training.swiglu import lean_swiglu

        model, tok = load_model(self.config.model)
        model = apply_peft(model, self.config.peft_config())
        lean_swiglu(model)  # same numbers, a fifth less activation memory (core/training/swiglu.py)
        model.to(self.ctx.device)
        model.train()
        trainable, total = trainable_parameters(model)
        self._say(f"model {self.config.model}: method {self.config.method}, {trainable:,} trainable of {total:,} "
                  f"parameters ({100 * trainable / max(total, 1):.3f}%)")
        return model, tok

    def _build_data(self, tok):
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
        if tc.max_eval_examples:
            val_convs = val_convs[: tc.max_eval_examples]
        self.val_examples = self.loader.encode_all(val_convs)[0] if val_convs else []
        self.packing = bool(tc.packing) and self.config.method != "prefix"
        self.batches_per_epoch = self.loader.num_batches(self.train_examples, tc.batch_size, packing=self.packing)
        self.per_step = self.ctx.world_size * tc.grad_accum
        self.steps_per_epoch = max(1, math.ceil(self.batches_per_epoch / self.per_step))
        self.total_steps = tc.max_steps or max(1, math.ceil(tc.epochs * self.steps_per_epoch))
        self._say(f"data: {len(self.train_examples)} training examples, {len(self.val_examples)} validation examples, "
                  f"{self.batches_per_epoch} batches/epoch, {self.steps_per_epoch} steps/epoch, "
                  f"{self.total_steps} steps "
                  f"(global batch {tc.batch_size} x {self.ctx.world_size} processes x {tc.grad_accum} accumulation)")
        if isinstance(stats, dict):
            self._say(f"encoding stats: {json.dumps(stats, default=str)[:500]}")

    # ================================================================ the loop
    def _train(self) -> str:
        self._seed()
        self.model, self.tok = self._build_model()
        self._build_data(self.tok)
        tc = self.tc
        self.optimizer = SmartOptimizer(
            D.unwrap(self.model).named_parameters(), method=self.config.method, lr=tc.lr,
            weight_decay=tc.weight_decay, total_steps=self.total_steps,
            warmup_steps=round(tc.warmup_ratio * self.total_steps), scheduler=tc.scheduler,
            min_lr_ratio=tc.min_lr_ratio, max_grad_norm=tc.max_grad_norm)
        source = f"recommended for {self.config.method}" if tc.lr is None else "from the config"
        self._say(f"optimizer: AdamW peak lr {self.optimizer.base_lr:g} ({source}), {tc.scheduler} schedule, "
                  f"{self.optimizer.warmup_steps} warmup steps")
        if self.ctx.is_main:  # half-written checkpoints of a killed process are never loaded; clear them
            for stale in (self.run_dir / CHECKPOINTS).glob(".*step-*"):
                shutil.rmtree(stale, ignore_errors=True)
        if self.resume and latest_checkpoint(self.run_dir) is not None:
            self._load_checkpoint(latest_checkpoint(self.run_dir))
        elif self.ctx.is_main:
            (self.run_dir / "metrics.jsonl").unlink(missing_ok=True)
        self.ddp_model = D.wrap_model(self.model, self.ctx)
        self.monitor.update(step=self.step, total_steps=self.total_steps, steps_per_epoch=self.steps_per_epoch,
                            lr=self.optimizer.base_lr)
        self.metrics = TrainingMetrics(self.total_steps, start_step=self.step, elapsed_before=self.elapsed_before)
        stopping = False
        failure: Optional[str] = None
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
            delay = float(os.environ.get(DEBUG_DELAY_ENV, "0") or 0)
            if delay:
                time.sleep(delay)
            if self.step % tc.eval_every == 0 or self.step == self.total_steps:
                if not self._run_eval():
                    stopping = True
            if self.step % tc.save_every == 0 and self.step < self.total_steps and not stopping:
                self._save_checkpoint()
        return self._finish(stopping, failure)

    def _finish(self, stopping: bool, failure: Optional[str]) -> str:
        if failure:
            self._say(f"run failed: {failure}")
            self.monitor.finish("failed", error=failure, step=self.step, skipped_steps=self.skipped_steps)
            return "failed"
        self._save_checkpoint()
        if stopping:
            self.monitor.finish("stopped", step=self.step, skipped_steps=self.skipped_steps)
            self._say(f"stopped at step {self.step}; resume with: python -m core train --resume {self.run_id}")
            return "stopped"
        if self.ctx.is_main:
            from core.peft import save_adapter

            save_adapter(D.unwrap(self.model), self.run_dir / "adapter")
        D.barrier(self.ctx)
        self.monitor.finish("completed", step=self.step, skipped_steps=self.skipped_steps,
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

    def _train_step(self, micro: list[dict]) -> Optional[str]:
        """One optimizer step over this global batch; returns a failure reason after too many non-finite steps."""
        dev = self.ctx.device
        # Each accumulation slot runs as row groups of <= micro_batch_tokens tokens (same gradients, less memory).
        slots = [([_to_device(sub, dev) for sub in split_rows(b, self.tc.micro_batch_tokens)], w)
                 for b, w in self._slots(micro)]
        local_labels = sum(_label_tokens(g) for groups, w in slots if w for g in groups)
        local_real = sum(_real_tokens(g, self.tok.pad_token_id) for groups, w in slots if w for g in groups)
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
            torch.manual_seed(_micro_seed(self.tc.seed, self.step, j * self.ctx.world_size + self.ctx.rank))
            for k, batch in enumerate(groups):
                last = j == len(slots) - 1 and k == len(groups) - 1
                sync_ctx = (self.ddp_model.no_sync() if self.ctx.distributed and not last
                            else contextlib.nullcontext())
                with sync_ctx:
                    loss_sum, _ = causal_lm_loss(self.ddp_model, batch)
                    (loss_sum * (scale * weight)).backward()
                if weight:
                    local_loss += float(loss_sum.detach())
        loss = D.all_reduce_sum([local_loss], self.ctx)[0] / global_labels
        grad_norm = self.optimizer.grad_norm()
        self.step += 1
        epoch = self.step / self.steps_per_epoch
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
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
                return (f"{self.consecutive_nonfinite} consecutive steps had a non-finite loss or gradient (last: "
                        f"{reason}). Lower train.lr, check the data for empty or huge examples, or use a smaller "
                        "max_seq_len.")
            return None
        lr = self.optimizer.step(self.step - 1)
        self.optimizer.zero_grad()
        self.consecutive_nonfinite = 0
        record = self.metrics.record(self.step, epoch, loss, lr, grad_norm, int(global_real), dev)
        self.monitor.log(record)
        self.monitor.update(step=self.step, epoch=round(epoch, 4), loss=loss, eta_s=record["eta_s"])
        self._say(f"step {self.step}/{self.total_steps} loss {loss:.4f} lr {lr:.3g} grad_norm {grad_norm:.3f} "
                  f"tok/s {record['tokens_per_s']:.0f} eta {record['eta_s']:.0f}s")
        return None

    # ================================================================ evaluation
    def evaluate(self) -> Optional[float]:
        """Mean validation loss per label token (None without validation data or when a stop interrupted it)."""
        if not self.val_examples:
            return None
        model = D.unwrap(self.model)
        model.eval()
        bs = self.tc.eval_batch_size or self.tc.batch_size
        loss_sum, n_tokens = 0.0, 0
        try:
            with torch.no_grad():
                for i, batch in enumerate(self.loader.batches(self.val_examples, bs, packing=False, shuffle=False)):
                    if i % self.ctx.world_size != self.ctx.rank:
                        continue
                    if self._stop_requested and not self.ctx.distributed:
                        return None
                    batch = _to_device(batch, self.ctx.device)
                    s, n = causal_lm_loss(model, batch)
                    loss_sum += float(s)
                    n_tokens += n
        finally:
            model.train()
        loss_sum, n_tokens = D.all_reduce_sum([loss_sum, n_tokens], self.ctx)
        return loss_sum / max(n_tokens, 1)

    def _run_eval(self) -> bool:
        """Evaluate, log, track early stopping; False when a stop request interrupted the evaluation."""
        self.monitor.update(state_detail="evaluating")
        eval_loss = self.evaluate()
        self.metrics.mark()
        if eval_loss is None:
            if self.val_examples:
                self.pending_eval = True
                return False
            self.pending_eval = False
            return True
        self.pending_eval = False
        epoch = self.step / self.steps_per_epoch
        self.monitor.log_eval(self.step, epoch, eval_loss)
        self.monitor.update(eval_loss=eval_loss, state_detail=None)
        self._say(f"eval at step {self.step}: loss {eval_loss:.4f} ppl {math.exp(min(eval_loss, 50)):.2f}")
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
    def _rng_state(self) -> dict:
        state = {"torch": torch.get_rng_state()}
        if self.ctx.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.ctx.device)
        return state

    def _save_checkpoint(self) -> None:
        """Write checkpoints/step-N atomically (temp folder + rename) and prune to the last k."""
        from safetensors.torch import save_file

        from core.peft import peft_state_dict

        rngs = D.gather_objects({k: v.tolist() for k, v in self._rng_state().items()}, self.ctx)
        if self.ctx.is_main:
            root = self.run_dir / CHECKPOINTS
            root.mkdir(parents=True, exist_ok=True)
            final = root / f"step-{self.step}"
            tmp = root / f".step-{self.step}.tmp-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            peft_sd = {k: v.detach().to("cpu").clone().contiguous()  # clone: tied/shared tensors save separately
                       for k, v in peft_state_dict(D.unwrap(self.model)).items()}
            save_file(peft_sd, str(tmp / "peft.safetensors"))
            opt_tensors, opt_meta = self.optimizer.state_tensors()
            save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
            atomic_write_json(tmp / "optimizer.json", opt_meta)
            rng_tensors = {f"rank{r}.{k}": torch.tensor(v, dtype=torch.uint8) for r, st in enumerate(rngs)
                           for k, v in st.items()}
            save_file(rng_tensors, str(tmp / "rng.safetensors"))
            atomic_write_json(tmp / "rng.json", _host_rng_state())
            atomic_write_json(tmp / "trainer_state.json", self._trainer_state())
            if final.exists():  # re-saving the same step (e.g. stop right after a periodic save): swap safely
                old = root / f".old-step-{self.step}-{os.getpid()}"
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
            self._prune_checkpoints(root)
            self.monitor.update(last_checkpoint=final.name)
            self._say(f"checkpoint saved: {final}")
        D.barrier(self.ctx)
        self.metrics.mark()

    def _prune_checkpoints(self, root: Path) -> None:
        steps = sorted((int(p.name.split("-", 1)[1]), p) for p in root.glob("step-*") if p.name[5:].isdigit())
        for _, p in steps[: -self.tc.keep_checkpoints]:
            shutil.rmtree(p, ignore_errors=True)

    def _trainer_state(self) -> dict:
        epoch, pos = divmod(self.step, self.steps_per_epoch)
        return {"step": self.step, "total_steps": self.total_steps, "steps_per_epoch": self.steps_per_epoch,
                "epoch_index": epoch, "batch_index": pos * self.per_step, "batches_per_epoch": self.batches_per_epoch,
                "world_size": self.ctx.world_size, "grad_accum": self.tc.grad_accum, "batch_size": self.tc.batch_size,
                "best_eval": self.best_eval, "evals_without_improvement": self.evals_without_improvement,
                "consecutive_nonfinite": self.consecutive_nonfinite, "skipped_steps": self.skipped_steps,
                "pending_eval": self.pending_eval, "early_stopped": self.early_stopped,
                "elapsed_s": self.metrics.elapsed, "lr_schedule": {
                    "base_lr": self.optimizer.base_lr, "scheduler": self.optimizer.scheduler,
                    "warmup_steps": self.optimizer.warmup_steps, "min_lr_ratio": self.optimizer.min_lr_ratio},
                "saved_at": time.time()}

    def _load_checkpoint(self, path: Path) -> None:
        """Restore weights, optimizer, counters and RNG from checkpoints/step-N."""
        from safetensors.torch import load_file

        from core.peft import set_peft_state_dict

        state = read_json(path / "trainer_state.json")
        if state is None:
            raise UserError(f"{path} is not a complete checkpoint (trainer_state.json missing); delete it to resume "
                            "from the one before.")
        if state["steps_per_epoch"] != self.steps_per_epoch or state["total_steps"] != self.total_steps:
            raise UserError(f"The checkpoint {path.name} was made with {state['steps_per_epoch']} steps/epoch and "
                            f"{state['total_steps']} total steps, but the data/config now give {self.steps_per_epoch} "
                            f"and {self.total_steps}. Resume with the same data, batch size, grad_accum and number of "
                            "processes, or start a new run.")
        device = self.ctx.device
        sd = load_file(str(path / "peft.safetensors"), device=str(device))
        set_peft_state_dict(D.unwrap(self.model), sd)
        self.optimizer.load_state_tensors(load_file(str(path / "optimizer.safetensors")),
                                          read_json(path / "optimizer.json"))
        self.step = state["step"]
        self.best_eval = state["best_eval"]
        self.evals_without_improvement = state["evals_without_improvement"]
        self.consecutive_nonfinite = state["consecutive_nonfinite"]
        self.skipped_steps = state["skipped_steps"]
        self.pending_eval = state["pending_eval"]
        self.early_stopped = state.get("early_stopped", False)
        self.elapsed_before = state["elapsed_s"]
        rng = load_file(str(path / "rng.safetensors"))
        r = self.ctx.rank if f"rank{self.ctx.rank}.torch" in rng else 0
        torch.set_rng_state(rng[f"rank{r}.torch"])
        if device.type == "cuda" and f"rank{r}.cuda" in rng:
            torch.cuda.set_rng_state(rng[f"rank{r}.cuda"], device)
        _set_host_rng_state(read_json(path / "rng.json") or {})
        self.monitor.truncate_after(self.step)
        self._say(f"resumed from {path} at step {self.step}/{self.total_steps}")


def _micro_seed(seed: int, step: int, micro_index: int) -> int:
    """A distinct, reproducible RNG seed per (run seed, optimizer step, global micro-batch)."""
    return ((seed * 1_000_003 + step) * 10_007 + micro_index) % (2**63 - 1)


def _host_rng_state() -> dict:
    """Python's and NumPy's RNG states as JSON."""
    version, internal, gauss = random.getstate()
    out = {"python": [version, list(internal), gauss]}
    try:
        import numpy as np

        name, keys, pos, has_gauss, cached = np.random.get_state()
        out["numpy"] = [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]
    except ImportError:
        pass
    return out


def _set_host_rng_state(state: dict) -> None:
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in state:
        import numpy as np

        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
