"""The preference-pair side of AdvancedTrainer (DPO, ORPO): its data, its optimizer step, its validation loss.

A mixin, so trainer.py keeps the loop that both objectives share; the methods read the trainer's state (config,
loader, model, ctx, step) and the losses come from core/training/preference.py.
"""
from __future__ import annotations

import contextlib
import json
from typing import Optional

import torch

from core.defaults import EVAL_CAP
from core.device import autocast
from core.errors import UserError
from core.training import distributed as D
from core.training.loss import to_device


class PairSteps:
    def _build_pair_data(self, tok):
        """Preference pairs (DPO/ORPO); full/freeze store the base's reference log-probs once, before step 1."""
        from core.data import load_pairs
        from core.peft import supports_disabling
        from core.training.preference import PairLoader, precompute_reference

        tc = self.tc
        self.loader = PairLoader(tok, self.config.system_prompt, tc.max_seq_len)
        rows = [p.to_dict() for p in load_pairs(self.config.data, "train")][: tc.max_train_examples or None]
        self.train_examples, stats = self.loader.encode_all(rows)
        if not self.train_examples:
            raise UserError(f"The data {self.config.data!r} has no preference pairs that fit train.max_seq_len; "
                            f"objective {self.config.objective} needs a preference dataset (prompt, chosen, rejected).")
        try:
            val_rows = [p.to_dict() for p in load_pairs(self.config.data, "val")][: tc.max_eval_examples or EVAL_CAP]
        except UserError:
            val_rows = []
        self.val_examples = self.loader.encode_all(val_rows)[0] if val_rows else []
        self._say(f"preference pairs: {json.dumps(stats)}")
        if self.config.objective == "dpo" and not supports_disabling(D.unwrap(self.model)):
            self._say("reference log-probs: one pass of the base model over the pairs (no second model copy)")
            for examples in (self.train_examples, self.val_examples):
                precompute_reference(D.unwrap(self.model), self.loader, examples, tc.eval_batch_size or tc.batch_size,
                                     self.ctx.device)

    def _pair_step(self, micro: list[dict]) -> Optional[dict]:
        """One DPO/ORPO optimizer step: mean loss over the global batch's pairs (ORPO's NLL over its tokens)."""
        from core.training.preference import answer_lengths, preference_terms, step_metrics

        dev = self.ctx.device
        slots = [(to_device(b, dev), w) for b, w in self._slots(micro)]
        local = [sum(w * b["prompt_ids"].shape[0] for b, w in slots),
                 sum(w * float(answer_lengths(b).chunk(2)[0].sum()) for b, w in slots),
                 sum(w * float(b["prompt_mask"].sum() + b["answer_mask"].sum()) for b, w in slots)]
        pairs, chosen_tokens, tokens = D.all_reduce_sum(local, self.ctx)
        stats = []
        for j, (batch, weight) in enumerate(slots):
            torch.manual_seed(D.micro_seed(self.tc.seed, self.step, j * self.ctx.world_size + self.ctx.rank))
            sync_ctx = (self.ddp_model.no_sync() if self.ctx.distributed and j < len(slots) - 1
                        else contextlib.nullcontext())
            with sync_ctx:
                # Under DDP one forward per backward: the plain path (the fast one calls the model twice).
                with autocast(dev, self.amp_dtype):
                    loss, s = preference_terms(self.ddp_model, batch, self.config.objective, self._pair_strength(),
                                               self.ctx.world_size / pairs, self.ctx.world_size / chosen_tokens,
                                               fast=not self.ctx.distributed)
                scaled = loss * weight
                (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            if weight:
                stats.append(s)
        loss = D.all_reduce_sum([sum(s["pref_loss"] for s in stats)], self.ctx)[0] / self.ctx.world_size
        return self._apply_step(loss, int(tokens), step_metrics(stats))

    def _pair_strength(self) -> float:
        return self.config.beta if self.config.objective == "dpo" else self.config.orpo_lambda

    def _pair_evaluate(self, examples: list[dict]) -> Optional[float]:
        """Mean DPO/ORPO loss over the validation pairs (reward metrics kept in ``self.pair_eval``)."""
        from core.training.preference import preference_terms, step_metrics

        model = D.unwrap(self.model)
        model.eval()
        bs = self.tc.eval_batch_size or self.tc.batch_size
        batches = list(self.loader.batches(examples, bs, shuffle=False))
        tokens = sum(float(b["answer_mask"].chunk(2)[0].sum()) for b in batches)
        stats = []
        try:
            with torch.no_grad():
                for batch in batches:
                    if self._stop_requested and not self.ctx.distributed:
                        return None
                    stats.append(preference_terms(model, to_device(batch, self.ctx.device), self.config.objective,
                                                  self._pair_strength(), 1 / len(examples), 1 / tokens)[1])
        finally:
            model.train()
        self.pair_eval = {f"eval_{k}": v for k, v in step_metrics(stats).items()}
        return sum(s["pref_loss"] for s in stats)

