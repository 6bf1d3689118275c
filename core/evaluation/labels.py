"""Label scoring: rank every known label by the model's log-likelihood of it as the assistant answer.

Scoring K labels naively costs K forward passes over prompt + label. We do one forward per batch of prompts:
the labels' token sequences (each ending with the turn's end token) are merged into a prefix TRIE, and the trie's
nodes are appended after the (left-padded) prompt. A custom 4-D attention mask lets each trie node see the whole
prompt and only its own ancestors; its position id is prompt length + depth. So every label is scored exactly as if
it followed the prompt alone, shared label prefixes ("card_…") are computed once, and only the logits of the
positions that predict a label token go through the LM head (``logits_to_keep``).

The default "pruned" mode finds the best label exactly while scoring far fewer trie nodes: the prompt is run once
(its KV cache kept), then trie nodes are run a few at a time against that cache. A label's log-likelihood is a sum
of log-probabilities (each <= 0), so a partial path already scoring below the best complete label can never win and
its subtree is skipped (branch and bound). Early steps dive depth-first along the most likely path to get a good
bound; later steps expand, best first, every node still above it. Labels cut off this way get ``-inf`` in the score
matrix; the winner's score and every completed label's score are exact.

The "batched" mode is the fallback for models whose forward rewrites the attention mask (prefix tuning) and the
reference the trie modes are tested against: our decoder's ``label_logprobs`` (core/decoding/scoring.py) runs the
prompt ONCE into its KV cache (prefix tuning's virtual tokens first) and all labels, right-padded, against copies
of it, with plain 2-D masks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch

from core.decoding import Runner, label_logprobs
from core.evaluation.prompts import answer_ids

ProgressFn = Callable[[float, str], None]


@dataclass
class LabelTrie:
    """The labels' token sequences merged by common prefix."""

    tokens: list[int] = field(default_factory=list)      # token of each node
    parents: list[int] = field(default_factory=list)     # parent node index, -1 for children of the prompt
    depths: list[int] = field(default_factory=list)
    paths: list[list[int]] = field(default_factory=list)  # node indices of each label, root to leaf

    @classmethod
    def build(cls, sequences: Sequence[Sequence[int]]) -> "LabelTrie":
        """Merge token sequences into a trie (identical prefixes share nodes)."""
        trie, children = cls(), {}
        for seq in sequences:
            node, path = -1, []
            for depth, tok in enumerate(seq):
                key = (node, tok)
                if key not in children:
                    children[key] = len(trie.tokens)
                    trie.tokens.append(int(tok))
                    trie.parents.append(node)
                    trie.depths.append(depth)
                node = children[key]
                path.append(node)
            trie.paths.append(path)
        return trie

    def ancestor_matrix(self) -> torch.Tensor:
        """(M, M) bool: [i, j] is True when node j is node i or one of its ancestors."""
        m = len(self.tokens)
        anc = torch.zeros(m, m, dtype=torch.bool)
        for i in range(m):
            j = i
            while j >= 0:
                anc[i, j] = True
                j = self.parents[j]
        return anc


