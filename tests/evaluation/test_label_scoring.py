"""Label scoring: the trie forward equals brute-force per-label loss and picks the planted label."""
import pytest
import torch

from core.evaluation.labels import LabelScorer, LabelTrie
from core.evaluation.prompts import answer_ids, prompt_ids
from core.training.loss import causal_lm_loss

LABELS = ["card_arrival", "card_linking", "exchange_rate", "pin", "pin_blocked", "银行卡"]
QUESTIONS = ["where is my card?", "hi", "what is the exchange rate for euros today please", "卡丢了"]


def _brute_force(model, tok, messages, label):
    """Summed log-probability of the label turn after the prompt: one unpadded sequence per label."""
    p, a = prompt_ids(tok, messages), answer_ids(tok, messages, label)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([p + a])).logits[0]
    logp = torch.log_softmax(logits.double(), dim=-1)
    return float(sum(logp[len(p) - 1 + i, t] for i, t in enumerate(a)))


def _loss_based(model, tok, messages, label):
    """The same quantity from the trainer's loss function: minus the summed cross-entropy of the label tokens."""
    p, a = prompt_ids(tok, messages), answer_ids(tok, messages, label)
    ids = torch.tensor([p + a])
    labels = torch.tensor([[-100] * len(p) + a])
    with torch.no_grad():
        loss_sum, n = causal_lm_loss(model, {"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids)})
    assert n == len(a)
    return -float(loss_sum)


def test_trie_shares_prefixes():
    trie = LabelTrie.build([[1, 2, 3], [1, 2, 4], [5]])
    assert trie.tokens == [1, 2, 3, 4, 5] and trie.parents == [-1, 0, 1, 1, -1] and trie.depths == [0, 1, 2, 2, 0]
    assert trie.paths == [[0, 1, 2], [0, 1, 3], [4]]
    anc = trie.ancestor_matrix()
    assert anc[3].tolist() == [True, True, False, True, False]


@pytest.mark.parametrize("mode", ["trie", "batched", "pruned"])
def test_scores_equal_brute_force(tiny, mode):
    """In float64 (so float32 rounding cannot hide a masking or position bug) the scores agree within 1e-5."""
    model, tok = tiny
    model.double()
    msgs = [[{"role": "system", "content": "Classify."}, {"role": "user", "content": q}] for q in QUESTIONS]
    scorer = LabelScorer(model, tok, LABELS, mode=mode, prompts_per_batch=3)
    scores = scorer.score([prompt_ids(tok, m) for m in msgs], scorer.label_ids(msgs[0]))
    brute = torch.tensor([[_brute_force(model, tok, m, lab) for lab in LABELS] for m in msgs], dtype=torch.float64)
    assert scores.shape == (len(QUESTIONS), len(LABELS))
    if mode == "pruned":  # labels pruned away are -inf; every label it did complete is exact
        done = torch.isfinite(scores)
        assert done.any(dim=1).all()
        scores = torch.where(done, scores, brute)
    assert torch.allclose(scores, brute, atol=1e-5, rtol=0)
    predicted, _ = scorer.predict([prompt_ids(tok, m) for m in msgs], scorer.label_ids(msgs[0]))
    assert predicted == [LABELS[i] for i in brute.argmax(dim=1).tolist()]


def test_planted_label_wins(tiny):
    """Bias the LM head towards the tokens of one label: label scoring must pick it for every prompt."""
    model, tok = tiny
    msgs = [[{"role": "user", "content": q}] for q in QUESTIONS]
    planted = "exchange_rate"  # no other label is spelled only with its characters
    ids = answer_ids(tok, msgs[0], planted)
    head = model.get_output_embeddings()
    with torch.no_grad():
        bias = torch.zeros(head.weight.shape[0])
        bias[list(set(ids))] = 30.0
        head.bias = torch.nn.Parameter(bias)
    scorer = LabelScorer(model, tok, LABELS)
    predicted, scores = scorer.predict([prompt_ids(tok, m) for m in msgs], scorer.label_ids(msgs[0]))
    assert predicted == [planted] * len(QUESTIONS)


def test_mean_normalisation_divides_by_label_length(tiny):
    model, tok = tiny
    msgs = [[{"role": "user", "content": "x"}]]
    s = LabelScorer(model, tok, LABELS, mode="trie", normalize="sum")
    m = LabelScorer(model, tok, LABELS, normalize="mean")
    lab = s.label_ids(msgs[0])
    p = [prompt_ids(tok, msgs[0])]
    lengths = torch.tensor([len(x) for x in lab], dtype=torch.float64)
    assert torch.allclose(m.score(p, lab), s.score(p, lab) / lengths)


def test_float32_scores_match_training_loss(tiny):
    """In the models' real precision the trie agrees with causal_lm_loss to float32 rounding (relative 1e-6)."""
    model, tok = tiny
    msgs = [[{"role": "user", "content": q}] for q in QUESTIONS[:2]]
    scorer = LabelScorer(model, tok, LABELS, mode="trie")
    scores = scorer.score([prompt_ids(tok, m) for m in msgs], scorer.label_ids(msgs[0]))
    ref = torch.tensor([[_loss_based(model, tok, m, lab) for lab in LABELS] for m in msgs], dtype=torch.float64)
    assert torch.allclose(scores, ref, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("kind", ["tiny-llama", "tiny-gpt2"])
@pytest.mark.parametrize("nodes_per_step,dive_width", [(32, 2), (1, 1), (3, 5)])
def test_pruned_search_finds_the_exact_best_label(kind, nodes_per_step, dive_width):
    """Many labels sharing prefixes, several prompts of different lengths in one batch: same winner and score."""
    from core.models import tiny_model

    model, tok = tiny_model(kind)
    labels = [f"{a}_{b}" for a in ("card", "cash", "pin", "top_up") for b in ("fee", "failed", "pending", "limit")]
    msgs = [[{"role": "user", "content": q}] for q in QUESTIONS + ["x" * 40]]
    full = LabelScorer(model, tok, labels, mode="trie", prompts_per_batch=5)
    pruned = LabelScorer(model, tok, labels, mode="pruned", prompts_per_batch=3, nodes_per_step=nodes_per_step,
                         dive_width=dive_width)
    ids = [prompt_ids(tok, m) for m in msgs]
    lab = full.label_ids(msgs[0])
    s_full, s_pruned = full.score(ids, lab), pruned.score(ids, lab)
    assert s_pruned.argmax(dim=1).tolist() == s_full.argmax(dim=1).tolist()
    assert torch.allclose(s_pruned.max(dim=1).values, s_full.max(dim=1).values, atol=1e-4)
    assert pruned.nodes_scored <= full.nodes_scored
