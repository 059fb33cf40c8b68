"""Preprocessing on small hand-made inputs (chronological order with a stable tie-break, duplicates, rating
threshold, dense ids, titles, k-core), the three splits, and the first paper's deletion noise (k uniform over
1..T, seeded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from seqrec.cli import app
from seqrec.data.noise import apply_deletion_noise, delete_one, parse_noise
from seqrec.data.prepare import load_dataset
from seqrec.data.preprocess import PrepareOptions, clean_title, k_core, preprocess
from seqrec.data.raw import Raw
from seqrec.data.splits import split
from seqrec.errors import SeqrecError
from seqrec.store import open_store

FIXTURES = Path(__file__).parent / "fixtures" / "amazon2023"


def raw(rows: list[tuple[str, str, int]], ratings: list[float] | None = None,
        titles: dict[str, str] | None = None) -> Raw:
    """Interactions (user, item, timestamp) in file order; every item titled "Title <item>" unless ``titles``
    says otherwise."""
    interactions = pd.DataFrame(rows, columns=["user", "item", "timestamp"]).assign(
        rating=np.nan if ratings is None else np.asarray(ratings, dtype="float32"))
    titles = titles or {item: f"Title {item}" for item in sorted({item for _, item, _ in rows})}
    return Raw(interactions, pd.DataFrame({"item": list(titles), "title": list(titles.values())}))


def by_user(cleaned) -> dict[int, list[str]]:
    source = dict(zip(cleaned.items["item"], cleaned.items["source_id"]))
    frame = cleaned.interactions
    return {int(user): [source[item] for item in group["item"]] for user, group in frame.groupby("user", sort=True)}


# order, ties, duplicates, ratings, ids and titles ---------------------------------------------------------------
def test_equal_timestamps_keep_file_order():
    rows = [("u", "c", 5), ("v", "z", 1), ("u", "a", 5), ("u", "first", 1), ("v", "y", 1), ("u", "b", 5),
            ("v", "x", 1), ("u", "last", 9)]
    cleaned = preprocess(raw(rows), PrepareOptions(k_core=1))
    assert by_user(cleaned) == {1: ["first", "c", "a", "b", "last"], 2: ["z", "y", "x"]}
    assert cleaned.interactions["timestamp"].tolist() == [1, 5, 5, 5, 9, 1, 1, 1]


def test_the_same_rows_in_another_file_order_give_another_tie_order():
    rows = [("u", "a", 5), ("u", "b", 5), ("u", "c", 5)]
    forward = by_user(preprocess(raw(rows), PrepareOptions(k_core=1)))
    backward = by_user(preprocess(raw(rows[::-1]), PrepareOptions(k_core=1)))
    assert forward[1] == ["a", "b", "c"] and backward[1] == ["c", "b", "a"]


def test_a_repeated_pair_keeps_its_first_interaction():
    rows = [("u", "a", 30), ("u", "b", 20), ("u", "a", 10), ("u", "c", 40), ("u", "b", 20)]
    cleaned = preprocess(raw(rows), PrepareOptions(k_core=1))
    assert by_user(cleaned) == {1: ["a", "b", "c"]}  # a at 10 (not 30), b once
    assert cleaned.interactions["timestamp"].tolist() == [10, 20, 40]
    assert cleaned.dropped["duplicates"] == 2


def test_a_rating_threshold_drops_the_lower_ratings_and_counts_them():
    rows = [("a", "x", 30), ("a", "y", 10), ("a", "z", 10), ("a", "w", 20), ("b", "y", 1)]
    cleaned = preprocess(raw(rows, ratings=[5, 4, 5, 1, 3]), PrepareOptions(k_core=1, rating_threshold=4))
    assert by_user(cleaned) == {1: ["y", "z", "x"]}
    assert cleaned.dropped["below_rating_threshold"] == 2


def test_dense_ids_follow_first_appearance_and_titles_are_cleaned():
    rows = [("u2", "i9", 1), ("u1", "i3", 2), ("u1", "i9", 3), ("u2", "i3", 4)]
    titles = {"i3": "  Tom &amp; Jerry\n(1940) ", "i9": "Caf&eacute;"}
    cleaned = preprocess(raw(rows, titles=titles), PrepareOptions(k_core=1))
    assert cleaned.items.to_dict("list") == {"item": [1, 2], "source_id": ["i9", "i3"],
                                             "title": ["Café", "Tom & Jerry (1940)"]}
    assert cleaned.interactions["user"].tolist() == [1, 1, 2, 2]  # u2 appears first in the file
    assert clean_title(None) == "" and clean_title("   ") == ""


def test_k_core_matches_a_plain_python_computation():
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 60, 800), rng.zipf(1.6, 800) % 90
    kept = k_core(users, items, 4)
    rows = list(zip(users.tolist(), items.tolist(), range(800)))
    while True:
        user_counts, item_counts = np.bincount([u for u, _, _ in rows]), np.bincount([i for _, i, _ in rows])
        survivors = [r for r in rows if user_counts[r[0]] >= 4 and item_counts[r[1]] >= 4]
        if len(survivors) == len(rows):
            break
        rows = survivors
    assert kept.tolist() == [position for _, _, position in rows] and 0 < len(kept) < 800


def test_k_core_repeats_until_nothing_changes():
    """User 4 goes first, which leaves item 3 with one interaction, which then leaves user 3 with one."""
    users, items = np.array([1, 1, 2, 2, 3, 3, 4]), np.array([1, 2, 1, 2, 1, 3, 3])
    assert k_core(users, items, 2).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("options, message", [
    ({"k_core": 0}, "--k-core must be at least 1"), ({"max_len": 0}, "--max-len must be at least 1"),
    ({"split": "random"}, "--split must be one of loo, user-ratio, global-time"),
    ({"split_ratio": "8:1"}, "--split-ratio must be three positive numbers"),
    ({"time_quantile": 1.5}, "--time-quantile must be between 0 and 1"),
    ({"missing_titles": "keep"}, "--missing-titles must be drop or placeholder"),
])
def test_option_errors(options, message):
    with pytest.raises(SeqrecError, match=message):
        PrepareOptions(**options)


# splits -------------------------------------------------------------------------------------------------------
def interactions(sequences: dict[int, list[tuple[int, int]]]) -> pd.DataFrame:
    """user -> [(item, timestamp), ...] in chronological order, as preprocessing leaves them."""
    rows = [(user, item, time) for user, pairs in sorted(sequences.items()) for item, time in pairs]
    return pd.DataFrame(rows, columns=["user", "item", "timestamp"]).assign(rating=np.nan)


def as_rows(frame: pd.DataFrame) -> list[tuple]:
    """Rows as plain ints; a training frame's per-interaction ratings are left out (checked on their own)."""
    frame = frame.drop(columns=["ratings"], errors="ignore")
    return [tuple(int(v) if not isinstance(v, list) else [int(x) for x in v] for v in row)
            for row in frame.itertuples(index=False, name=None)]


