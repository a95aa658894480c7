"""The 3-channel input shared by training and inference: DEM, water mask, signed distance to water.

Channels on a window's grid (north-up, row 0 at the top):
  0. DEM elevation (bilinear when resampled), nodata masked;
  1. water mask: every hydro polygon touching the window rasterised with all_touched=True;
  2. signed distance to the shore in metres: positive on land, negative on water.

Scalings to [0, 1] (selected by name, see SCALINGS):
  "minmax" (the original's): each channel min-max scaled over the window (the DEM over its valid
      pixels); a constant channel becomes 0. Unlike the original, values are not quantised to 8 bits
      first: 256 levels over a window's relief (often 50 m) would blur a lake's 0.3 m step below its shore.
  "fixed": the same metres mean the same values in every window. DEM relative to the window's water
      level (median elevation under the water mask), FIXED_DEM_RANGE_M mapped to [0, 1] and clipped;
      mask as is (even when constant); distance clipped to +-FIXED_DISTANCE_M and mapped to [0, 1].
Masked DEM pixels are 0 in both.
"""
import math

import numpy as np
import shapely
from rasterio.features import rasterize
from scipy import ndimage

from ..errors import LakesError

SCALINGS = ("minmax", "fixed")
FIXED_DEM_RANGE_M = (-5.0, 30.0)   # elevation relative to the water level
FIXED_DISTANCE_M = 300.0           # the focal lake-river distance: farther is "far from water"


def build_tensor(dem, water, grid, scaling="minmax"):
    """The (3, H, W) float32 input in [0, 1] for ``grid``, from a Dem and hydro polygons in its SRS."""
    if scaling not in SCALINGS:
        raise LakesError(f"unknown scaling {scaling!r}; choose one of: {', '.join(SCALINGS)}")
    elevation = dem.read(grid).data  # NaN where masked
    nodata = np.isnan(elevation)
    mask = water_mask(water, grid)
    distance = signed_distance(mask, grid.px_size)
    tensor = np.empty((3,) + grid.shape, dtype=np.float32)
    if scaling == "minmax":
        for channel, out in zip((elevation, mask, distance), tensor, strict=True):
            _minmax(channel, out)
    else:
        _fixed_dem(elevation, mask, nodata, tensor[0])
        tensor[1] = mask
        np.clip(distance * np.float32(1 / (2 * FIXED_DISTANCE_M)) + np.float32(0.5), 0, 1, out=tensor[2])
    tensor[0][nodata] = 0
    return tensor


def water_mask(water, grid):
    """uint8 mask of the hydro polygons on ``grid``, all-touched; only polygons touching it are drawn."""
    hits = water.sindex.query(shapely.box(*grid.bounds), predicate="intersects")
    if not len(hits):
        return np.zeros(grid.shape, dtype=np.uint8)
    # clipped first (one pixel wider, so edge pixels see the same polygon): fewer vertices to hand to GDAL
    xmin, ymin, xmax, ymax = grid.bounds
    px = grid.px_size
    shapes = shapely.clip_by_rect(water.geometry.values[hits], xmin - px, ymin - px, xmax + px, ymax + px)
    return rasterize(shapes[~shapely.is_empty(shapes)], out_shape=grid.shape, transform=grid.transform,
                     all_touched=True, fill=0, default_value=1, dtype="uint8")


def signed_distance(mask, px_size):
    """Metres from each pixel to the shore: positive on land, negative on water (float32).

    The Euclidean distance transform runs once, on a grid of twice the pixel size, from the cells the
    shore crosses, and is interpolated back (within about one coarse cell of the exact value; 4 times
    less work than the two exact transforms). The sign comes from the full-resolution mask, and a pixel
    next to the shore is exactly one pixel away, as in the exact transform. A window without water (or
    all water) gets the window's diagonal (or minus it): farther than any distance inside it.
    """
    water = mask.astype(bool)
    if not water.any() or water.all():
        diagonal = np.float32(math.hypot(*mask.shape) * px_size)
        return np.full(mask.shape, -diagonal if water.any() else diagonal, dtype=np.float32)
    h, w = water.shape
    padded = np.zeros((h + h % 2, w + w % 2), dtype=bool)
    padded[:h, :w] = water
    if h % 2:
        padded[h] = padded[h - 1]
    if w % 2:
        padded[:, w] = padded[:, w - 1]
    corners = padded[0::2, 0::2], padded[1::2, 0::2], padded[0::2, 1::2], padded[1::2, 1::2]
    some = corners[0] | corners[1] | corners[2] | corners[3]
    full = corners[0] & corners[1] & corners[2] & corners[3]
    shore = some & ~full                                   # cells the shore crosses
    shore |= full & _dilate4(~some)                        # pure water cells touching pure land cells
    shore |= ~some & _dilate4(full)                        # and pure land cells touching pure water cells
    far = ndimage.distance_transform_edt(~shore).astype(np.float32) * np.float32(2 * px_size)
    far = _upsample2(far)[:h, :w]
    far += np.float32(px_size)
    np.negative(far, out=far, where=water)
    return far


def _dilate4(cells):
    """Cells with a 4-neighbour set, or set themselves."""
    out = cells.copy()
    out[1:] |= cells[:-1]
    out[:-1] |= cells[1:]
    out[:, 1:] |= cells[:, :-1]
    out[:, :-1] |= cells[:, 1:]
    return out


def _upsample2(coarse):
    """Bilinear x2 upsampling, pixel centres aligned (each fine pixel weighs its coarse cell 3/4)."""
    p = np.pad(coarse, 1, mode="edge")
    rows = np.empty((2 * coarse.shape[0], p.shape[1]), dtype=coarse.dtype)
    rows[0::2] = 0.75 * p[1:-1] + 0.25 * p[:-2]
    rows[1::2] = 0.75 * p[1:-1] + 0.25 * p[2:]
    out = np.empty((rows.shape[0], 2 * coarse.shape[1]), dtype=coarse.dtype)
    out[:, 0::2] = 0.75 * rows[:, 1:-1] + 0.25 * rows[:, :-2]
    out[:, 1::2] = 0.75 * rows[:, 1:-1] + 0.25 * rows[:, 2:]
    return out


def _minmax(channel, out):
    """``out`` = ``channel`` min-max scaled over its non-NaN pixels; a constant channel gives 0 (NaN stays)."""
    low, high = np.fmin.reduce(channel, axis=None), np.fmax.reduce(channel, axis=None)
    if not high > low:  # constant, or all NaN
        out[...] = 0
        return
    np.subtract(channel, low, out=out, casting="unsafe")
    out *= np.float32(1.0 / (high - low))


def _fixed_dem(elevation, mask, nodata, out):
    """``out`` = elevation relative to the window's water level, FIXED_DEM_RANGE_M -> [0, 1], clipped."""
    valid = ~nodata
    under_water = elevation[valid & (mask > 0)]
    reference = under_water if under_water.size else elevation[valid]
    if not reference.size:
        out[...] = 0
        return
    low, high = FIXED_DEM_RANGE_M
    np.subtract(elevation, np.float32(np.median(reference) + low), out=out)
    out *= np.float32(1.0 / (high - low))
    np.clip(out, 0, 1, out=out)
