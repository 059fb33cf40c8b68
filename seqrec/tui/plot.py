"""Training curves as one line of block characters: legible over SSH, in any 80-column terminal."""

from __future__ import annotations

import numpy as np

BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 30) -> str:
    """A curve of ``values`` at most ``width`` characters wide (longer series are averaged into buckets)."""
    if not values:
        return ""
    points = np.asarray(values, dtype=float)
    if len(points) > width:
        points = np.array([bucket.mean() for bucket in np.array_split(points, width)])
    low, high = points.min(), points.max()
    if high == low:
        return BLOCKS[len(BLOCKS) // 2] * len(points)
    levels = np.rint((points - low) / (high - low) * (len(BLOCKS) - 1)).astype(int)
    return "".join(BLOCKS[level] for level in levels)
