"""open_dem(): one or several adjacent GeoTIFFs read through the work grid.

``Dem.read(grid)`` fills exactly the grid asked for, whatever the source rasters' CRS and resolution.
A source already on the work lattice is read with plain windowed reads. Any other is resampled
bilinearly through an affine map fitted, per grid, to the exact transform (``_read_affine``: a 500 px
tile read in 5 to 6 ms on one core, through GDAL's warper 18 to 38 ms); where that map would be off (a transform
far from affine over the grid), or the source is much finer than the grid, or the grid is big, GDAL
warps the grid instead. Either way memory follows the grid asked for, not the files.
"""
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio._err import CPLE_BaseError
from rasterio.enums import Resampling
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window

from ..errors import LakesError
from ..limits import DEFAULT_LIMITS
from .grid import SNAP_TOLERANCE, Grid, crs_string

# GDAL's block cache defaults to 5% of RAM; a small cap keeps memory flat while tiling big rasters.
GDAL_CACHE_BYTES = 16 * 2**20

# The affine map stands in for the exact transform within GDAL's own default error threshold for its
# approximated transformer. Up to AFFINE_MAX_SCALE source pixels per grid pixel every source pixel still
# weighs in; a finer source (1 m lidar at 3 m) goes to GDAL, whose bilinear then averages over the
# finer pixels, detail that point sampling would alias.
AFFINE_TOLERANCE_PX = 0.125
AFFINE_MAX_SCALE = 1.25
AFFINE_MAX_PIXELS = 2**20       # its buffers take 32 bytes a grid pixel


@dataclass
class _Source:
    dataset: rasterio.DatasetReader
    bounds: tuple        # in the work SRS
    grid: Grid | None    # the file's own grid when it is on the work lattice (no resampling needed)
    crs: str             # the file's, as crs_string spells it

    def pixel_map(self, grid):
        """``(a, b, c, d, e, f)``: the file pixel ``(x, y)`` under the centre of ``grid``'s pixel
        ``(col, row)`` is ``x = a*col + b*row + c``, ``y = d*col + e*row + f`` (pixel centres on whole
        numbers). Fitted to 5 x 5 points transformed exactly; None if it misses one by more than
        AFFINE_TOLERANCE_PX."""
        cols, rows = np.meshgrid(np.linspace(0, grid.width - 1, 5), np.linspace(0, grid.height - 1, 5))
        cols, rows = cols.ravel(), rows.ravel()
        to_file_crs = _transformer(grid.crs, self.crs, os.getpid())
        xs, ys = np.asarray(to_file_crs.transform(grid.x0 + (cols + 0.5) * grid.px_size,
                                                  grid.y0 - (rows + 0.5) * grid.px_size))
        to_file = ~self.dataset.transform
        exact = np.column_stack((to_file.a * xs + to_file.b * ys + to_file.c - 0.5,
                                 to_file.d * xs + to_file.e * ys + to_file.f - 0.5))
        if not np.isfinite(exact).all():
            return None
        design = np.column_stack((cols, rows, np.ones_like(cols)))
        coefficients = np.linalg.lstsq(design, exact, rcond=None)[0]
        if np.abs(design @ coefficients - exact).max() > AFFINE_TOLERANCE_PX:
            return None
        return tuple(coefficients.T.ravel())


@lru_cache(maxsize=16)
def _transformer(from_crs, to_crs, pid):
    """Made once per pair and process (``pid``: a forked data loader worker makes its own rather than use
    the parent's PROJ objects): making one can take 30 ms (a datum change), transforming a few points
    15 us."""
    return Transformer.from_crs(from_crs, to_crs, always_xy=True)


