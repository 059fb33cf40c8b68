"""`seqrec models`: the LLM model registry (list, show, pull)."""

from pathlib import Path
from typing import Optional

import typer
from rich import box
from rich.table import Table

from seqrec.cli._app import command_group, console

app = command_group("LLM model registry: list, show and pull models.")


def size(value) -> str:
    return "" if value is None else f"{value / 1e6:,.0f} MB"


@app.command("list")
def list_() -> None:
    """Registry aliases (with their offline package, if any) and every pulled model."""
    from seqrec.llm.registry import list_models

    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("alias", "hugging face id", "offline package", "pulled", "size"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for row in list_models():
        table.add_row(row["alias"], row["hub_id"], row["offline"] or "", "yes" if row["pulled"] else "",
                      size(row["size_bytes"]))
    console.print(table)


@app.command()
def show(alias: str = typer.Argument(..., help="A registry alias or a pulled model.")) -> None:
    """Where a model comes from and, once pulled, its path, revision, sha256 and architecture."""
    from seqrec.llm.registry import show_model

    for key, value in show_model(alias).items():
        console.print(f"{key:<16} {value}", highlight=False, soft_wrap=True)


@app.command()
def pull(
    alias: str = typer.Argument(..., help="A registry alias, a Hugging Face id (org/name) or a local folder."),
    from_dir: Optional[Path] = typer.Option(None, "--from", help="Take the weights from this folder (a Hugging "
                                            "Face model folder or one holding a .gguf file) instead of the hub."),
) -> None:
    """Copy a model into the store as a plain Hugging Face folder and record it (GGUF is dequantised)."""
    from seqrec.llm.registry import pull as pull_model

    row = pull_model(alias, from_dir)
    console.print(f"pulled {row.alias} from {row.source} ({size(row.size_bytes)}) into {row.path}", highlight=False,
                  soft_wrap=True)
