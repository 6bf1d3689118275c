"""Near-duplicate detection: MinHash signatures over character n-grams, with LSH banding (numpy only).

Everything is vectorised over the whole corpus: the n-gram hashes of all texts are computed in one pass,
signatures in chunks with ``np.minimum.reduceat``, and candidate pairs come from sorting band keys. Within a
bucket every member is compared with the bucket's first member only, so a bucket of many copies costs O(n).

Each text is cut to its first ``MAX_MINHASH_CHARS`` characters before hashing: memory then grows with the
number of rows, not with the longest one (a chunk holds at most num_perm x MAX_MINHASH_CHARS 32-bit values,
16 MB at 64 permutations). Two texts that agree on their first 64,000 characters are near-duplicates for
this check whatever follows; rows that long are rare in fine-tuning data and are flagged by the length check.
"""
from __future__ import annotations

import numpy as np

_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_PRIME = np.uint64(1099511628211)
MAX_MINHASH_CHARS = 64_000


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads the bits of a polynomial hash."""
    x = x ^ (x >> np.uint64(30))
    x = x * _MIX1
    x = x ^ (x >> np.uint64(27))
    x = x * _MIX2
    return x ^ (x >> np.uint64(31))


def shingle_hashes(texts: list[str], k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of every k-character window of every text (cut to MAX_MINHASH_CHARS): (hashes, offsets)."""
    texts = [t[:MAX_MINHASH_CHARS] for t in texts]
    padded = [t if len(t) >= k else t + "\x01" * (k - len(t)) for t in texts]
    lengths = np.fromiter((len(t) for t in padded), dtype=np.int64, count=len(padded))
    codes = np.frombuffer("".join(padded).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    with np.errstate(over="ignore"):
        rolling = np.zeros(max(0, len(codes) - k + 1), dtype=np.uint64)
        for j in range(k):  # polynomial hash of each window, wrapping mod 2**64
            rolling = rolling * _PRIME + codes[j: len(codes) - k + 1 + j]
        rolling = _mix(rolling)
    counts = lengths - k + 1
    text_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    # window positions that stay inside one text
    index = np.arange(int(counts.sum()), dtype=np.int64) + np.repeat(text_starts - offsets, counts)
    return rolling[index], offsets


def signatures(texts: list[str], num_perm: int = 64, k: int = 5, seed: int = 1, chunk: int = 20_000) -> np.ndarray:
    """MinHash signatures, shape (len(texts), num_perm): min over n-grams of (a*x + b) mod 2**32 per permutation.

    32-bit arithmetic (odd ``a`` makes each map a permutation) halves the memory traffic of the 64-bit version;
    small chunks keep the (num_perm x chunk) block in cache.
    """
    if not texts:
        return np.zeros((0, num_perm), dtype=np.uint32)
    hashes, offsets = shingle_hashes(texts, k)
    x = (hashes >> np.uint64(32)).astype(np.uint32)
    rng = np.random.default_rng(seed)
    a = (rng.integers(0, 2**31, size=num_perm, dtype=np.uint64) * 2 + 1).astype(np.uint32)
    b = rng.integers(0, 2**32, size=num_perm, dtype=np.uint64).astype(np.uint32)
    out = np.empty((len(texts), num_perm), dtype=np.uint32)
    ends = np.append(offsets[1:], len(x))
    doc = 0
    while doc < len(texts):  # chunks of whole documents, ~chunk n-grams each
        last = max(int(np.searchsorted(ends, offsets[doc] + chunk, side="right")), doc + 1)
        lo, hi = int(offsets[doc]), int(ends[last - 1])
        block = np.multiply(a[:, None], x[None, lo:hi])
        block += b[:, None]
        out[doc:last] = np.minimum.reduceat(block, offsets[doc:last] - lo, axis=1).T
        doc = last
    return out


def near_duplicate_groups(texts: list[str], threshold: float = 0.8, num_perm: int = 64, bands: int = 16,
                          k: int = 5, also: list[str] | None = None) -> list[list[int]]:
    """Groups (sorted index lists, size >= 2) of texts whose estimated n-gram Jaccard similarity >= threshold.

    With ``also`` (a second text per item, e.g. the answer), a pair must be similar in both.
    """
    n = len(texts)
    if n < 2:
        return []
    sig = signatures(texts, num_perm=num_perm, k=k)
    sig_also = signatures(also, num_perm=num_perm, k=k) if also is not None else None
    rows = num_perm // bands
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    weights = np.random.default_rng(7).integers(1, 2**63, size=rows, dtype=np.uint64)
    for band in range(bands):
        with np.errstate(over="ignore"):
            keys = (sig[:, band * rows:(band + 1) * rows] * weights).sum(axis=1)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        new_group = np.concatenate([[True], sorted_keys[1:] != sorted_keys[:-1]])
        group_first = order[np.maximum.accumulate(np.where(new_group, np.arange(n), 0))]
        members = ~new_group
        if not members.any():
            continue
        reps, mems = group_first[members], order[members]
        similar = (sig[reps] == sig[mems]).mean(axis=1) >= threshold
        if sig_also is not None:
            similar &= (sig_also[reps] == sig_also[mems]).mean(axis=1) >= threshold
        for r, m in zip(reps[similar].tolist(), mems[similar].tolist()):
            ra, rb = find(r), find(m)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]