TINY = interactions({1: [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)],
                     2: [(6, 10), (7, 20), (8, 30)],
                     3: [(1, 3), (2, 40)]})


def test_leave_one_out():
    train, valid, test = split(TINY, PrepareOptions(max_len=3))
    assert as_rows(train) == [(1, [1, 2, 3]), (2, [6])]  # user 3 has two items: too short
    assert as_rows(valid) == [(1, [1, 2, 3], 4), (2, [6], 7)]
    assert as_rows(test) == [(1, [2, 3, 4], 5), (2, [6, 7], 8)]  # history cut to max_len


def test_user_ratio_8_1_1():
    twenty = interactions({1: [(item, item) for item in range(1, 21)], 2: [(item, item) for item in range(21, 26)]})
    train, valid, test = split(twenty, PrepareOptions(split="user-ratio", split_ratio="8:1:1", max_len=4))
    # 20 items: 16 / 2 / 2, each validation and test item one example; 5 items: at least one each, 3 train
    assert as_rows(train) == [(1, list(range(1, 17))), (2, [21, 22, 23])]
    assert as_rows(valid) == [(1, [13, 14, 15, 16], 17), (1, [14, 15, 16, 17], 18), (2, [21, 22, 23], 24)]
    assert as_rows(test) == [(1, [15, 16, 17, 18], 19), (1, [16, 17, 18, 19], 20), (2, [21, 22, 23, 24], 25)]
    same = split(twenty, PrepareOptions(split="user-ratio", split_ratio=(0.8, 0.1, 0.1), max_len=4))
    assert all(as_rows(a) == as_rows(b) for a, b in zip(same, (train, valid, test)))


def test_global_time_at_a_quantile():
    data = interactions({1: [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)],
                         2: [(6, 6), (7, 7), (8, 8), (9, 9), (10, 10)],
                         3: [(11, 11), (12, 12)]})
    # timestamps 1..12: the 0.8 quantile is 9.8
    train, valid, test = split(data, PrepareOptions(split="global-time", max_len=3))
    assert as_rows(train) == [(1, [1, 2, 3, 4]), (2, [6, 7, 8])]
    assert as_rows(valid) == [(1, [2, 3, 4], 5), (2, [6, 7, 8], 9)]
    assert as_rows(test) == [(2, [7, 8, 9], 10)]  # user 1 ends before the cut, user 3 starts after it
    # the 0.5 quantile is 6.5: user 2 has one item before it, enough for a test example but no training
    train, valid, test = split(data, PrepareOptions(split="global-time", time_quantile=0.5, max_len=3))
    assert as_rows(train) == [(1, [1, 2, 3, 4])]
    assert as_rows(valid) == [(1, [2, 3, 4], 5)]
    assert as_rows(test) == [(2, [6], 7)]


def rows_of_the_test_split(data) -> list[tuple[int, list[int], int]]:
    return [(int(user), [int(item) for item in history], int(target))
            for user, history, target in zip(data.test["user"], data.test["history"], data.test["target"])]


