"""Training samples (design.md section 3): focal lakes, their windows and ground-truth boxes.

A lake (TYPECE "21") is focal when its area is within [lake_area_min, lake_area_max] and it lies
strictly closer than lake_river_max_dist to a river (TYPECE "10"). Its window is its bounds buffered
by roi_buffer, snapped outward to the pixel lattice and clipped to the DEM. The window's boxes are the
pixel bounds of every non-river polygon part in it, clipped to it; boxes 1 px thin or less are dropped.
"""
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from ..errors import LakesError
from .grid import SNAP_TOLERANCE, Grid
from .vectors import LAKE, OBJECTID, RIVER, TYPECE, check_overlap, check_typece

LAKE_AREA_MIN = 100.0            # m²
LAKE_AREA_MAX = 200_000.0        # m²
LAKE_RIVER_MAX_DIST = 300.0      # m, strict
ROI_BUFFER = 1000.0              # m around the focal lake (thelper's roi_buffer, later feature_buffer)
MIN_BOX_PX = 1                   # boxes this thin or thinner (width or height, pixels) are dropped


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: it holds an array
class Window:
    """One training sample: its grid, its lake boxes and the focal lake's OBJECTID."""

    grid: Grid
    boxes: np.ndarray            # (N, 4) float32 pixel xmin, ymin, xmax, ymax (row 0 at the top)
    focal_id: int


def focal_lakes(hydro, lake_area_min=LAKE_AREA_MIN, lake_area_max=LAKE_AREA_MAX,
                lake_river_max_dist=LAKE_RIVER_MAX_DIST):
    """The focal lakes of ``hydro`` (rows of it), in their order in the layer."""
    check_typece(hydro)
    lakes = hydro[hydro[TYPECE] == LAKE]
    lakes = lakes[(lakes.area >= lake_area_min) & (lakes.area <= lake_area_max)]
    rivers = hydro[hydro[TYPECE] == RIVER]
    if lakes.empty or rivers.empty:
        return lakes.iloc[0:0]
    lake_index, river_index = rivers.sindex.query(lakes.geometry.values, predicate="dwithin",
                                                  distance=lake_river_max_dist)
    distance = shapely.distance(lakes.geometry.values[lake_index], rivers.geometry.values[river_index])
    return lakes.iloc[np.unique(lake_index[distance < lake_river_max_dist])]


def training_windows(hydro, dem_grid, roi_buffer=ROI_BUFFER, lake_area_min=LAKE_AREA_MIN,
                     lake_area_max=LAKE_AREA_MAX, lake_river_max_dist=LAKE_RIVER_MAX_DIST):
    """One Window per focal lake on the DEM, with the boxes of every lake part in it."""
    check_typece(hydro)
    check_overlap(hydro, dem_grid)
    focal = focal_lakes(hydro, lake_area_min, lake_area_max, lake_river_max_dist)
    focal = focal[focal.intersects(shapely.box(*dem_grid.bounds))]
    if focal.empty:
        raise LakesError(
            f'no training sample: no lake (TYPECE "{LAKE}") on the DEM has an area between {lake_area_min:g} and '
            f'{lake_area_max:g} m² and lies closer than {lake_river_max_dist:g} m to a river (TYPECE "{RIVER}"); '
            f"check the TYPECE codes or widen lake_area_min/lake_area_max/lake_river_max_dist")
    not_rivers = hydro[hydro[TYPECE] != RIVER]
    windows = []
    for index, lake in focal.iterrows():
        xmin, ymin, xmax, ymax = lake.geometry.bounds
        wanted = Grid.from_bounds((xmin - roi_buffer, ymin - roi_buffer, xmax + roi_buffer, ymax + roi_buffer),
                                  dem_grid.px_size, dem_grid.crs)
        grid = dem_grid.intersection(wanted)
        focal_id = int(lake[OBJECTID]) if OBJECTID in focal.columns and pd.notna(lake[OBJECTID]) else int(index)
        windows.append(Window(grid, ground_truth_boxes(not_rivers, grid), focal_id))
    return windows


def ground_truth_boxes(lakes, grid):
    """Pixel boxes on ``grid`` of every polygon part of ``lakes`` in it, clipped to it; thin ones dropped.

    Each part's bounds snap outward to whole pixels (the extent its all-touched water mask covers).
    """
    frame = shapely.box(*grid.bounds)
    hits = lakes.sindex.query(frame, predicate="intersects")
    parts = shapely.get_parts(shapely.intersection(lakes.geometry.values[hits], frame))
    parts = parts[shapely.area(parts) > 0]  # clipping can leave lines or points on the window's edge
    if not len(parts):
        return np.zeros((0, 4), dtype=np.float32)
    xmin, ymin, xmax, ymax = shapely.bounds(parts).T
    px = grid.px_size
    boxes = np.column_stack([
        np.floor((xmin - grid.x0) / px + SNAP_TOLERANCE), np.floor((grid.y0 - ymax) / px + SNAP_TOLERANCE),
        np.ceil((xmax - grid.x0) / px - SNAP_TOLERANCE), np.ceil((grid.y0 - ymin) / px - SNAP_TOLERANCE),
    ])
    boxes = np.clip(boxes, 0, [grid.width, grid.height, grid.width, grid.height])
    keep = (boxes[:, 2] - boxes[:, 0] > MIN_BOX_PX) & (boxes[:, 3] - boxes[:, 1] > MIN_BOX_PX)
    return boxes[keep].astype(np.float32)
