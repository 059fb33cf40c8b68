"""The experiment database: tables, migrations, the run tracker. The only code that touches SQL."""

from seqrec.store.hashing import config_hash, file_digest
from seqrec.store.models import Artifact, Dataset, LLMCall, Metric, Model, Run, RunInput
from seqrec.store.store import RUN_STATUSES, Store, open_store

__all__ = ["Artifact", "Dataset", "LLMCall", "Metric", "Model", "RUN_STATUSES", "Run", "RunInput", "Store",
           "config_hash", "file_digest", "open_store"]