@pytest.mark.parametrize("args, recorded, test_is_split", [
    # two fifths of a user's items make test examples (up to three here); leave-one-out and 8:1:1 make one
    (["--split", "user-ratio", "--split-ratio", "2:1:2"], {"split": "user-ratio", "split_ratio": [0.4, 0.2, 0.4]},
     lambda data: data.test.groupby("user").size().max() == 3),
    # one user's last item falls after the cut at the 0.7 quantile of the fixture's timestamps
    (["--split", "global-time", "--time-quantile", "0.7"], {"split": "global-time", "time_quantile": 0.7},
     lambda data: rows_of_the_test_split(data) == [(4, [4, 7], 8)]),
])
def test_splits_through_the_cli_are_recorded(args, recorded, test_is_split):
    result = CliRunner().invoke(app, ["data", "prepare", "amazon2023", "--category", "Video_Games", "--category",
                                      "All_Beauty", "--raw-dir", str(FIXTURES), "--k-core", "2", "--name", "s",
                                      *args])
    assert result.exit_code == 0, result.output
    row = open_store().get_dataset("s")
    assert {key: row.options[key] for key in recorded} == recorded
    assert row.options["tie_break"] == "stable: source order"
    data = load_dataset("s")
    assert len(data.test) == row.stats["test_examples"] > 0
    assert all(target not in history for history, target in zip(data.test["history"], data.test["target"]))
    assert test_is_split(data)


# deletion noise -----------------------------------------------------------------------------------------------
def removed_position(original: list[int], noisy: list[int]) -> int:
    """1-based k of the removed item (items are distinct)."""
    return next(k for k, item in enumerate(original, 1) if item not in noisy)


def test_delete_one_draws_k_uniformly_from_1_to_t():
    T, draws = 6, 60_000
    rng = np.random.default_rng(2024)
    sequence = list(range(100, 100 + T))
    counts = np.zeros(T + 1, dtype=int)
    for _ in range(draws):
        noisy = delete_one(sequence, rng)
        assert len(noisy) == T - 1 and noisy == [item for item in sequence if item in noisy]  # order kept
        counts[removed_position(sequence, noisy)] += 1
    assert counts[0] == 0 and (counts[1:] > 0).all()  # every k in 1..T happens, nothing else
    expected = draws / T
    chi_square = float(((counts[1:] - expected) ** 2 / expected).sum())
    assert chi_square < 20.5  # chi-square, 5 degrees of freedom, p = 0.001


@pytest.mark.parametrize("length", [2, 3, 10, 50])
def test_delete_one_leaves_t_minus_one_and_is_seeded(length):
    sequence = list(range(1, length + 1))
    first = [delete_one(sequence, np.random.default_rng(7)) for _ in range(3)]
    assert first[0] == first[1] == first[2] and len(first[0]) == length - 1
    rng_a, rng_b = np.random.default_rng(11), np.random.default_rng(11)
    assert [delete_one(sequence, rng_a) for _ in range(20)] == [delete_one(sequence, rng_b) for _ in range(20)]
    assert sequence == list(range(1, length + 1))  # the input is not changed


def test_a_single_item_sequence_is_left_as_it_is():
    assert delete_one([5], np.random.default_rng(0)) == [5]


def examples(n: int, length: int = 6) -> pd.DataFrame:
    return pd.DataFrame({"user": np.arange(1, n + 1),
                         "history": [list(range(i, i + length)) for i in range(n)],
                         "target": np.arange(n) + 1000})


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.75])
def test_deletion_noise_touches_a_rate_share_of_the_examples(rate):
    clean = examples(20_000)
    noisy = apply_deletion_noise(clean, rate=rate, seed=3)
    shortened = np.array([len(h) for h in noisy["history"]]) == 5
    assert abs(shortened.mean() - rate) < 0.015
    assert all(len(h) == 6 for h in clean["history"])  # a copy: the input keeps its histories
    assert noisy["target"].equals(clean["target"]) and noisy["user"].equals(clean["user"])
    untouched = [h for h, short in zip(noisy["history"], shortened) if not short]
    assert all(h == list(range(h[0], h[0] + 6)) for h in untouched)


def test_deletion_noise_is_deterministic_per_seed():
    clean = examples(500)
    one = apply_deletion_noise(clean, rate=0.5, seed=9)
    assert one["history"].tolist() == apply_deletion_noise(clean, rate=0.5, seed=9)["history"].tolist()
    assert one["history"].tolist() != apply_deletion_noise(clean, rate=0.5, seed=10)["history"].tolist()
    every = apply_deletion_noise(clean, seed=9)
    assert all(len(h) == 5 for h in every["history"])


@pytest.mark.parametrize("spec, parsed", [(None, None), ("none", None), ("deletion", ("deletion", 1.0)),
                                          ("deletion:0.25", ("deletion", 0.25))])
def test_parse_noise(spec, parsed):
    assert parse_noise(spec) == parsed


@pytest.mark.parametrize("spec, message", [("insertion", "unknown noise 'insertion'"),
                                           ("deletion:0", r"must be in \(0, 1\]"),
                                           ("deletion:1.5", r"must be in \(0, 1\]"),
                                           ("deletion:lots", "must be a number")])
def test_bad_noise_specs(spec, message):
    with pytest.raises(SeqrecError, match=message):
        parse_noise(spec)
