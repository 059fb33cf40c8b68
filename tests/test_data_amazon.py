"""Amazon Reviews 2023 through `seqrec data prepare amazon2023` and `prepare_amazon2023`: the hand-written fixtures
in the release's format (tests/fixtures/amazon2023, see its README), merged categories, title handling,
duplicates, ties, ratings, gzip, the benchmark split CSVs, the download from a local HTTP server (resumed, with
and without range support), malformed lines and bad input."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from http_mirror import serving
from reference import one_error_line, prepared_sequences, sequence_k_core
from seqrec.cli import app
from seqrec.data.prepare import load_dataset, prepare_amazon2023
from seqrec.errors import SeqrecError
from seqrec.store import open_store

FIXTURES = Path(__file__).parent / "fixtures" / "amazon2023"
runner = CliRunner()

# user and item ids in the fixture files (see their README)
A, B, C, D, E, F = (f"AG{c * 3}XXXQ7{c}ZK2M4{c}TQBMFQ{c}R000" for c in "ABCDEF")
V1, V2, V3, V4, V5, V6 = (f"B0{i}VG{i}0{i}4{i}" for i in range(1, 7))
B1, B2, B3, B4 = (f"B0{i}AB{i}7{i}2{i}" for i in range(1, 5))


def invoke(*args):
    return runner.invoke(app, [str(arg) for arg in args])


def prepare(*args, raw_dir=FIXTURES, category=("Video_Games", "All_Beauty"), k_core=2):
    flags = [part for name in category for part in ("--category", name)]
    return invoke("data", "prepare", "amazon2023", *flags, "--raw-dir", raw_dir, "--k-core", k_core, *args)


def nothing_left(home: Path):
    data = home / "data"
    left = [path.name for path in data.iterdir() if path.name != "raw"] if data.exists() else []
    assert left == [], left
    assert open_store().list_datasets() == []


def lines(path: Path) -> list[dict]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def reference(reviews: list[Path], metas: list[Path], k: int, placeholder: bool = False):
    """An independent, plain-Python reading of the files: per-user sequences in source ids."""
    titles = {}
    for path in metas:
        for record in lines(path):
            titles.setdefault(record["parent_asin"], " ".join(record["title"].split()))
    rows = [(r["user_id"], r["parent_asin"], r["timestamp"]) for path in reviews for r in lines(path)]
    by_user: dict[str, list] = {}
    for user, item, time in rows:
        by_user.setdefault(user, []).append((time, item))
    for user in by_user:
        ordered, seen = [], set()
        for _, item in sorted(by_user[user], key=lambda pair: pair[0]):  # sorted() is stable
            if item not in seen and (placeholder or titles.get(item)):
                seen.add(item)
                ordered.append(item)
        by_user[user] = ordered
    return sequence_k_core(by_user, k)


def test_cli_prepares_one_category():
    result = prepare(category=["Video_Games"])
    assert result.exit_code == 0, result.output
    assert "amazon2023-Video_Games (amazon2023): 5 users, 5 items, 21 interactions" in result.output
    row = open_store().get_dataset("amazon2023-Video_Games")
    assert row.stats["dropped"] == {"malformed": 0, "below_rating_threshold": 0, "duplicates": 1, "no_title": 3,
                                    "k_core": 1}
    assert row.options["k_core"] == 2 and row.options["categories"] == ["Video_Games"]
    listed = invoke("data", "list")
    assert listed.exit_code == 0 and "amazon2023-Video_Games" in listed.output
    shown = invoke("data", "show", "amazon2023-Video_Games", "--examples", 5)
    assert shown.exit_code == 0 and "Mario & Sonic at the Olympic Games" in shown.output


def test_merged_categories_match_an_independent_reading():
    result = prepare("--name", "mix")
    assert result.exit_code == 0, result.output
    got = prepared_sequences("mix")
    assert sorted(got.values()) == sorted(reference(
        [FIXTURES / "All_Beauty.jsonl", FIXTURES / "Video_Games.jsonl"],
        [FIXTURES / "meta_All_Beauty.jsonl.gz", FIXTURES / "meta_Video_Games.jsonl"], k=2).values())
    assert list(got.values()) == [  # users numbered by first appearance (All_Beauty is read first)
        [V1, V2, V3, V4, V5, B1, B2],  # A: the repeated V1 is gone, the first one kept
        [V3, V4, V1, V2, V5, B1, B3],  # B: V3 and V4 share a timestamp, file order kept
        [V4, V3, V2, V1, B2, B3],  # C: the same tie, the other way round in the file
        [V1, V2, V5, V3, B1],  # D: V6 has no title
        [V2, V1, V4, B2],  # E: B4 reviewed once, gone with the 2-core
        [V5, B3, B1],  # F
    ]
    row = open_store().get_dataset("mix")
    stats = row.stats
    assert (stats["users"], stats["items"], stats["interactions"]) == (6, 8, 32)
    assert stats["dropped"] == {"malformed": 0, "below_rating_threshold": 0, "duplicates": 1, "no_title": 3,
                                "k_core": 1}
    assert stats["avg_length"] == round(32 / 6, 3) and stats["sparsity"] == round(1 - 32 / 48, 6)
    assert row.options["tie_break"] == "stable: source order"
    items = load_dataset("mix").items
    assert list(items["item"]) == list(range(1, 9))  # dense ids, 0 is padding
    assert list(items["source_id"]) == [B1, B2, B3, V1, V3, V4, V2, V5]  # order of first appearance


def test_the_default_name_joins_the_sorted_categories_and_max_len_cuts_histories():
    row = prepare_amazon2023(["Video_Games", "All_Beauty"], raw_dir=FIXTURES, k_core=2, max_len=3)
    assert row.name == "amazon2023-All_Beauty+Video_Games"
    assert row.stats["interactions"] == 32
    assert all(len(history) <= 3 for history in load_dataset(row.name).test["history"])


def test_the_order_categories_are_typed_in_does_not_matter():
    first = prepare("--name", "one", category=["Video_Games", "All_Beauty"])
    second = prepare("--name", "two", category=["All_Beauty", "Video_Games", "All_Beauty"])
    assert first.exit_code == 0 and second.exit_code == 0, second.output
    store = open_store()
    assert store.get_dataset("one").fingerprint == store.get_dataset("two").fingerprint
    assert store.get_dataset("two").options["categories"] == ["All_Beauty", "Video_Games"]


def test_titles_are_cleaned_and_the_first_meta_record_wins():
    assert prepare("--name", "mix").exit_code == 0
    items = load_dataset("mix").items.set_index("source_id")
    assert items.loc[V2, "title"] == "Mario & Sonic at the Olympic Games"
    assert items.loc[B1, "title"] == "L'Oreal Paris Revitalift Serum"
    assert items.loc[V1, "title"] == "Zelda: Breath of the Wild"  # not the later "Duplicate meta record"
    assert items.loc[V1, "categories"] == "Video Games > Nintendo Switch > Games"
    assert items.loc[V1, "store"] == "Nintendo"
    assert items.loc[V1, "description"] == "Description of item 1."
    assert "features" in items.columns
    assert V6 not in items.index


def test_a_reviewed_item_without_a_meta_record_is_dropped_as_untitled(tmp_path):
    folder = tmp_path / "raw"
    shutil.copytree(FIXTURES, folder, ignore=shutil.ignore_patterns("*.md"))
    orphan = "B0ORPHAN00"
    with (folder / "Video_Games.jsonl").open("a") as handle:
        for user, time in ((A, 1600009999000), (B, 1600009999001)):
            handle.write(json.dumps({"user_id": user, "parent_asin": orphan, "asin": orphan, "rating": 5.0,
                                     "timestamp": time}) + "\n")
    assert prepare("--name", "orphan", raw_dir=folder).exit_code == 0
    row = open_store().get_dataset("orphan")
    assert orphan not in set(load_dataset("orphan").items["source_id"])
    assert row.stats["dropped"]["no_title"] == 3 + 2 and row.stats["interactions"] == 32


def test_missing_titles_get_a_counted_placeholder():
    result = prepare("--name", "ph", "--missing-titles", "placeholder")
    assert result.exit_code == 0, result.output
    assert "items given a placeholder title: 1" in result.output
    stats = open_store().get_dataset("ph").stats
    assert stats["placeholder_titles"] == 1 and stats["dropped"]["no_title"] == 0
    assert stats["interactions"] == 35 and stats["items"] == 9
    items = load_dataset("ph").items.set_index("source_id")
    assert items.loc[V6, "title"] == f"Item {V6}"
    assert sorted(prepared_sequences("ph").values()) == sorted(reference(
        [FIXTURES / "All_Beauty.jsonl", FIXTURES / "Video_Games.jsonl"],
        [FIXTURES / "meta_All_Beauty.jsonl.gz", FIXTURES / "meta_Video_Games.jsonl"], k=2, placeholder=True).values())


def test_a_rating_threshold_is_recorded_and_counted():
    row = prepare_amazon2023(["Video_Games"], raw_dir=FIXTURES, k_core=1, rating_threshold=4)
    below = sum(r["rating"] < 4 for r in lines(FIXTURES / "Video_Games.jsonl"))
    assert below > 0
    assert row.stats["dropped"]["below_rating_threshold"] == below and row.options["rating_threshold"] == 4


def test_gzipped_and_plain_files_give_the_same_data(tmp_path):
    plain, zipped = tmp_path / "plain", tmp_path / "zipped"
    plain.mkdir()
    zipped.mkdir()
    for path in FIXTURES.glob("*.jsonl*"):
        data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        stem = path.name.removesuffix(".gz")
        (plain / stem).write_bytes(data)
        (zipped / (stem + ".gz")).write_bytes(gzip.compress(data, mtime=0))
    assert prepare("--name", "plain", raw_dir=plain).exit_code == 0
    assert prepare("--name", "zipped", raw_dir=zipped).exit_code == 0
    one, two = load_dataset("plain"), load_dataset("zipped")
    for part in ("items", "train", "valid", "test"):
        assert getattr(one, part).equals(getattr(two, part)), part


def test_benchmark_csvs_replace_the_reviews(tmp_path):
    reviews = sorted(lines(FIXTURES / "Video_Games.jsonl"), key=lambda r: r["timestamp"])
    parts = {"train": reviews[:-6], "valid": reviews[-6:-3], "test": reviews[-3:]}
    for part, rows in parts.items():
        text = ["user_id,parent_asin,rating,timestamp,history"]
        text += [f"{r['user_id']},{r['parent_asin']},{r['rating']},{r['timestamp']}," for r in rows]
        (tmp_path / f"Video_Games.{part}.csv").write_text("\n".join(text) + "\n")
    shutil.copy(FIXTURES / "meta_Video_Games.jsonl", tmp_path)
    from_csv = prepare_amazon2023(["Video_Games"], raw_dir=tmp_path, benchmark_dir=tmp_path, name="csv", k_core=2)
    from_jsonl = prepare_amazon2023(["Video_Games"], raw_dir=FIXTURES, name="jsonl", k_core=2)
    assert from_csv.options["benchmark"] is True
    assert from_csv.stats["interactions"] == from_jsonl.stats["interactions"] == 21


# malformed lines ----------------------------------------------------------------------------------------------
@pytest.fixture
def broken_dir(tmp_path):
    """The fixtures with a truncated JSON line at line 3 and a non-object at line 7 of Video_Games.jsonl."""
    folder = tmp_path / "broken"
    shutil.copytree(FIXTURES, folder, ignore=shutil.ignore_patterns("*.md"))
    text = (folder / "Video_Games.jsonl").read_text().splitlines(keepends=True)
    text.insert(2, text[2][:40] + "\n")
    text.insert(6, "[1, 2, 3]\n")
    (folder / "Video_Games.jsonl").write_text("".join(text))
    return folder


def test_malformed_lines_are_counted_with_their_first_line_numbers(broken_dir):
    result = prepare("--name", "broken", raw_dir=broken_dir)
    assert result.exit_code == 0, result.output
    warning = " ".join(result.stderr.split())
    assert "2 malformed line(s) skipped, first at Video_Games.jsonl:3, Video_Games.jsonl:7" in warning
    meta = json.loads((Path(open_store().get_dataset("broken").path) / "meta.json").read_text())
    assert meta["stats"]["malformed_first_lines"] == ["Video_Games.jsonl:3", "Video_Games.jsonl:7"]
    assert meta["stats"]["dropped"]["malformed"] == 2
    assert meta["stats"]["interactions"] == 32  # the inserted lines were extra: the rest is read as before


def test_a_record_without_a_user_id_is_malformed(tmp_path, seqrec_home):
    folder = tmp_path / "raw"
    shutil.copytree(FIXTURES, folder, ignore=shutil.ignore_patterns("*.md"))
    with (folder / "Video_Games.jsonl").open("a") as handle:
        handle.write(json.dumps({"parent_asin": V1, "timestamp": 1, "rating": 5.0}) + "\n")
    count = len((folder / "Video_Games.jsonl").read_text().splitlines())
    row = prepare_amazon2023(["Video_Games"], raw_dir=folder, k_core=2)
    assert row.stats["malformed_first_lines"] == [f"Video_Games.jsonl:{count}"]


def test_strict_stops_at_the_first_malformed_line(broken_dir, seqrec_home):
    result = prepare("--name", "broken", "--strict", raw_dir=broken_dir)
    one_error_line(result, "Video_Games.jsonl, line 3", "malformed JSON")
    nothing_left(seqrec_home)


# bad input ----------------------------------------------------------------------------------------------------
def test_unknown_category_lists_the_valid_names(seqrec_home):
    result = prepare(category=["Video_Game"])
    line = one_error_line(result, "unknown Amazon 2023 category 'Video_Game'", "did you mean Video_Games")
    assert "All_Beauty" in line and "Tools_and_Home_Improvement" in line
    nothing_left(seqrec_home)


@pytest.mark.parametrize("kwargs, message", [
    ({"categories": []}, "give at least one --category"),
    ({"categories": ["Video_Games"], "raw_dir": FIXTURES, "benchmark_dir": FIXTURES},
     r"missing benchmark split file .*Video_Games.train.csv"),
])
def test_bad_python_arguments_are_one_clear_error(kwargs, message, seqrec_home):
    with pytest.raises(SeqrecError, match=message):
        prepare_amazon2023(**kwargs)
    nothing_left(seqrec_home)


# download -----------------------------------------------------------------------------------------------------
@pytest.fixture
def server(tmp_path):
    """The fixtures laid out as the McAuley Lab server has them, on 127.0.0.1."""
    root = tmp_path / "www"
    for folder in ("review_categories", "meta_categories"):
        (root / folder).mkdir(parents=True)
    for path in FIXTURES.glob("*.jsonl*"):
        data = path.read_bytes() if path.name.endswith(".gz") else gzip.compress(path.read_bytes(), mtime=0)
        folder = "meta_categories" if path.name.startswith("meta_") else "review_categories"
        (root / folder / (path.name.removesuffix(".gz") + ".gz")).write_bytes(data)
    with serving(root) as httpd:
        yield httpd


def test_download_from_a_base_url(server, seqrec_home):
    result = invoke("data", "prepare", "amazon2023", "--category", "Video_Games", "--category", "All_Beauty",
                    "--base-url", server.url, "--k-core", 2, "--name", "fetched")
    assert result.exit_code == 0, result.output
    assert sorted(path for path, _ in server.requests) == [
        "/meta_categories/meta_All_Beauty.jsonl.gz", "/meta_categories/meta_Video_Games.jsonl.gz",
        "/review_categories/All_Beauty.jsonl.gz", "/review_categories/Video_Games.jsonl.gz"]
    folder = seqrec_home / "data" / "raw" / "amazon2023"
    checksums = json.loads((folder / "checksums.json").read_text())
    for name, digest in checksums.items():
        served = next(server.root.glob(f"*/{name}"))
        assert (folder / name).read_bytes() == served.read_bytes()
        assert digest == hashlib.sha256(served.read_bytes()).hexdigest()
    assert len(checksums) == 4 and not list(folder.glob("*.part"))
    assert open_store().get_dataset("fetched").options["origin"] == "download"
    assert prepare("--name", "local").exit_code == 0
    assert prepared_sequences("fetched") == prepared_sequences("local")

    server.requests.clear()  # kept files are reused: a second prepare downloads nothing
    again = invoke("data", "prepare", "amazon2023", "--category", "Video_Games", "--category", "All_Beauty",
                   "--base-url", server.url, "--k-core", 2, "--name", "fetched")
    assert again.exit_code == 0 and server.requests == []


@pytest.mark.parametrize("ranges", [True, False], ids=["server-resumes", "server-ignores-ranges"])
def test_a_partial_download_is_resumed_with_a_range_request(server, seqrec_home, ranges):
    server.ranges = ranges
    served = server.root / "review_categories" / "Video_Games.jsonl.gz"
    folder = seqrec_home / "data" / "raw" / "amazon2023"
    folder.mkdir(parents=True)
    (folder / "Video_Games.jsonl.gz.part").write_bytes(served.read_bytes()[:100])
    result = invoke("data", "prepare", "amazon2023", "--category", "Video_Games", "--base-url", server.url,
                    "--k-core", 2)
    assert result.exit_code == 0, result.output
    assert ("/review_categories/Video_Games.jsonl.gz", "bytes=100-") in server.requests
    assert (folder / "Video_Games.jsonl.gz").read_bytes() == served.read_bytes()
    assert not (folder / "Video_Games.jsonl.gz.part").exists()
    assert open_store().get_dataset("amazon2023-Video_Games").stats["interactions"] == 21


def test_base_url_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("SEQREC_AMAZON_BASE_URL", server.url + "/")
    result = invoke("data", "prepare", "amazon2023", "--category", "Video_Games", "--k-core", 2)
    assert result.exit_code == 0, result.output
    assert len(server.requests) == 2


def test_a_file_missing_on_the_server_is_one_error(server, seqrec_home):
    result = invoke("data", "prepare", "amazon2023", "--category", "Books", "--base-url", server.url)
    one_error_line(result, "HTTP 404", "Books.jsonl.gz")
    nothing_left(seqrec_home)


def test_an_unreachable_server_points_to_raw_dir(seqrec_home):
    with pytest.raises(SeqrecError, match="cannot reach http://127.0.0.1:9/.*--raw-dir"):
        prepare_amazon2023(["Video_Games"], base_url="http://127.0.0.1:9")
    nothing_left(seqrec_home)


def test_a_kept_file_that_no_longer_matches_its_checksum_is_refused(server, seqrec_home):
    prepare_amazon2023(["Video_Games"], base_url=server.url, k_core=2)
    with (seqrec_home / "data" / "raw" / "amazon2023" / "Video_Games.jsonl.gz").open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(SeqrecError, match="does not match the checksum"):
        prepare_amazon2023(["Video_Games"], base_url=server.url, k_core=2, name="other")
