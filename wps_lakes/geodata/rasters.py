"""open_dem(): one or several adjacent GeoTIFFs read through the work grid.

``Dem.read(grid)`` fills exactly the grid asked for, whatever the source rasters' CRS and resolution.
A source already on the work lattice is read with plain windowed reads; any other is seen through a
GDAL warped VRT (bilinear) laid on the mosaic's grid, set up once, which warps only the blocks a read
needs. Either way memory follows the grid asked for, not the files. A grid off the mosaic's lattice
(another CRS or pixel size) is warped on its own from each source.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio._err import CPLE_BaseError
from rasterio.enums import Resampling
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window

from ..errors import LakesError
from ..limits import DEFAULT_LIMITS
from .grid import SNAP_TOLERANCE, Grid, crs_string

# GDAL's block cache defaults to 5% of RAM; a small cap keeps memory flat while tiling big rasters.
GDAL_CACHE_BYTES = 16 * 2**20


@dataclass
class _Source:
    dataset: rasterio.DatasetReader
    bounds: tuple        # in the work SRS
    grid: Grid | None    # the file's own grid when it is on the work lattice (no resampling needed)
    view: rasterio.DatasetReader | WarpedVRT | None = None  # windowed reads on ``grid`` come from here


class Dem:
    """A DEM mosaic seen through the work grid; use as a context manager (closes the files)."""

    def __init__(self, sources, grid):
        self._sources = sources
        self.grid = grid

    def read(self, grid, resampling=Resampling.bilinear):
        """Elevations on ``grid`` as a float32 masked array; nodata and pixels outside every file are masked.
        ``resampling`` applies where ``grid`` is off the DEM's lattice (nearest: a fast preview)."""
        out = np.full(grid.shape, np.nan, dtype=np.float32)
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
            for source in self._sources:
                if not _overlap(source.bounds, grid.bounds):
                    continue
                try:
                    if grid.is_aligned_with(source.grid):
                        _read_window(source, grid, out)
                    else:
                        _read_warped(source, grid, out, resampling)
                except (RasterioError, CPLE_BaseError):
                    raise _damaged(source.dataset) from None
        return np.ma.masked_invalid(out, copy=False)

    def close(self):
        for source in self._sources:
            if source.view is not source.dataset:
                source.view.close()
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
            sources.append(_open_source(Path(path), srs, px_size))
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
    for source in sources:
        if source.grid is None:
            source.grid = grid
            source.view = WarpedVRT(source.dataset, crs=grid.crs, transform=grid.transform, width=grid.width,
                                    height=grid.height, resampling=Resampling.bilinear,
                                    src_nodata=source.dataset.nodata, nodata=np.nan, dtype="float32")
        else:
            source.view = source.dataset
    return Dem(sources, grid)


def _open_source(path, srs, px_size):
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
    bounds = transform_bounds(dataset.crs, srs, *dataset.bounds, densify_pts=21)
    return _Source(dataset, bounds, _lattice_grid(dataset, srs, px_size))


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


def _lattice_grid(dataset, srs, px_size):
    """The file's own grid if it is north-up on the work lattice in the work SRS, else None."""
    t = dataset.transform
    if crs_string(dataset.crs) != srs or t.b != 0 or t.d != 0 \
            or not np.isclose(t.a, px_size) or not np.isclose(t.e, -px_size):
        return None
    col, row = t.c / px_size, t.f / px_size
    if abs(col - round(col)) > SNAP_TOLERANCE or abs(row - round(row)) > SNAP_TOLERANCE:
        return None
    return Grid(round(col) * px_size, round(row) * px_size, px_size, dataset.width, dataset.height, srs)


def _overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _read_window(source, grid, out):
    part = source.grid.intersection(grid)
    if part is None:
        return
    col, row = part.offset_in(source.grid)
    values = source.view.read(1, window=Window(col, row, part.width, part.height), out_dtype=np.float32)
    if source.view.nodata is not None:
        values[values == source.view.nodata] = np.nan
    col, row = part.offset_in(grid)
    target = out[row:row + part.height, col:col + part.width]
    np.copyto(target, values, where=np.isnan(target))


def _read_warped(source, grid, out, resampling=Resampling.bilinear):
    warped = np.full(grid.shape, np.nan, dtype=np.float32)
    reproject(rasterio.band(source.dataset, 1), warped, src_nodata=source.dataset.nodata,
              dst_transform=grid.transform, dst_crs=grid.crs, dst_nodata=np.nan, resampling=resampling)
    np.copyto(out, warped, where=np.isnan(out))
