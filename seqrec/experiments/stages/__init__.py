"""The registry of stages: importing this package imports every module in it, and each registers its stage."""

import importlib
import pkgutil

from seqrec.experiments.stages.base import (EXPERIMENT_FIELDS, Found, Plan, Point, Request, Stage, is_reference,
                                            register, stage_named, stage_names)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["EXPERIMENT_FIELDS", "Found", "Plan", "Point", "Request", "Stage", "is_reference", "register", "stage_named",
           "stage_names"]
