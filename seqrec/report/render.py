"""A computed report table written as markdown, LaTeX, HTML or CSV (and as rich markup for the dashboard)."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from rich.markup import escape as escape_rich

from seqrec.report.tables import Cell, ReportTable


@dataclass(frozen=True)
class Markup:
    """How one output format writes bold, plus-minus, the significance dagger, and plain text."""

    bold: str
    plus_minus: str
    dagger: str
    escape: Callable[[str], str]


LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "±": r"$\pm$", "†": r"$^\dagger$", "<": r"$<$", ">": r"$>$"}


def escape_latex(text: str) -> str:
    return re.sub("|".join(map(re.escape, LATEX_SPECIALS)), lambda match: LATEX_SPECIALS[match.group()], text)


def escape_markdown(text: str) -> str:
    return re.sub(r"([|*_\\`])", r"\\\1", text)


MARKDOWN = Markup("**{}**", " ± ", "†", escape_markdown)
LATEX = Markup(r"\textbf{{{}}}", r" $\pm$ ", r"$^\dagger$", escape_latex)
HTML = Markup("<b>{}</b>", " ± ", "†", html.escape)
RICH = Markup("[b]{}[/b]", " ± ", "†", escape_rich)  # the dashboard's report view


def cell_text(cell: Cell, markup: Markup) -> str:
    """'0.1234 ± 0.0012†' (bold when best), '0.1234 (n=1)', '0.1234 ± 0.0012 (+4.9%)' where the table shows
    relative changes, or the reason the cell is empty."""
    if cell.mean is None:
        return markup.escape(cell.missing or "-")
    text = f"{cell.mean:.4f}"
    if cell.std is not None:
        text += f"{markup.plus_minus}{cell.std:.4f}"
    elif cell.n == 1:
        text += " (n=1)"
    if cell.relative is not None:
        text += markup.escape(f" ({cell.relative:+.1%})")
    if cell.significant:
        text += markup.dagger
    return markup.bold.format(text) if cell.best else text


def to_frame(table: ReportTable, markup: Markup) -> pd.DataFrame:
    """Formatted cells, one row per table row, columns (dataset group, metric)."""
    columns = pd.MultiIndex.from_tuples([(markup.escape(column.group), markup.escape(column.metric_label))
                                         for column in table.columns])
    index = pd.Index([markup.escape(row.label) for row in table.rows])
    return pd.DataFrame([[cell_text(cell, markup) for cell in row.cells] for row in table.rows], index=index,
                        columns=columns, dtype=object)


def to_markdown(table: ReportTable) -> str:
    frame = to_frame(table, MARKDOWN)
    header = ["", *(f"{group} {metric}" for group, metric in frame.columns)]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * len(frame.columns) + "|"]
    lines += ["| " + " | ".join([label, *cells]) + " |" for label, cells in zip(frame.index, frame.values.tolist())]
    notes = [MARKDOWN.escape(note) for note in table.footnotes]
    return "\n\n".join([f"**{MARKDOWN.escape(table.title)}**", "\n".join(lines), *notes]) + "\n"


def to_latex(table: ReportTable) -> str:
    frame = to_frame(table, LATEX)
    tabular = frame.to_latex(escape=False, multicolumn=True, multicolumn_format="c",
                             column_format="l" + "r" * len(frame.columns))
    notes = "\\\\\n".join(LATEX.escape(note) for note in table.footnotes)
    return ("\\begin{table}\n\\centering\n\\caption{" + LATEX.escape(table.title) + "}\n" + tabular
            + "\\par\\smallskip\\footnotesize\n" + notes + "\n\\end{table}\n")


def to_html(table: ReportTable) -> str:
    notes = "\n".join(f"<p class=\"footnote\">{HTML.escape(note)}</p>" for note in table.footnotes)
    return (f"<h3>{HTML.escape(table.title)}</h3>\n" + to_frame(table, HTML).to_html(escape=False) + "\n"
            + notes + "\n")


def to_csv(table: ReportTable) -> str:
    """Long format, one line per cell, numbers unformatted: for further analysis rather than reading."""
    records = [{"row": row.label, "published": row.published, "dataset": column.dataset, "protocol": column.protocol,
                "metric": column.metric, "mean": cell.mean, "std": cell.std, "n": cell.n, "best": cell.best,
                "relative": cell.relative, "p_value": cell.p_value, "significant": cell.significant, "missing": cell.missing}
               for row in table.rows for column, cell in zip(table.columns, row.cells)]
    return pd.DataFrame(records).to_csv(index=False)


RENDERERS = {"md": to_markdown, "latex": to_latex, "csv": to_csv, "html": to_html}
