"""Tables of results from the database with pandas: mean ± std over seeds, best in bold, a paired t-test against a
baseline row, missing runs named, and the papers' published numbers beside ours."""

from __future__ import annotations

from collections.abc import Sequence

from seqrec.errors import SeqrecError
from seqrec.report.render import RENDERERS
from seqrec.report.specs import TABLES, row_label
from seqrec.report.tables import ReportTable, report_table

FORMATS = tuple(RENDERERS)


def build_table(table: str = "main", experiment: str | Sequence[str] | None = None, fmt: str = "md",
                paper: bool = False) -> str:
    """One report table as text: `seqrec report --table T [--experiment X ...] [--format F] [--paper]`."""
    if fmt not in RENDERERS:
        raise SeqrecError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return RENDERERS[fmt](report_table(table, experiment=experiment, paper=paper))


__all__ = ["FORMATS", "ReportTable", "TABLES", "build_table", "report_table", "row_label"]