class Dem:
    """A DEM mosaic seen through the work grid; use as a context manager (closes the files)."""

    def __init__(self, sources, grid):
        self._sources = sources
        self.grid = grid
        self._scratch = _Scratch()

    def read(self, grid, resampling=Resampling.bilinear):
        """Elevations on ``grid`` as a float32 masked array; nodata and pixels outside every file are masked
        (and NaN in its data).
        ``resampling`` applies where ``grid`` is off the DEM's lattice (nearest: a fast preview)."""
        out = np.full(grid.shape, np.nan, dtype=np.float32)
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
            for source in self._sources:
                if not _overlap(source.bounds, grid.bounds):
                    continue
                try:
                    if source.grid is not None and grid.is_aligned_with(source.grid):
                        _read_window(source, grid, out, self._scratch)
                    elif resampling != Resampling.bilinear or not _read_affine(source, grid, out, self._scratch):
                        _read_warped(source, grid, out, resampling)
                except (RasterioError, CPLE_BaseError):
                    raise _damaged(source.dataset) from None
        return np.ma.masked_invalid(out, copy=False)

    def close(self):
        for source in self._sources:
            source.dataset.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_dem(paths, srs="EPSG:2959", px_size=3.0, limits=DEFAULT_LIMITS):
    """Open one GeoTIFF or several adjacent ones as one DEM on the work grid (``srs``, ``px_size``)."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise LakesError("no DEM raster was given")
    srs = crs_string(srs)
    sources = []
    try:
        for path in paths:
            sources.append(_open_source(Path(path), srs, px_size, limits))
    except Exception:
        for source in sources:
            source.dataset.close()
        raise
    xmins, ymins, xmaxs, ymaxs = zip(*(source.bounds for source in sources), strict=True)
    grid = Grid.from_bounds((min(xmins), min(ymins), max(xmaxs), max(ymaxs)), px_size, srs)
    try:
        limits.check("max_raster_pixels", grid.width * grid.height,
                     f"the DEM size in pixels at {px_size:g} m in {srs} ({grid.width:,} x {grid.height:,})")
    except LakesError:
        for source in sources:
            source.dataset.close()
        raise
    try:
        for source in sources:
            _check_has_elevation(source.dataset)
    except LakesError:
        for source in sources:
            source.dataset.close()
        raise
    return Dem(sources, grid)


def _open_source(path, srs, px_size, limits):
    name = path.name
    if not path.is_file():
        raise LakesError(f"DEM file {name!r} was not found")
    try:
        dataset = rasterio.open(path, driver="GTiff")
    except RasterioIOError:
        raise LakesError(f"{name} is not a GeoTIFF raster; give the DEM as a GeoTIFF (.tif)") from None
    if dataset.crs is None:
        dataset.close()
        raise LakesError(f"{name} has no coordinate reference system; assign one to the GeoTIFF "
                         f"(e.g. gdal_edit.py -a_srs EPSG:2959) and try again")
    if dataset.transform.is_identity:
        dataset.close()
        raise LakesError(f"{name} has no georeferencing (no geotransform); give a georeferenced GeoTIFF")
    try:
        # A file finer than the work grid is read at its own resolution: its declared size is what a job
        # reads, checked before any read (a sparse file of a few kB can declare billions of pixels).
        limits.check("max_raster_pixels", dataset.width * dataset.height,
                     f"the size in pixels of DEM file {name} ({dataset.width:,} x {dataset.height:,})")
    except LakesError:
        dataset.close()
        raise
    bounds = transform_bounds(dataset.crs, srs, *dataset.bounds, densify_pts=21)
    crs = crs_string(dataset.crs)
    return _Source(dataset, bounds, _lattice_grid(dataset, crs, srs, px_size), crs)


def _damaged(dataset):
    return LakesError(f"{Path(dataset.name).name} could not be read: the GeoTIFF is truncated or damaged; give the "
                      "complete file")


def _check_has_elevation(dataset):
    """Refuse a DEM whose every pixel is nodata or NaN. Blocks are read in turn until one holds a
    value, so a real DEM costs one block; only a DEM with no data at all is read whole."""
    nodata = dataset.nodata
    try:
        for _, window in dataset.block_windows(1):
            values = dataset.read(1, window=window, out_dtype=np.float32)
            valid = np.isfinite(values)
            if nodata is not None and not np.isnan(nodata):
                valid &= values != np.float32(nodata)
            if valid.any():
                return
    except (RasterioError, CPLE_BaseError):
        raise _damaged(dataset) from None
    raise LakesError(f"{Path(dataset.name).name} holds no elevation: every pixel is nodata or NaN; give a DEM with "
                     "data over the area")


def _lattice_grid(dataset, crs, srs, px_size):
    """The file's own grid if it is north-up on the work lattice in the work SRS, else None."""
    t = dataset.transform
    if crs != srs or t.b != 0 or t.d != 0 \
            or not np.isclose(t.a, px_size) or not np.isclose(t.e, -px_size):
        return None
    col, row = t.c / px_size, t.f / px_size
    if abs(col - round(col)) > SNAP_TOLERANCE or abs(row - round(row)) > SNAP_TOLERANCE:
        return None
    return Grid(round(col) * px_size, round(row) * px_size, px_size, dataset.width, dataset.height, srs)