class LabelScorer:
    """Log-likelihood of each label as the assistant's answer, for many prompts."""

    def __init__(self, model, tok, labels: Sequence[str], mode: str = "auto", prompts_per_batch: int = 16,
                 labels_per_batch: int = 64, normalize: str = "sum", nodes_per_step: int = 32, dive_width: int = 2):
        if mode not in ("auto", "pruned", "trie", "batched"):
            raise ValueError(f"mode must be auto, pruned, trie or batched, not {mode!r}")
        if normalize not in ("sum", "mean"):
            raise ValueError(f"normalize must be sum or mean, not {normalize!r}")
        self.model, self.tok, self.labels = model, tok, list(labels)
        self.mode = _auto_mode(model) if mode == "auto" else mode
        self.prompts_per_batch, self.labels_per_batch, self.normalize = prompts_per_batch, labels_per_batch, normalize
        self.nodes_per_step, self.dive_width = nodes_per_step, dive_width
        if self.normalize == "mean" and self.mode == "pruned":
            self.mode = "trie"  # length-normalised scores are not monotone along a path: no pruning bound
        self.nodes_scored = 0  # trie nodes run through the model (the work pruning saves)
        self._label_ids: dict[str, list[list[int]]] = {}

    def label_ids(self, prompt_messages: list[dict]) -> list[list[int]]:
        """Token ids of each label as an assistant turn (with its end token); cached per system prompt."""
        key = str([m for m in prompt_messages if m.get("role") == "system"])
        if key not in self._label_ids:
            probe = [m for m in prompt_messages if m.get("role") == "system"] + [{"role": "user", "content": "?"}]
            self._label_ids[key] = [answer_ids(self.tok, probe, lab) for lab in self.labels]
        return self._label_ids[key]

    @torch.no_grad()
    def score(self, prompts: Sequence[Sequence[int]], label_ids: Sequence[Sequence[int]],
              progress: Optional[ProgressFn] = None) -> torch.Tensor:
        """(N prompts, K labels) summed (or mean) log-probabilities of each label's tokens after each prompt."""
        out = []
        step = 1 if self.mode == "batched" else self.prompts_per_batch
        fn = {"pruned": self._score_pruned, "trie": self._score_trie, "batched": self._score_batched}[self.mode]
        for start in range(0, len(prompts), step):
            chunk = prompts[start:start + step]
            out.append(fn(chunk, label_ids))
            if progress:
                progress(min(1.0, (start + len(chunk)) / len(prompts)), "label scoring")
        scores = torch.cat(out) if out else torch.zeros(0, len(label_ids))
        if self.normalize == "mean":
            scores = scores / torch.tensor([len(s) for s in label_ids], dtype=scores.dtype)
        return scores

    def predict(self, prompts: Sequence[Sequence[int]], label_ids: Sequence[Sequence[int]],
                progress: Optional[ProgressFn] = None) -> tuple[list[str], torch.Tensor]:
        """The best-scoring label for each prompt, and the score matrix."""
        scores = self.score(prompts, label_ids, progress)
        return [self.labels[i] for i in scores.argmax(dim=1).tolist()], scores

    # ------------------------------------------------------------ trie mode
    def _score_trie(self, prompts: Sequence[Sequence[int]], label_ids: Sequence[Sequence[int]]) -> torch.Tensor:
        trie = LabelTrie.build(label_ids)
        anc = trie.ancestor_matrix()
        b, p_max, m = len(prompts), max(len(p) for p in prompts), len(trie.tokens)
        length = p_max + m
        device = next(self.model.parameters()).device
        dtype = next(self.model.parameters()).dtype
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        input_ids = torch.full((b, length), pad, dtype=torch.long)
        position_ids = torch.zeros((b, length), dtype=torch.long)
        allowed = torch.zeros((b, length, length), dtype=torch.bool)
        depths = torch.tensor(trie.depths, dtype=torch.long)
        causal = torch.ones(p_max, p_max, dtype=torch.bool).tril()
        for r, prompt in enumerate(prompts):
            n_pad = p_max - len(prompt)
            input_ids[r, n_pad:p_max] = torch.tensor(prompt, dtype=torch.long)
            input_ids[r, p_max:] = torch.tensor(trie.tokens, dtype=torch.long)
            position_ids[r, n_pad:p_max] = torch.arange(len(prompt))
            position_ids[r, p_max:] = len(prompt) + depths
            allowed[r, :p_max, :p_max] = causal
            allowed[r, :, :n_pad] = False                 # nobody sees the left padding …
            allowed[r, p_max:, n_pad:p_max] = True        # trie nodes see the whole prompt
            allowed[r, p_max:, p_max:] = anc              # … and their own ancestors
            idx = torch.arange(n_pad)
            allowed[r, idx, idx] = True                   # … padding rows see themselves (no all-masked row: NaN)
        mask = torch.zeros((b, 1, length, length), dtype=dtype)
        mask.masked_fill_(~allowed.unsqueeze(1), torch.finfo(dtype).min)
        # Positions whose logits predict a node: the last prompt token (for root children) and each non-leaf node.
        parents = torch.tensor(trie.parents, dtype=torch.long)
        pred_pos = torch.where(parents < 0, torch.full_like(parents, p_max - 1), p_max + parents)
        keep = torch.unique(pred_pos)
        self.nodes_scored += b * m
        out = self.model(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                         position_ids=position_ids.to(device), logits_to_keep=keep.to(device), use_cache=False)
        logp = torch.log_softmax(_at_least_fp32(out.logits), dim=-1).cpu()   # (B, len(keep), V)
        row_of = torch.searchsorted(keep, pred_pos)                 # which kept row predicts each node
        node_logp = logp[:, row_of, torch.tensor(trie.tokens)]     # (B, M)
        path = torch.zeros(len(trie.paths), m)
        for k, nodes in enumerate(trie.paths):
            path[k, nodes] = 1.0
        return node_logp.double() @ path.double().T                 # (B, K)

    # ------------------------------------------------------------ pruned mode (branch and bound over the trie)
    def _score_pruned(self, prompts: Sequence[Sequence[int]], label_ids: Sequence[Sequence[int]]) -> torch.Tensor:
        trie = LabelTrie.build(label_ids)
        search = _PrunedSearch(trie, len(prompts), len(label_ids))
        # 1. the prompts, left-padded, with their KV cache kept
        cache, root_logp, visible = self._pruned_prompt_pass(prompts)
        search.seed(root_logp)
        # 2. expand trie nodes against the cache until no unexpanded node can beat the best complete label
        kv_len = max(len(p) for p in prompts)
        while True:
            picks = search.pick(self.dive_width, self.nodes_per_step)
            q = max(len(x) for x in picks)
            if q == 0:
                break
            logp, cache = self._pruned_expand(prompts, picks, search, visible, cache, kv_len)
            kv_len += q
            self.nodes_scored += sum(len(x) for x in picks)
            search.absorb(picks, logp)
        return search.scores

    def _pruned_io(self) -> tuple[torch.device, torch.dtype, int, float]:
        """The model's device and dtype, the pad id and the additive mask's minus-infinity."""
        device = next(self.model.parameters()).device
        dtype = next(self.model.parameters()).dtype
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        return device, dtype, pad, torch.finfo(dtype).min

    def _pruned_prompt_pass(self, prompts: Sequence[Sequence[int]]):
        """Run the left-padded prompts once: their KV cache, the next-token log-probs and each row's visible
        prompt columns (what every trie node of that row may attend to)."""
        device, dtype, pad, neg = self._pruned_io()
        b, p_max = len(prompts), max(len(p) for p in prompts)
        ids = torch.full((b, p_max), pad, dtype=torch.long)
        pos = torch.zeros((b, p_max), dtype=torch.long)
        allowed = torch.zeros((b, p_max, p_max), dtype=torch.bool)
        causal = torch.ones(p_max, p_max, dtype=torch.bool).tril()
        for r, prompt in enumerate(prompts):
            n_pad = p_max - len(prompt)
            ids[r, n_pad:] = torch.tensor(prompt, dtype=torch.long)
            pos[r, n_pad:] = torch.arange(len(prompt))
            allowed[r] = causal
            allowed[r, :, :n_pad] = False
            allowed[r, torch.arange(n_pad), torch.arange(n_pad)] = True
        visible = [allowed[r, -1].clone() for r in range(b)]  # prompt columns every trie node may see
        out = self.model(input_ids=ids.to(device), position_ids=pos.to(device), use_cache=True, logits_to_keep=1,
                         attention_mask=_additive(allowed, dtype, neg).to(device))
        root_logp = torch.log_softmax(_at_least_fp32(out.logits[:, -1]), dim=-1).cpu()
        return _cache_of(out), root_logp, visible

    def _pruned_expand(self, prompts: Sequence[Sequence[int]], picks: list[list[int]], search: "_PrunedSearch",
                       visible: list[torch.Tensor], cache, kv_len: int):
        """Feed the picked nodes of each row against the cache (each sees its prompt and its ancestors); record
        their cache columns in ``search``. Returns the nodes' next-token log-probs and the grown cache."""
        device, dtype, pad, neg = self._pruned_io()
        trie, b, q, p_max = search.trie, len(prompts), max(len(x) for x in picks), max(len(p) for p in prompts)
        ids = torch.full((b, q), pad, dtype=torch.long)
        pos = torch.zeros((b, q), dtype=torch.long)
        allowed = torch.zeros((b, q, kv_len + q), dtype=torch.bool)
        for r, nodes in enumerate(picks):
            allowed[r, :, :p_max] = visible[r]
            for i, node in enumerate(nodes):
                ids[r, i] = trie.tokens[node]
                pos[r, i] = len(prompts[r]) + trie.depths[node]
                parent = trie.parents[node]
                while parent >= 0:  # ancestors were all expanded earlier: their keys are in the cache
                    allowed[r, i, search.column[r][parent]] = True
                    parent = trie.parents[parent]
                search.column[r][node] = kv_len + i
            allowed[r, torch.arange(q), kv_len + torch.arange(q)] = True  # itself (and padding rows)
        out = self.model(input_ids=ids.to(device), position_ids=pos.to(device), cache=cache,
                         use_cache=True, attention_mask=_additive(allowed, dtype, neg).to(device))
        return torch.log_softmax(_at_least_fp32(out.logits), dim=-1).cpu(), _cache_of(out)

    # ------------------------------------------------------------ batched mode (fallback and reference)
    def _score_batched(self, prompts: Sequence[Sequence[int]], label_ids: Sequence[Sequence[int]]) -> torch.Tensor:
        runner = Runner(self.model)
        # every label against one cached prompt; labels_per_batch bounds the label rows (and logits) run at once
        return torch.stack([label_logprobs(self.model, prompt, label_ids, runner, self.labels_per_batch).double()
                            for prompt in prompts])


