"""`seqrec report`: result tables from the database, optionally beside the papers' published numbers."""

import os
import tempfile
from pathlib import Path
from typing import Optional

import typer

from seqrec.cli._app import console
from seqrec.errors import SeqrecError


def write_atomically(path: Path, text: str) -> None:
    """Write beside the target, then rename: a failed write never leaves half a table behind."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(temp, path)
        finally:
            Path(temp).unlink(missing_ok=True)
    except OSError as exc:
        raise SeqrecError(f"cannot write --output {path}: {exc.strerror or exc}") from None


def report(
    table: str = typer.Option("main", "--table", "-t", help="main, distill, noise, ablation (variants of "
                              "train runs), profiles, delrec (DELRec's Table II) or delrec-ablation (its Tables "
                              "III-IV)."),
    experiment: Optional[list[str]] = typer.Option(None, "--experiment", "-e", help="Only runs of this experiment, or "
                                                   "of those a comma-separated list of names or patterns matches "
                                                   "('delrec-base-*,delrec-cpu-*'); repeat for several."),
    fmt: str = typer.Option("md", "--format", "-f", help="md, latex, csv or html."),
    paper: bool = typer.Option(False, "--paper", help="Add the papers' published numbers where dataset and "
                                                      "protocol match."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
) -> None:
    """A results table: mean ± std over seeds, best in bold, a paired t-test against the baseline row."""
    from seqrec.report import build_table

    text = build_table(table, experiment=experiment, fmt=fmt, paper=paper)
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_atomically(output, text)
        console.print(f"wrote {output}", highlight=False)
