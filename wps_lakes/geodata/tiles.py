"""The inference tile grid (the project's only one), streamed.

Square tiles of ``tile_size`` pixels overlapping by ``tile_overlap`` (stride = size - overlap) on the
DEM's lattice; the first tile starts one overlap before the raster's top-left corner, and tiles go on
until the raster is covered. Tiles that no hydro polygon touches are skipped before any DEM read;
each tile is read and built when the caller asks for it, so memory does not grow with the raster.
"""
import math
from dataclasses import dataclass

import numpy as np
import shapely

from ..errors import LakesError
from ..limits import DEFAULT_LIMITS
from .grid import Grid
from .tensors import build_tensor
from .vectors import check_overlap

TILE_SIZE = 500
TILE_OVERLAP = 100


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: it holds an array
class Tile:
    grid: Grid
    index: tuple         # (row, col) in the tile grid
    tensor: np.ndarray   # (3, tile_size, tile_size) float32, see tensors.build_tensor


def tile_grids(raster_grid, tile_size=TILE_SIZE, tile_overlap=TILE_OVERLAP):
    """``((row, col), Grid)`` of every tile covering ``raster_grid``, row by row."""
    rows, cols = tile_counts(raster_grid, tile_size, tile_overlap)
    stride = tile_size - tile_overlap
    for row in range(rows):
        for col in range(cols):
            yield (row, col), raster_grid.subgrid(col * stride - tile_overlap, row * stride - tile_overlap,
                                                  tile_size, tile_size)


def tile_counts(raster_grid, tile_size=TILE_SIZE, tile_overlap=TILE_OVERLAP):
    """``(rows, cols)`` of the tile grid over ``raster_grid``."""
    if not (isinstance(tile_size, int) and isinstance(tile_overlap, int) and 0 <= tile_overlap < tile_size):
        raise LakesError(f"tile_size and tile_overlap must be whole numbers of pixels with "
                         f"0 <= tile_overlap < tile_size (got {tile_size!r} and {tile_overlap!r})")
    stride = tile_size - tile_overlap

    def count(extent):
        return max(1, math.ceil((extent + tile_overlap - tile_size) / stride) + 1)

    return count(raster_grid.height), count(raster_grid.width)


def iter_tiles(dem, water, tile_size=TILE_SIZE, tile_overlap=TILE_OVERLAP, scaling="minmax",
               limits=DEFAULT_LIMITS):
    """The tiles of ``dem`` that touch ``water`` (hydro polygons in the DEM's SRS), one at a time."""
    check_overlap(water, dem.grid)
    rows, cols = tile_counts(dem.grid, tile_size, tile_overlap)
    limits.check("max_tiles", rows * cols, f"the number of {tile_size} px tiles over the DEM")
    return _tiles(dem, water, tile_size, tile_overlap, scaling)


def _tiles(dem, water, tile_size, tile_overlap, scaling):
    for index, grid in tile_grids(dem.grid, tile_size, tile_overlap):
        if len(water.sindex.query(shapely.box(*grid.bounds), predicate="intersects")):
            yield Tile(grid, index, build_tensor(dem, water, grid, scaling))