def _overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _read_window(source, grid, out, scratch):
    part = source.grid.intersection(grid)
    if part is None:
        return
    col, row = part.offset_in(source.grid)
    values = _read_padded(source.dataset, col, row, part.width, part.height, scratch)
    col, row = part.offset_in(grid)
    target = out[row:row + part.height, col:col + part.width]
    np.copyto(target, values, where=np.isnan(target))


def _read_warped(source, grid, out, resampling=Resampling.bilinear):
    warped = np.full(grid.shape, np.nan, dtype=np.float32)
    reproject(rasterio.band(source.dataset, 1), warped, src_nodata=source.dataset.nodata,
              dst_transform=grid.transform, dst_crs=grid.crs, dst_nodata=np.nan, resampling=resampling)
    np.copyto(out, warped, where=np.isnan(out))


def _read_affine(source, grid, out, scratch):
    """Resample ``source`` onto ``grid`` bilinearly through its pixel map, if it applies (else False).
    No-data pixels (and those outside the file) are left out of the kernel: a pixel takes the weighted
    mean of its valid neighbours when they carry at least half the weight, else it has no data."""
    if grid.width * grid.height > AFFINE_MAX_PIXELS:
        return False
    pixel_map = source.pixel_map(grid)
    if pixel_map is None:
        return False
    a, b, c, d, e, f = pixel_map
    if max(math.hypot(a, d), math.hypot(b, e)) > AFFINE_MAX_SCALE:
        return False
    # the file window under the grid's corners, a pixel wider all round than the bilinear neighbours
    xs = [c + a * col + b * row for col in (0, grid.width - 1) for row in (0, grid.height - 1)]
    ys = [f + d * col + e * row for col in (0, grid.width - 1) for row in (0, grid.height - 1)]
    col0, row0 = math.floor(min(xs)) - 1, math.floor(min(ys)) - 1
    values = _read_padded(source.dataset, col0, row0, math.floor(max(xs)) + 3 - col0,
                          math.floor(max(ys)) + 3 - row0, scratch)
    resampled = scratch.bilinear(values, (a, b, c - col0, d, e, f - row0), grid.shape)
    np.copyto(out, resampled, where=np.isnan(out))
    return True


def _read_padded(dataset, col0, row0, width, height, scratch):
    """The file's pixels in that window as float32, NaN for no-data and for pixels outside the file."""
    left, top = max(col0, 0), max(row0, 0)
    right, bottom = min(col0 + width, dataset.width), min(row0 + height, dataset.height)
    if (left, top, right, bottom) == (col0, row0, col0 + width, row0 + height):
        values = dataset.read(1, window=Window(col0, row0, width, height), out=scratch.window(height, width))
    else:
        values = np.full((height, width), np.nan, dtype=np.float32)
        if right > left and bottom > top:
            values[top - row0:bottom - row0, left - col0:right - col0] = dataset.read(
                1, window=Window(left, top, right - left, bottom - top), out_dtype=np.float32)
    if dataset.nodata is not None:
        values[values == dataset.nodata] = np.nan
    return values


