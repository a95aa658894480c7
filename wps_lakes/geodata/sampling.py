"""Spatial train/validation split: no pixel of the map in two splits.

Windows are grouped by the square block (``block_size_m``, on a lattice from the map origin) that
holds their centre. Blocks, ordered outward from a corner of the windows' extent picked by ``seed``,
go whole to the splits: smaller shares first, each taking blocks while it stays within its share of
windows (and at least one block), the largest share the rest; so the smaller splits are compact
regions in a corner. Blocks are disjoint, but two windows in neighbouring blocks can still overlap: when they fall
in different splits, the one in the larger split is dropped (spatial cross-validation's buffer; on equal
shares, the split given more windows loses), so overlapping crops never sit on both sides.
"""
import math

import numpy as np

from ..errors import LakesError


def spatial_split(windows, ratios, block_size_m=None, seed=0):
    """``{split name: [Window, ...]}`` with shares near ``ratios`` (e.g. {"train": 0.9, "valid": 0.1}).

    ``block_size_m`` defaults to the largest window side, so only windows in neighbouring blocks can
    overlap. Deterministic for a seed; windows keep their input order within a split.
    """
    if not ratios or any(not isinstance(r, (int, float)) or r < 0 for r in ratios.values()) \
            or sum(ratios.values()) <= 0:
        raise LakesError(f"split ratios must be non-negative numbers with a positive sum, e.g. "
                         f'{{"train": 0.9, "valid": 0.1}} (got {ratios!r})')
    if block_size_m is None:
        block_size_m = max((max(w.grid.width, w.grid.height) * w.grid.px_size for w in windows), default=1.0)
    if block_size_m <= 0:
        raise LakesError(f"block_size_m must be positive (got {block_size_m!r})")
    total = sum(ratios.values())
    shares = {name: ratio / total for name, ratio in ratios.items()}

    blocks = {}
    centres = [_centre(window) for window in windows]
    for i, (x, y) in enumerate(centres):
        blocks.setdefault((math.floor(x / block_size_m), math.floor(y / block_size_m)), []).append(i)
    # blocks ordered outward from a corner of the windows' extent that the seed picks: the splits taken
    # first form compact regions, whose edges (where windows get dropped) are short
    rng = np.random.default_rng(seed)
    order = sorted(blocks)
    rng.shuffle(order)  # ties
    xs, ys = zip(*centres, strict=True)
    cx, cy = (min(xs), max(xs))[rng.integers(2)], (min(ys), max(ys))[rng.integers(2)]
    order.sort(key=lambda k: math.hypot((k[0] + 0.5) * block_size_m - cx, (k[1] + 0.5) * block_size_m - cy))

    # smaller shares first: each takes whole blocks (in that order) while it stays within its share,
    # and at least one block if one is left; the largest share takes the rest
    names = sorted(shares, key=lambda name: (shares[name], name))
    block_split = {}
    for name in names[:-1]:
        if shares[name] == 0:
            continue
        target, count = max(shares[name] * len(windows), 1), 0
        for key in order:
            if key not in block_split and count + len(blocks[key]) <= target:
                block_split[key] = name
                count += len(blocks[key])
        free = [key for key in order if key not in block_split]
        if not count and free:
            block_split[min(free, key=lambda key: len(blocks[key]))] = name
    split_of = {i: block_split.get(key, names[-1]) for key in order for i in blocks[key]}
    counts = {name: sum(1 for n in split_of.values() if n == name) for name in names}

    # a window overlapping one of a smaller split (fewer windows on a tie of shares) is dropped
    kept = []
    for name in sorted(names, key=lambda n: (shares[n], counts[n], n)):
        for i in (i for i in range(len(windows)) if split_of[i] == name):
            if not any(split_of[j] != name and _overlap(windows[i], windows[j]) for j in kept):
                kept.append(i)
    return {name: [windows[i] for i in sorted(kept) if split_of[i] == name] for name in ratios}


def _centre(window):
    xmin, ymin, xmax, ymax = window.grid.bounds
    return (xmin + xmax) / 2, (ymin + ymax) / 2


def _overlap(a, b):
    """True when two windows share pixels (touching edges do not count)."""
    ax0, ay0, ax1, ay1 = a.grid.bounds
    bx0, by0, bx1, by1 = b.grid.bounds
    return ax0 < bx1 and bx0 < ax1 and ay0 < by1 and by0 < ay1
