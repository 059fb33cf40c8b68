"""The Textual dashboard over the experiment database; it reads the store and never writes."""

from seqrec.tui.app import SeqrecDashboard

__all__ = ["SeqrecDashboard"]
