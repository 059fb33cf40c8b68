"""`seqrec data prepare` as a whole: reuse and byte-identical output, a name taken by other inputs, and every bad
input (exit 2, one `error:` line, no traceback, nothing left in the store)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reference import one_error_line
from seqrec.cli import app
from seqrec.data import prepare
from seqrec.data.prepare import prepare_source
from seqrec.errors import SeqrecError
from seqrec.store import open_store

FIXTURES = Path(__file__).parent / "fixtures" / "amazon2023"
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(arg) for arg in args])


def prepare_amazon(*args, raw_dir=FIXTURES, k_core=2):
    return invoke("data", "prepare", "amazon2023", "--category", "Video_Games", "--category", "All_Beauty",
                  "--raw-dir", raw_dir, "--k-core", k_core, *args)


def nothing_left(home: Path) -> None:
    """No dataset folder (finished or half-written) and no dataset row."""
    data = home / "data"
    left = sorted(path.name for path in data.iterdir() if path.name != "raw") if data.exists() else []
    assert left == [], left
    assert open_store().list_datasets() == []


def files_of(name: str) -> dict[str, bytes]:
    folder = Path(open_store().get_dataset(name).path)
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


# reuse --------------------------------------------------------------------------------------------------------
def test_same_inputs_twice_reuse_the_row_and_give_identical_files(tmp_path):
    assert prepare_amazon("--name", "mix").exit_code == 0
    row = open_store().get_dataset("mix")
    before = files_of("mix")
    stamps = {path.name: path.stat().st_mtime_ns for path in Path(row.path).iterdir()}

    copy = tmp_path / "copy"  # the same files in another folder are the same inputs
    shutil.copytree(FIXTURES, copy)
    for raw_dir in (FIXTURES, copy):
        again = prepare_amazon("--name", "mix", raw_dir=raw_dir)
        assert again.exit_code == 0, again.output
        assert open_store().get_dataset("mix").id == row.id and len(open_store().list_datasets()) == 1
        assert {path.name: path.stat().st_mtime_ns for path in Path(row.path).iterdir()} == stamps

    assert invoke("data", "delete", "mix", "--yes").exit_code == 0
    assert prepare_amazon("--name", "mix").exit_code == 0
    assert files_of("mix") == before  # prepared from scratch: byte for byte the same


def test_a_dataset_whose_files_are_gone_is_prepared_again():
    assert prepare_amazon("--name", "mix").exit_code == 0
    before = files_of("mix")
    shutil.rmtree(open_store().get_dataset("mix").path)
    assert prepare_amazon("--name", "mix").exit_code == 0
    assert files_of("mix") == before


@pytest.mark.parametrize("change", [["--k-core", "3"], ["--split", "user-ratio"], ["--missing-titles", "placeholder"]])
def test_a_name_taken_by_other_inputs_is_refused(change):
    assert prepare_amazon("--name", "mix").exit_code == 0
    row, before = open_store().get_dataset("mix"), files_of("mix")
    result = prepare_amazon("--name", "mix", *change)
    one_error_line(result, "dataset name 'mix' is already taken")
    assert open_store().get_dataset("mix").fingerprint == row.fingerprint and files_of("mix") == before


def test_a_name_taken_by_other_files_is_refused(tmp_path):
    assert prepare_amazon("--name", "mix").exit_code == 0
    other = tmp_path / "other"
    shutil.copytree(FIXTURES, other)
    with (other / "Video_Games.jsonl").open("a") as handle:
        handle.write((other / "Video_Games.jsonl").read_text().splitlines()[0].replace("1600000060000",
                                                                                       "1600009999000") + "\n")
    one_error_line(prepare_amazon("--name", "mix", raw_dir=other), "already taken")


# bad input ----------------------------------------------------------------------------------------------------
def without(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "raw"
    shutil.copytree(FIXTURES, folder, ignore=shutil.ignore_patterns(*names))
    return folder


def corrupt_gzip(tmp_path: Path) -> Path:
    folder = without(tmp_path)
    path = folder / "meta_All_Beauty.jsonl.gz"
    path.write_bytes(path.read_bytes()[:-20] + b"\x00" * 20)
    return folder


def review_file_not_gzip(tmp_path: Path) -> Path:
    folder = without(tmp_path, "Video_Games.jsonl")
    (folder / "Video_Games.jsonl.gz").write_bytes(b"not gzip at all")
    return folder


def bad_meta_line(tmp_path: Path) -> Path:
    folder = without(tmp_path)
    path = folder / "meta_Video_Games.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:4] + ['{"parent_asin": "B0X", "title": \n'] + lines[4:]))
    return folder


BAD_AMAZON = {
    "missing raw dir": (lambda tmp: tmp / "nowhere", [], ["missing folder", "nowhere"]),
    "missing review file": (lambda tmp: without(tmp, "All_Beauty.jsonl"), [],
                            ["missing review file", "All_Beauty.jsonl (or All_Beauty.jsonl.gz)"]),
    "missing meta file": (lambda tmp: without(tmp, "meta_Video_Games.jsonl"), [], ["missing meta file",
                                                                                   "meta_Video_Games.jsonl"]),
    "nothing after k-core": (lambda tmp: FIXTURES, ["--k-core", "5"], ["nothing is left after 5-core",
                                                                        "try a smaller --k-core"]),
    "strict meta line": (bad_meta_line, ["--strict"], ["meta_Video_Games.jsonl, line 5", "--strict"]),
    "unreadable gzip": (corrupt_gzip, [], ["meta_All_Beauty.jsonl.gz", "cannot be read as gzip"]),
    "review file not gzip": (review_file_not_gzip, [], ["Video_Games.jsonl.gz", "cannot be read as gzip"]),
    "bad option": (lambda tmp: FIXTURES, ["--split", "random"], ["--split must be one of"]),
    "bad name": (lambda tmp: FIXTURES, ["--name", "../escape"], ["dataset name '../escape'"]),
}


@pytest.mark.parametrize("case", BAD_AMAZON)
def test_bad_amazon_input_is_one_error_and_leaves_nothing(case, tmp_path, seqrec_home):
    make, extra, fragments = BAD_AMAZON[case]
    k_core = extra[1] if extra[:1] == ["--k-core"] else 2
    extra = extra[2:] if extra[:1] == ["--k-core"] else extra
    one_error_line(prepare_amazon(*extra, raw_dir=make(tmp_path), k_core=k_core), *fragments)
    nothing_left(seqrec_home)


@pytest.mark.parametrize("args, fragments", [
    (["--variant", "ml-10m"], ["unknown MovieLens variant 'ml-10m'", "ml-100k or ml-1m"]),
    (["--path", "/nonexistent/ml-100k"], ["missing folder"]),
])
def test_bad_movielens_input_is_one_error(args, fragments, seqrec_home):
    one_error_line(invoke("data", "prepare", "movielens", *args), *fragments)
    nothing_left(seqrec_home)


def test_a_source_that_does_not_take_an_option(seqrec_home):
    with pytest.raises(SeqrecError, match="movielens does not take categories"):
        prepare_source("movielens", {"categories": ["Video_Games"]}, {})
    with pytest.raises(SeqrecError, match="unknown source 'steam'"):
        prepare_source("steam", {}, {})
    result = invoke("data", "prepare", "movielens", "--category", "Video_Games")  # the CLI refuses it too
    assert result.exit_code == 2 and "No such option" in result.output and "Traceback" not in result.output
    nothing_left(seqrec_home)


def test_a_source_takes_its_own_options():
    row = prepare_source("amazon2023", {"categories": ["Video_Games"], "raw_dir": FIXTURES, "name": "vg"},
                         {"k_core": 2})
    assert row.stats["interactions"] == 21


def test_a_failed_write_leaves_nothing_half_written(monkeypatch, seqrec_home):
    real = prepare.write_prepared

    def write_then_fail(data, folder):
        real(data, folder)
        raise OSError("disk full")

    monkeypatch.setattr(prepare, "write_prepared", write_then_fail)
    with pytest.raises(OSError, match="disk full"):
        prepare.prepare_amazon2023(["Video_Games"], raw_dir=FIXTURES, k_core=2)
    nothing_left(seqrec_home)

    monkeypatch.setattr(prepare, "write_prepared", real)  # the row cannot be recorded: the folder goes too
    store_class = type(open_store())
    add_dataset = store_class.add_dataset

    def refuse(self, **kwargs):
        raise OSError("database is locked")

    monkeypatch.setattr(store_class, "add_dataset", refuse)
    with pytest.raises(OSError, match="database is locked"):
        prepare.prepare_amazon2023(["Video_Games"], raw_dir=FIXTURES, k_core=2)
    monkeypatch.setattr(store_class, "add_dataset", add_dataset)
    nothing_left(seqrec_home)


def test_gzipped_review_file_and_plain_meta_are_found(tmp_path):
    folder = without(tmp_path, "Video_Games.jsonl", "All_Beauty.jsonl")
    for name in ("Video_Games.jsonl", "All_Beauty.jsonl"):
        (folder / (name + ".gz")).write_bytes(gzip.compress((FIXTURES / name).read_bytes(), mtime=0))
    result = prepare_amazon("--name", "gz", raw_dir=folder)
    assert result.exit_code == 0, result.output
    assert open_store().get_dataset("gz").stats["interactions"] == 32