class _PrunedSearch:
    """The branch-and-bound state of pruned label scoring, per prompt row: each known node's prefix log-prob, the
    cache column of each expanded node, the unexpanded non-leaf frontier, the best complete label (the bound)."""

    def __init__(self, trie: LabelTrie, rows: int, n_labels: int):
        self.trie = trie
        self.children: dict[int, list[int]] = {}
        for node, parent in enumerate(trie.parents):
            self.children.setdefault(parent, []).append(node)
        self.ends_at: dict[int, list[int]] = {}
        for k, path in enumerate(trie.paths):
            self.ends_at.setdefault(path[-1], []).append(k)
        self.scores = torch.full((rows, n_labels), float("-inf"), dtype=torch.float64)
        self.prefix = [dict() for _ in range(rows)]       # node -> log-prob of the path up to and including it
        self.column = [dict() for _ in range(rows)]       # expanded node -> its cache column
        self.frontier = [set() for _ in range(rows)]      # known, unexpanded, non-leaf nodes
        self.bound = [float("-inf")] * rows

    def learn(self, r: int, node: int, value: float) -> None:
        """Record a node's prefix log-prob: a label's score if the node ends one, else a frontier node."""
        self.prefix[r][node] = value
        if node in self.ends_at:
            for k in self.ends_at[node]:
                self.scores[r, k] = value
            self.bound[r] = max(self.bound[r], value)
        else:
            self.frontier[r].add(node)

    def seed(self, root_logp: torch.Tensor) -> None:
        """The root's children, from the prompts' next-token log-probs."""
        for r in range(len(self.prefix)):
            for node in self.children.get(-1, []):
                self.learn(r, node, float(root_logp[r, self.trie.tokens[node]]))

    def pick(self, dive_width: int, nodes_per_step: int) -> list[list[int]]:
        """Take from each row's frontier the nodes worth expanding next (those that can still beat the bound)."""
        picks = []
        for r in range(len(self.prefix)):
            prefix = self.prefix[r]
            live = [n for n in self.frontier[r] if prefix[n] > self.bound[r]]
            if self.bound[r] == float("-inf"):  # dive: the deepest, most likely nodes first, to find a bound
                live.sort(key=lambda n: (-self.trie.depths[n], -prefix[n]))
                live = live[:dive_width]
            else:
                live.sort(key=lambda n: -prefix[n])
                live = live[:nodes_per_step]
            self.frontier[r] -= set(live)
            picks.append(live)
        return picks

    def absorb(self, picks: list[list[int]], logp: torch.Tensor) -> None:
        """Learn the children of the expanded nodes from their next-token log-probs."""
        for r, nodes in enumerate(picks):
            for i, node in enumerate(nodes):
                for child in self.children.get(node, []):
                    self.learn(r, child, self.prefix[r][node] + float(logp[r, i, self.trie.tokens[child]]))


