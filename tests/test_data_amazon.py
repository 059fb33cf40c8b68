"""Amazon Reviews 2023: fixture files in the release's format, read locally, downloaded over local HTTP, and every
kind of bad input."""

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from seqrec.data import prepare as prepare_module
from seqrec.data.prepare import delete_dataset, load_dataset, prepare_amazon2023
from seqrec.errors import SeqrecError
from seqrec.settings import get_settings
from seqrec.store import open_store
from http_mirror import serving
from reference import independent_k_core

FIXTURES = Path(__file__).parent / "fixtures" / "amazon2023"
CATEGORIES = ["Video_Games", "Arts_Crafts_and_Sewing"]


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def expected_interactions(categories, k):
    """An independent, plain-Python version of the pipeline: chronological (stable), first of each pair, titled
    items only, then k-core."""
    reviews = [r for c in sorted(categories) for r in records(FIXTURES / f"{c}.jsonl")]
    titles = {m["parent_asin"]: m["title"] for c in categories for m in records(FIXTURES / f"meta_{c}.jsonl")}
    reviews = sorted(reviews, key=lambda r: (r["user_id"], r["timestamp"]))
    seen, rows = set(), []
    for r in reviews:
        if (r["user_id"], r["parent_asin"]) not in seen and titles.get(r["parent_asin"], "").strip():
            rows.append((r["user_id"], r["parent_asin"]))
        seen.add((r["user_id"], r["parent_asin"]))
    return independent_k_core(rows, k)


def test_merged_categories_from_a_raw_dir():
    row = prepare_amazon2023(CATEGORIES, raw_dir=FIXTURES, k_core=2, max_len=3)
    expected = expected_interactions(CATEGORIES, 2)
    assert row.name == "amazon2023-Arts_Crafts_and_Sewing+Video_Games"
    assert row.stats["interactions"] == len(expected)
    assert row.stats["users"] == len({u for u, _ in expected}) and row.stats["items"] == len({i for _, i in expected})
    assert row.stats["dropped"]["duplicates"] >= 1 and row.stats["dropped"]["no_title"] >= 2
    assert row.options["categories"] == sorted(CATEGORIES) and row.options["tie_break"] == "stable: source order"
    data = load_dataset(row.name)
    assert sorted(data.items["item"]) == list(range(1, len(data.items) + 1))
    titles = dict(zip(data.items["source_id"], data.items["title"]))
    assert titles["B07SZJZV88"] == "Mario & Sonic at the Olympic Games"  # entities and whitespace cleaned
    assert "B07DJWBYKP" not in titles and "B00ORPHAN1" not in titles  # empty title, no meta record
    assert set(data.items["source_id"]) & {"B0BXL5SXDF", "B07X3Y5ZXP", "B08KHTSF9V"}  # both categories merged
    assert set(data.items.columns) >= {"categories", "store", "features", "description"}
    assert data.items["categories"].iloc[0].count(" > ") >= 1
    assert all(len(history) <= 3 for history in data.test["history"])


def test_missing_titles_can_get_a_placeholder(tmp_path):
    row = prepare_amazon2023(["Video_Games"], raw_dir=FIXTURES, k_core=2, missing_titles="placeholder")
    data = load_dataset(row.name)
    titles = dict(zip(data.items["source_id"], data.items["title"]))
    assert titles["B07DJWBYKP"] == "Item B07DJWBYKP"
    assert row.stats["placeholder_titles"] == 1 and row.stats["dropped"]["no_title"] == 0


def test_rating_threshold_is_recorded_and_counted():
    row = prepare_amazon2023(["Video_Games"], raw_dir=FIXTURES, k_core=1, rating_threshold=4)
    below = sum(r["rating"] < 4 for r in records(FIXTURES / "Video_Games.jsonl"))
    assert row.stats["dropped"]["below_rating_threshold"] == below and row.options["rating_threshold"] == 4


def test_gzipped_files_give_the_same_dataset(tmp_path):
    for path in FIXTURES.glob("*Video_Games.jsonl"):
        with gzip.open(tmp_path / (path.name + ".gz"), "wb") as out:
            out.write(path.read_bytes())
    plain = prepare_amazon2023(["Video_Games"], raw_dir=FIXTURES, name="plain", k_core=2)
    zipped = prepare_amazon2023(["Video_Games"], raw_dir=tmp_path, name="zipped", k_core=2)
    assert load_dataset("plain").test.equals(load_dataset("zipped").test)
    assert plain.stats == zipped.stats


