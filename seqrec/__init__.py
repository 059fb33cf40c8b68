"""seqrec: a workbench for LLM-enhanced sequential recommendation.

Every command is also a plain function here (imported on first use, so ``import seqrec`` stays light):
``seqrec.train("sasrec", "ml-100k", seeds=[0, 1, 2])`` does what ``seqrec train sasrec --dataset ml-100k
--seeds 0,1,2`` does.
"""

import importlib

__version__ = "0.1.0"

API = {
    "info": "seqrec.system:info",
    "open_store": "seqrec.store:open_store",
    "db_upgrade": "seqrec.store.commands:db_upgrade",
    "db_status": "seqrec.store.commands:db_status",
    "list_runs": "seqrec.store.commands:list_runs",
    "show_run": "seqrec.store.commands:show_run",
    "delete_run": "seqrec.store.commands:delete_run",
    "prepare_movielens": "seqrec.data.prepare:prepare_movielens",
    "prepare_amazon2023": "seqrec.data.prepare:prepare_amazon2023",
    "prepare_atomic": "seqrec.data.prepare:prepare_atomic",
    "prepare_csv": "seqrec.data.prepare:prepare_csv",
    "list_datasets": "seqrec.data.prepare:list_datasets",
    "load_dataset": "seqrec.data.prepare:load_dataset",
    "train": "seqrec.recsys.runner:train_model",
    "evaluate": "seqrec.recsys.runner:evaluate_run",
    "run": "seqrec.experiments.plan:run_experiment",
    "report_table": "seqrec.report:build_table",  # `seqrec report` (the name `report` is the subpackage)
}
__all__ = ["__version__", *API]


def __getattr__(name: str):
    if name not in API:
        raise AttributeError(f"module 'seqrec' has no attribute {name!r}")
    module, _, attribute = API[name].partition(":")
    return getattr(importlib.import_module(module), attribute)
