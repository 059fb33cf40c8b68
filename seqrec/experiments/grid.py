"""Expanding one declared experiment into its run points: seeds x grid (cartesian) x zip (paired)."""

from __future__ import annotations

import itertools

from seqrec.experiments.schema import ExperimentSpec


def expand(experiment: ExperimentSpec) -> list[dict]:
    """Every combination of parameters, seed included, in a stable order (seed varies fastest)."""
    grid_keys = list(experiment.grid)
    grid_points = [dict(zip(grid_keys, values)) for values in itertools.product(*experiment.grid.values())]
    zip_length = len(next(iter(experiment.zip.values()))) if experiment.zip else 1
    zip_points = [{key: values[i] for key, values in experiment.zip.items()} for i in range(zip_length)]
    points = []
    for grid_point, zip_point in itertools.product(grid_points, zip_points):
        for seed in experiment.seeds:
            points.append({**experiment.params, **grid_point, **zip_point, "seed": seed})
    return points