def test_benchmark_csvs_replace_the_reviews(tmp_path):
    reviews = sorted(records(FIXTURES / "Video_Games.jsonl"), key=lambda r: r["timestamp"])
    parts = {"train": reviews[:-10], "valid": reviews[-10:-5], "test": reviews[-5:]}
    for part, rows in parts.items():
        lines = ["user_id,parent_asin,rating,timestamp,history"]
        lines += [f"{r['user_id']},{r['parent_asin']},{r['rating']},{r['timestamp']}," for r in rows]
        (tmp_path / f"Video_Games.{part}.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "meta_Video_Games.jsonl").write_bytes((FIXTURES / "meta_Video_Games.jsonl").read_bytes())
    from_csv = prepare_amazon2023(["Video_Games"], raw_dir=tmp_path, benchmark_dir=tmp_path, name="csv", k_core=2)
    from_jsonl = prepare_amazon2023(["Video_Games"], raw_dir=FIXTURES, name="jsonl", k_core=2)
    assert from_csv.options["benchmark"] is True
    assert from_csv.stats["interactions"] == from_jsonl.stats["interactions"]


# download over local HTTP ---------------------------------------------------------------------------------------
@pytest.fixture
def server(tmp_path):
    """A local mirror of the release layout (review_categories/, meta_categories/) with gzipped fixtures."""
    root = tmp_path / "mirror"
    for folder, prefix in (("review_categories", ""), ("meta_categories", "meta_")):
        (root / folder).mkdir(parents=True)
        for category in CATEGORIES:
            source = FIXTURES / f"{prefix}{category}.jsonl"
            (root / folder / f"{prefix}{category}.jsonl.gz").write_bytes(gzip.compress(source.read_bytes(), mtime=0))
    with serving(root) as httpd:
        yield httpd


def download_dir():
    return get_settings().data_dir / "raw" / "amazon2023"


@pytest.mark.parametrize("ranges", [True, False])
def test_download_resumes_and_records_checksums(server, ranges):
    server.ranges = ranges
    served = server.root / "review_categories" / "Video_Games.jsonl.gz"
    download_dir().mkdir(parents=True)
    half = served.read_bytes()[: served.stat().st_size // 2]
    (download_dir() / "Video_Games.jsonl.gz.part").write_bytes(half)
    row = prepare_amazon2023(["Video_Games"], base_url=server.url, k_core=2)
    assert ("/review_categories/Video_Games.jsonl.gz", f"bytes={len(half)}-") in server.requests
    assert (download_dir() / "Video_Games.jsonl.gz").read_bytes() == served.read_bytes()
    assert not list(download_dir().glob("*.part"))
    checksums = json.loads((download_dir() / "checksums.json").read_text())
    assert checksums["Video_Games.jsonl.gz"] == hashlib.sha256(served.read_bytes()).hexdigest()
    local = prepare_amazon2023(["Video_Games"], raw_dir=FIXTURES, k_core=2, name="local")
    assert row.stats == local.stats


def test_download_base_url_from_the_environment_and_reuse(server, monkeypatch):
    monkeypatch.setenv("SEQREC_AMAZON_BASE_URL", server.url)
    first = prepare_amazon2023(["Video_Games"], k_core=2)
    count = len(server.requests)
    again = prepare_amazon2023(["Video_Games"], k_core=2)
    assert again.id == first.id and len(server.requests) == count  # kept files, same dataset row


def test_download_errors_are_clear(server):
    with pytest.raises(SeqrecError, match="HTTP 404"):
        prepare_amazon2023(["Toys_and_Games"], base_url=server.url)
    with pytest.raises(SeqrecError, match="cannot reach http://127.0.0.1:9/.*--raw-dir"):
        prepare_amazon2023(["Toys_and_Games"], base_url="http://127.0.0.1:9")
    prepare_amazon2023(["Video_Games"], base_url=server.url, k_core=2)
    with (download_dir() / "Video_Games.jsonl.gz").open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(SeqrecError, match="does not match the checksum"):
        prepare_amazon2023(["Video_Games"], base_url=server.url, k_core=2, name="other")


# bad input ------------------------------------------------------------------------------------------------------
@pytest.fixture
def broken_dir(tmp_path):
    """The Video_Games fixture with a malformed JSON line (line 3) and a record without user_id (line 6)."""
    lines = (FIXTURES / "Video_Games.jsonl").read_text().splitlines()
    lines.insert(2, '{"user_id": "A1", "parent_asin": ')
    lines.insert(5, json.dumps({"parent_asin": "B07GBZ4Q68", "timestamp": 1, "rating": 5.0}))
    (tmp_path / "Video_Games.jsonl").write_text("\n".join(lines) + "\n")
    shutil.copy(FIXTURES / "meta_Video_Games.jsonl", tmp_path)
    return tmp_path


def test_malformed_lines_are_counted_with_their_line_numbers(broken_dir):
    row = prepare_amazon2023(["Video_Games"], raw_dir=broken_dir, k_core=2)
    assert row.stats["dropped"]["malformed"] == 2
    assert row.stats["malformed_first_lines"] == ["Video_Games.jsonl:3", "Video_Games.jsonl:6"]


def test_strict_stops_at_the_first_malformed_line(broken_dir):
    with pytest.raises(SeqrecError, match=r"Video_Games.jsonl, line 3: malformed JSON"):
        prepare_amazon2023(["Video_Games"], raw_dir=broken_dir, k_core=2, strict=True)
    assert_nothing_left()


def assert_nothing_left():
    data_dir = get_settings().data_dir
    assert not [p for p in data_dir.iterdir() if p.name != "raw"] if data_dir.exists() else True
    assert open_store().list_datasets() == []


@pytest.mark.parametrize("kwargs, message", [
    ({"categories": ["Video_Game"]}, r"unknown Amazon 2023 category 'Video_Game' \(did you mean Video_Games\?\); "
                                     r"valid names: All_Beauty, .*Video_Games"),
    ({"categories": []}, "give at least one --category"),
    ({"categories": ["Books"], "raw_dir": FIXTURES}, r"missing review file .*Books.jsonl \(or Books.jsonl.gz\)"),
    ({"categories": ["Video_Games"], "raw_dir": Path("/nonexistent")}, "missing folder: /nonexistent"),
    ({"categories": ["Video_Games"], "raw_dir": FIXTURES, "k_core": 50}, "nothing is left after 50-core"),
    ({"categories": ["Video_Games"], "raw_dir": FIXTURES, "split": "random"}, "--split must be one of"),
    ({"categories": ["Video_Games"], "raw_dir": FIXTURES, "name": "../escape"}, "dataset name '../escape' must"),
    ({"categories": ["Video_Games"], "raw_dir": FIXTURES, "benchmark_dir": FIXTURES},
     r"missing benchmark split file .*Video_Games.train.csv"),
])
def test_bad_input_is_one_clear_error(kwargs, message):
    with pytest.raises(SeqrecError, match=message):
        prepare_amazon2023(**kwargs)
    assert_nothing_left()


def test_missing_meta_file(tmp_path):
    shutil.copy(FIXTURES / "Video_Games.jsonl", tmp_path)
    with pytest.raises(SeqrecError, match=r"missing meta file .*meta_Video_Games.jsonl"):
        prepare_amazon2023(["Video_Games"], raw_dir=tmp_path)


def test_unreadable_gzip_is_reported(tmp_path):
    (tmp_path / "Video_Games.jsonl.gz").write_bytes(b"not gzip at all")
    shutil.copy(FIXTURES / "meta_Video_Games.jsonl", tmp_path)
    with pytest.raises(SeqrecError, match=r"Video_Games.jsonl.gz: cannot be read as gzip"):
        prepare_amazon2023(["Video_Games"], raw_dir=tmp_path)
    assert_nothing_left()


def test_same_inputs_reuse_the_row_and_give_identical_files():
    first = prepare_amazon2023(["Video_Games"], raw_dir=FIXTURES, k_core=2)
    assert prepare_amazon2023(["Video_Games"], raw_dir=FIXTURES, k_core=2).id == first.id
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in Path(first.path).iterdir()}
    delete_dataset(first.name)
    again = prepare_amazon2023(["Video_Games"], raw_dir=FIXTURES, k_core=2)
    assert again.fingerprint == first.fingerprint
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in Path(again.path).iterdir()} == digests


def test_a_name_taken_by_other_inputs_is_refused():
    prepare_amazon2023(["Video_Games"], raw_dir=FIXTURES, k_core=2, name="games")
    with pytest.raises(SeqrecError, match="'games' is already taken by other inputs or options"):
        prepare_amazon2023(["Video_Games"], raw_dir=FIXTURES, k_core=3, name="games")
    with pytest.raises(SeqrecError, match="'games' is already taken"):
        prepare_amazon2023(CATEGORIES, raw_dir=FIXTURES, k_core=2, name="games")


def test_a_failed_write_leaves_nothing_half_written(monkeypatch):
    def fail_midway(data, folder):
        (folder / "items.parquet").write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(prepare_module, "write_prepared", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        prepare_amazon2023(["Video_Games"], raw_dir=FIXTURES, k_core=2)
    assert_nothing_left()
