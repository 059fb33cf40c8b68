"""Independent re-implementations that tests check seqrec against."""

from collections import Counter


def independent_k_core(rows, k):
    """Plain-Python iterative k-core over (user, item) pairs."""
    while True:
        users, items = Counter(u for u, _ in rows), Counter(i for _, i in rows)
        kept = [(u, i) for u, i in rows if users[u] >= k and items[i] >= k]
        if len(kept) == len(rows):
            return rows
        rows = kept