class _Scratch:
    """Buffers for the reads, kept from one grid to the next: fresh large arrays cost page faults,
    which on some hosts (virtual machines) take longer than the arithmetic. Like the rasterio datasets
    beside it, a Dem is read by one thread at a time."""

    def __init__(self):
        self._window = np.empty(0, dtype=np.float32)
        self._shape = None

    def window(self, height, width):
        if self._window.size < height * width:
            self._window = np.empty(height * width, dtype=np.float32)
        return self._window[:height * width].reshape(height, width)

    def bilinear(self, values, pixel_map, shape):
        """``values`` sampled bilinearly at ``x = a*col + b*row + c``, ``y = d*col + e*row + f`` for each
        pixel of ``shape`` (positions at least one pixel inside ``values``), no-data as in _read_affine.
        The result is a buffer of this object: valid until the next call."""
        if self._shape != shape:
            self._shape = shape
            self._fx, self._fy, self._v1, self._v2, self._result = (np.empty(shape, np.float32) for _ in range(5))
            self._col, self._flat = np.empty(shape, np.intp), np.empty(shape, np.intp)
        a, b, c, d, e, f = pixel_map
        cols, rows = np.arange(shape[1], dtype=np.float64), np.arange(shape[0], dtype=np.float64)
        fx, fy, whole, flat = self._fx, self._fy, self._v1, self._flat
        np.add((a * cols).astype(np.float32), (b * rows + c).astype(np.float32)[:, None], out=fx)
        np.add((d * cols).astype(np.float32), (e * rows + f).astype(np.float32)[:, None], out=fy)
        np.floor(fx, out=whole)
        fx -= whole                                   # fractions of a pixel to the right neighbour
        np.copyto(self._col, whole, casting="unsafe")
        np.floor(fy, out=whole)
        fy -= whole
        np.copyto(flat, whole, casting="unsafe")
        flat *= values.shape[1]
        flat += self._col                             # flat index of the top-left neighbour
        self._interpolate(values, self._result)
        # a NaN neighbour made the result NaN, even at no weight: recompute the pixels with a valid one
        holes = np.flatnonzero(np.isnan(self._result))
        if holes.size:
            missing = np.isnan(values)
            none_valid = np.ones(values.shape, bool)   # at the top-left neighbour's place: all four are NaN
            none_valid[:-1, :-1] = missing[:-1, :-1] & missing[:-1, 1:] & missing[1:, :-1] & missing[1:, 1:]
            holes = holes[~none_valid.ravel()[flat.ravel()[holes]]]
            self._result.ravel()[holes] = _without_nodata(values.ravel(), values.shape[1], flat.ravel()[holes],
                                                          fx.ravel()[holes], fy.ravel()[holes])
        return self._result

    def _interpolate(self, values, out):
        width, flat, v1, v2 = values.shape[1], self._flat, self._v1, self._v2
        pixels = values.ravel()
        pixels.take(flat, out=out, mode="clip")               # top left
        pixels[1:].take(flat, out=v1, mode="clip")            # top right
        v1 -= out
        v1 *= self._fx
        out += v1                                             # along the top row
        pixels[width:].take(flat, out=v1, mode="clip")        # bottom left
        pixels[width + 1:].take(flat, out=v2, mode="clip")    # bottom right
        v2 -= v1
        v2 *= self._fx
        v1 += v2                                              # along the bottom row
        v1 -= out
        v1 *= self._fy
        out += v1


def _without_nodata(pixels, width, flat, fx, fy):
    """Bilinear values at those positions from the valid neighbours, reweighted; NaN where they weigh
    less than half."""
    neighbours = np.stack((pixels[flat], pixels[flat + 1], pixels[flat + width], pixels[flat + width + 1]))
    weights = np.stack(((1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy))
    weights[np.isnan(neighbours)] = 0
    total = weights.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.nansum(neighbours * weights, axis=0) / total
    values[total < 0.5] = np.nan
    return values
