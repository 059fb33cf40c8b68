"""Independent re-implementations that tests check seqrec against, and readers of what seqrec wrote."""

from collections import Counter


def independent_k_core(rows, k):
    """Plain-Python iterative k-core over (user, item) pairs."""
    while True:
        users, items = Counter(u for u, _ in rows), Counter(i for _, i in rows)
        kept = [(u, i) for u, i in rows if users[u] >= k and items[i] >= k]
        if len(kept) == len(rows):
            return rows
        rows = kept


def sequence_k_core(sequences: dict[str, list[str]], k: int) -> dict[str, list[str]]:
    """Plain-Python iterative k-core over per-user item sequences (order kept)."""
    while True:
        counts = Counter(item for items in sequences.values() for item in items)
        kept = {user: [item for item in items if counts[item] >= k] for user, items in sequences.items()}
        kept = {user: items for user, items in kept.items() if len(items) >= k}
        if kept == sequences:
            return sequences
        sequences = kept


def prepared_sequences(name: str) -> dict[int, list[str]]:
    """A prepared dataset's full chronological sequence per user in source ids (train items, then the
    validation and test targets of a leave-one-out split)."""
    from seqrec.data.prepare import load_dataset

    data = load_dataset(name)
    source = dict(zip(data.items["item"], data.items["source_id"]))
    users = {int(user): [int(item) for item in items] for user, items in zip(data.train["user"], data.train["items"])}
    for part in (data.valid, data.test):
        for user, target in zip(part["user"], part["target"]):
            users[int(user)].append(int(target))
    return {user: [source[item] for item in items] for user, items in users.items()}


def one_error_line(result, *fragments) -> str:
    """A CLI result with exit 2, exactly one `error:` line on stderr holding the fragments, and no traceback."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