def _additive(allowed: torch.Tensor, dtype: torch.dtype, neg: float) -> torch.Tensor:
    """A (B, Q, K) bool "may attend" tensor as the (B, 1, Q, K) additive float mask transformers accepts as is."""
    mask = torch.zeros(allowed.shape, dtype=dtype)
    mask.masked_fill_(~allowed, neg)
    return mask.unsqueeze(1)


def _cache_of(out):
    """The KV cache of a forward's output (transformers 5 names it ``cache``; older releases past_key_values)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """Half-precision logits are upcast for the softmax; float64 (used by exactness tests) is kept."""
    return t if t.dtype == torch.float64 else t.float()


def _auto_mode(model) -> str:
    """'pruned' unless the model's forward rewrites attention masks (prefix tuning), then 'batched'."""
    try:
        from core.peft import get_peft_config

        cfg = get_peft_config(model)
        if cfg is not None and getattr(cfg, "method", None) == "prefix":
            return "batched"
    except Exception:  # noqa: BLE001 - no PEFT applied or the engine is absent: plain model
        pass
    return "pruned"


@torch.no_grad()
def sequence_logprobs(model, tok, prompt: Sequence[int], continuations: Sequence[Sequence[int]]) -> torch.Tensor:
    """Summed log-probability of each continuation after ``prompt``: one right-padded batch, 2-D attention mask."""
    device = next(model.parameters()).device
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    seqs = [list(prompt) + list(c) for c in continuations]
    length = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), length), pad, dtype=torch.long)
    att = torch.zeros((len(seqs), length), dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, :len(s)] = torch.tensor(s)
        att[r, :len(s)] = 1
    logits = _at_least_fp32(model(input_ids=ids.to(device), attention_mask=att.to(device), use_cache=False).logits).cpu()
    logp = torch.log_softmax(logits[:, :-1], dim=-1)
    out = []
    for r, c in enumerate(continuations):
        pos = torch.arange(len(prompt) - 1, len(prompt) - 1 + len(c))
        out.append(logp[r, pos, torch.tensor(list(c))].double().sum())
    return torch.stack(out)
