"""Cut inputs down to an area before any work: DEM crops, NetCDF DEMs, vector clips.

An ``Extent`` is a rectangle given one of three ways:

- ``"lonlat"``: longitude (x) and latitude (y) in degrees (EPSG:4326);
- ``"map"``: x and y in the data's own CRS (the DEM's, or a vector layer's own);
- ``"pixels"``: column (x) and row (y) indices of the DEM as stored in its file.

Both ends of a range are included; an axis left out (None) keeps the data's whole range on it.

``crop_dem`` cuts a GeoTIFF with a rasterio window (read and written in strips, so memory follows the
strip, not the file), or converts a CF NetCDF elevation variable (a local file or an OPeNDAP address)
to a north-up GeoTIFF with xarray/rioxarray, reading only the window. ``clip_vector`` clips a polygon
layer with geopandas and writes RFC 7946 GeoJSON with the project's one writer.

Problems a user can fix raise ``LakesError``; an extent that misses the data raises ``OutsideError``
(a LakesError) naming both.
"""
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from pyproj import CRS
from rasterio.errors import RasterioIOError
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from ..errors import LakesError
from ..limits import DEFAULT_LIMITS
from .grid import SNAP_TOLERANCE, crs_string
from .vectors import GEOJSON_SUFFIXES, read_vector, write_geojson

UNITS = ("lonlat", "map", "pixels")
LONLAT = "EPSG:4326"
NETCDF_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05", b"\x89HDF\r\n\x1a\n")
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
STRIP_PIXELS = 4_000_000  # pixels per read/write strip of a GeoTIFF crop
# CF standard names that mean "elevation of the ground": picked when a NetCDF file has several grids.
ELEVATION_NAMES = ("surface_altitude", "altitude", "height_above_mean_sea_level", "height_above_geoid",
                   "height_above_reference_ellipsoid", "height", "elevation")
X_DIMS = ("x", "lon", "longitude", "rlon", "easting")
Y_DIMS = ("y", "lat", "latitude", "rlat", "northing")


class OutsideError(LakesError):
    """The extent does not overlap the data."""


@dataclass(frozen=True)
class Extent:
    """A rectangle: ``x`` and ``y`` ranges ``(start, end)`` in ``units``; None keeps the whole axis."""

    x: tuple | None = None
    y: tuple | None = None
    units: str = "lonlat"
    label: str = "the domain"

    def __post_init__(self):
        if self.units not in UNITS:
            raise ValueError(f"units must be one of {UNITS}, not {self.units!r}")
        for axis in ("x", "y"):
            value = getattr(self, axis)
            if value is None:
                continue
            low, high = sorted(float(v) for v in value)
            if not (math.isfinite(low) and math.isfinite(high)):
                raise LakesError(f"{self.label}: the {axis} range must be finite numbers")
            if self.units == "pixels":
                if low != int(low) or high != int(high) or low < 0:
                    raise LakesError(f"{self.label}: indices must be whole numbers from 0 up")
                low, high = int(low), int(high)
            object.__setattr__(self, axis, (low, high))

    def describe(self):
        names = {"lonlat": ("lon", "lat"), "map": ("x", "y"), "pixels": ("column", "row")}[self.units]
        parts = [f"{name} {rng[0]:.10g} to {rng[1]:.10g}" for name, rng in zip(names, (self.x, self.y), strict=True)
                 if rng is not None]
        return f"{self.label} ({', '.join(parts) or 'everywhere'})"


@dataclass(frozen=True)
class Area:
    """A bounding box ``(xmin, ymin, xmax, ymax)`` in ``crs``."""

    bounds: tuple
    crs: str


@dataclass(frozen=True)
class Cropped:
    """A DEM cut to an extent: the GeoTIFF written (or the source when nothing was cut) and its area."""

    path: Path
    area: Area
    shape: tuple  # (height, width)


# ---------------------------------------------------------------------------------------------
# formats


def raster_format(path):
    """``"geotiff"``, ``"netcdf"`` or None, from the file's first bytes (not its name)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return None
    if head.startswith(TIFF_MAGIC):
        return "geotiff"
    if head.startswith(NETCDF_MAGIC):
        return "netcdf"
    return None


def _is_url(source):
    return isinstance(source, str) and source.split(":", 1)[0].lower() in ("http", "https")


def _name(source):
    if _is_url(source):
        return source.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "the OPeNDAP dataset"
    return Path(source).name


# ---------------------------------------------------------------------------------------------
# DEM


def crop_dem(source, outpath, extent=None, variable=None, limits=DEFAULT_LIMITS):
    """Cut a DEM to ``extent`` into the GeoTIFF ``outpath``; returns a ``Cropped``.

    ``source``: a GeoTIFF, a NetCDF file, or an OPeNDAP address (http/https, read lazily). A GeoTIFF
    with no extent is returned as it is (nothing written); a NetCDF source is always converted.
    ``variable``: the NetCDF variable holding the elevation (default: the one grid variable, or the
    one whose standard_name says elevation).
    """
    if _is_url(source) or raster_format(source) == "netcdf":
        return _netcdf_to_geotiff(source, Path(outpath), extent, variable, limits)
    return _crop_geotiff(Path(source), Path(outpath), extent, limits)


def _crop_geotiff(path, outpath, extent, limits):
    name = path.name
    if not path.is_file():
        raise LakesError(f"DEM file {name!r} was not found")
    try:
        src = rasterio.open(path, driver="GTiff")
    except RasterioIOError:
        raise LakesError(f"{name} is neither a GeoTIFF nor a NetCDF file; give the DEM as a GeoTIFF or as a CF "
                         "NetCDF elevation variable") from None
    with src:
        if src.crs is None or src.transform.is_identity:
            raise LakesError(f"{name} has no coordinate reference system or no georeferencing; give a "
                             "georeferenced GeoTIFF")
        crs = crs_string(src.crs)
        if extent is None:
            return Cropped(path, Area(tuple(src.bounds), crs), (src.height, src.width))
        window = pixel_window(src.transform, crs, src.width, src.height, extent, name)
        limits.check("max_raster_pixels", int(window.width * window.height),
                     f"the size in pixels of {name} cut to {extent.describe()}")
        transform = window_transform(window, src.transform)
        profile = {"driver": "GTiff", "width": window.width, "height": window.height, "count": 1,
                   "dtype": src.dtypes[0], "crs": src.crs, "transform": transform, "nodata": src.nodata,
                   "compress": "deflate", "BIGTIFF": "IF_SAFER"}
        if window.width >= 256 and window.height >= 256:
            profile.update(tiled=True, blockxsize=256, blockysize=256)
        outpath.parent.mkdir(parents=True, exist_ok=True)
        rows = max(1, STRIP_PIXELS // max(window.width, 1))
        with rasterio.open(outpath, "w", **profile) as dst:
            for top in range(0, window.height, rows):
                height = min(rows, window.height - top)
                part = src.read(1, window=Window(window.col_off, window.row_off + top, window.width, height))
                dst.write(part, 1, window=Window(0, top, window.width, height))
        return Cropped(outpath, Area(_bounds(transform, window.width, window.height), crs),
                       (window.height, window.width))


def pixel_window(transform, crs, width, height, extent, name="the raster"):
    """The window of a ``width`` x ``height`` raster that covers ``extent``, snapped outward to whole
    pixels and clipped to the raster; OutsideError if nothing is left."""
    if extent.units == "pixels":
        cols = extent.x or (0, width - 1)
        rows = extent.y or (0, height - 1)
        col0, col1 = max(cols[0], 0), min(cols[1], width - 1)
        row0, row1 = max(rows[0], 0), min(rows[1], height - 1)
        if col0 > col1 or row0 > row1:
            raise OutsideError(f"{extent.describe()} lies outside {name}, which has {width} columns and {height} "
                               "rows (indices from 0)")
        return Window(col0, row0, col1 - col0 + 1, row1 - row0 + 1)
    bounds = _bounds(transform, width, height)
    target = target_bounds(extent, bounds, crs)
    inverse = ~transform
    corners = [inverse @ (x, y) for x in (target[0], target[2]) for y in (target[1], target[3])]
    cols = [c for c, _ in corners]
    rows = [r for _, r in corners]
    col0, col1 = _snap_floor(min(cols)), _snap_ceil(max(cols))
    row0, row1 = _snap_floor(min(rows)), _snap_ceil(max(rows))
    col0, row0 = max(col0, 0), max(row0, 0)
    col1, row1 = min(col1, width), min(row1, height)
    if col1 <= col0 or row1 <= row0:
        raise OutsideError(f"{extent.describe()} lies outside {name}, which covers {_describe_bounds(bounds, crs)}")
    return Window(col0, row0, col1 - col0, row1 - row0)


def target_bounds(extent, data_bounds, crs):
    """``extent`` (lonlat or map units) as bounds in ``crs``; open axes take ``data_bounds`` (in ``crs``)."""
    if extent.units == "map":
        x = extent.x or (data_bounds[0], data_bounds[2])
        y = extent.y or (data_bounds[1], data_bounds[3])
        return (x[0], y[0], x[1], y[1])
    if extent.units != "lonlat":
        raise ValueError("target_bounds takes lonlat or map units")
    lon0, lat0, lon1, lat1 = transform_bounds(crs, LONLAT, *data_bounds, densify_pts=21)
    x = extent.x or (lon0, lon1)
    y = extent.y or (lat0, lat1)
    geographic = CRS.from_user_input(crs).is_geographic
    if geographic and data_bounds[2] > 180 and x[1] < 0:  # a 0..360 longitude grid
        x = (x[0] + 360, x[1] + 360)
    y = (max(y[0], -90.0), min(y[1], 90.0))
    if crs_string(crs) == LONLAT or (geographic and data_bounds[2] > 180):
        return (x[0], y[0], x[1], y[1])
    return transform_bounds(LONLAT, crs, x[0], y[0], x[1], y[1], densify_pts=21)


def _snap_floor(value):
    nearest = round(value)
    return int(nearest) if abs(value - nearest) <= SNAP_TOLERANCE else math.floor(value)


def _snap_ceil(value):
    nearest = round(value)
    return int(nearest) if abs(value - nearest) <= SNAP_TOLERANCE else math.ceil(value)


def _bounds(transform, width, height):
    xs, ys = zip(*(transform @ (c, r) for c in (0, width) for r in (0, height)), strict=True)
    return (min(xs), min(ys), max(xs), max(ys))


def _describe_bounds(bounds, crs):
    if CRS.from_user_input(crs).is_geographic:
        return f"lon {bounds[0]:.5f} to {bounds[2]:.5f}, lat {bounds[1]:.5f} to {bounds[3]:.5f}"
    try:
        lon0, lat0, lon1, lat1 = transform_bounds(crs, LONLAT, *bounds, densify_pts=21)
        lonlat = f"; lon {lon0:.5f} to {lon1:.5f}, lat {lat0:.5f} to {lat1:.5f}"
    except Exception:  # a CRS without a path to lon/lat: the map bounds alone say enough
        lonlat = ""
    return f"x {bounds[0]:.1f} to {bounds[2]:.1f}, y {bounds[1]:.1f} to {bounds[3]:.1f} in {crs}{lonlat}"


# ---------------------------------------------------------------------------------------------
# NetCDF


def _netcdf_to_geotiff(source, outpath, extent, variable, limits):
    import rioxarray  # noqa: F401  (registers the .rio accessor)
    import xarray as xr

    name = _name(source)
    try:
        dataset = xr.open_dataset(source, engine="netcdf4", decode_coords="all", decode_times=False,
                                  mask_and_scale=True)
    except FileNotFoundError:
        raise LakesError(f"DEM file {name!r} was not found") from None
    except (OSError, ValueError, RuntimeError):
        raise LakesError(f"{name} could not be read as NetCDF (a file, or an OPeNDAP address answering DAP)") \
            from None
    with dataset:
        grid = _elevation(dataset, variable, name)
        xdim, ydim = grid.rio.x_dim, grid.rio.y_dim
        crs = grid.rio.crs
        if crs is None:
            if xdim.lower() in ("lon", "longitude") and ydim.lower() in ("lat", "latitude"):
                crs = LONLAT  # CF: latitude/longitude coordinates without a grid mapping are geographic
            else:
                raise LakesError(f"{name}: variable {grid.name!r} has no CF grid_mapping saying its CRS; add one "
                                 "(e.g. a crs variable with crs_wkt or spatial_ref) and name it in grid_mapping")
        crs = crs_string(crs)
        width, height = grid.sizes[xdim], grid.sizes[ydim]
        if width < 2 or height < 2:
            raise LakesError(f"{name}: variable {grid.name!r} needs at least 2 x 2 cells to be a DEM")
        transform = grid.rio.transform(recalc=True)
        if transform.b != 0 or transform.d != 0:
            raise LakesError(f"{name}: variable {grid.name!r} is not on a regular grid")
        if extent is None:
            window = Window(0, 0, width, height)
        else:
            window = pixel_window(transform, crs, width, height, extent, name)
        limits.check("max_raster_pixels", int(window.width * window.height),
                     f"the size in pixels of {name}" + (f" cut to {extent.describe()}" if extent else ""))
        cut = grid.isel({xdim: slice(window.col_off, window.col_off + window.width),
                         ydim: slice(window.row_off, window.row_off + window.height)})
        try:
            values = cut.astype("float32").load()
        except (OSError, RuntimeError):
            raise LakesError(f"{name}: the values of {grid.name!r} could not be read") from None
    if transform.e > 0:  # rows stored south to north: flip to a north-up GeoTIFF
        values = values.isel({ydim: slice(None, None, -1)})
    values.attrs = {}
    values.encoding = {}
    values = values.rio.write_crs(crs).rio.write_nodata(np.nan, encoded=False)
    out_transform = values.rio.transform(recalc=True)
    outpath.parent.mkdir(parents=True, exist_ok=True)
    values.rio.to_raster(outpath, driver="GTiff", compress="deflate", dtype="float32")
    return Cropped(outpath, Area(_bounds(out_transform, window.width, window.height), crs),
                   (window.height, window.width))


def _elevation(dataset, variable, name):
    """The elevation grid of a NetCDF dataset, squeezed to its two spatial dimensions."""
    candidates = {str(key): var for key, var in dataset.data_vars.items() if _spatial_dims(var) is not None}
    if variable is not None:
        if variable not in dataset.data_vars:
            raise LakesError(f"{name} has no variable {variable!r}; its variables are "
                             f"{', '.join(map(str, dataset.data_vars)) or 'none'}")
        if variable not in candidates:
            raise LakesError(f"{name}: variable {variable!r} is not a 2-D grid over x/y or lon/lat")
        chosen = candidates[variable]
    elif len(candidates) == 1:
        chosen = next(iter(candidates.values()))
    else:
        named = [v for v in candidates.values() if v.attrs.get("standard_name") in ELEVATION_NAMES]
        if len(named) != 1:
            found = ", ".join(candidates) or "none"
            raise LakesError(f"{name}: cannot tell which variable is the elevation (grids found: {found}); name it "
                             "with the dem_variable parameter")
        chosen = named[0]
    xdim, ydim = _spatial_dims(chosen)
    extra = [d for d in chosen.dims if d not in (xdim, ydim)]
    for dim in extra:
        if chosen.sizes[dim] != 1:
            raise LakesError(f"{name}: variable {chosen.name!r} has {chosen.sizes[dim]} steps along {dim!r}; a DEM "
                             "has one value per cell: give a file with a single step")
    chosen = chosen.isel({d: 0 for d in extra}).transpose(ydim, xdim)
    return chosen.rio.set_spatial_dims(x_dim=xdim, y_dim=ydim)


def _spatial_dims(var):
    dims = {str(d).lower(): str(d) for d in var.dims}
    xdim = next((dims[d] for d in X_DIMS if d in dims), None)
    ydim = next((dims[d] for d in Y_DIMS if d in dims), None)
    if xdim is None or ydim is None:
        return None
    return xdim, ydim


def netcdf_to_geotiff(source, outpath, variable=None, extent=None, limits=DEFAULT_LIMITS):
    """A CF NetCDF elevation variable (file or OPeNDAP address) as a north-up float32 GeoTIFF."""
    return _netcdf_to_geotiff(source, Path(outpath), extent, variable, limits)


# ---------------------------------------------------------------------------------------------
# vectors


def vector_crs(path):
    """The CRS a vector file is written in (RFC 7946 GeoJSON: EPSG:4326)."""
    import json

    import pyogrio

    from .vectors import _geojson_crs

    path = Path(path)
    if path.suffix.lower() in GEOJSON_SUFFIXES:
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            raise LakesError(f"{path.name} is not valid JSON") from None
        return _geojson_crs(data.get("crs") if isinstance(data, dict) else None, path.name)
    try:
        crs = pyogrio.read_info(path)["crs"]
    except Exception:
        raise LakesError(f"{path.name} could not be read as a vector dataset") from None
    if not crs:
        raise LakesError(f"{path.name} has no coordinate reference system")
    return crs_string(crs)


def clip_vector(path, outpath, extent=None, area=None, limits=DEFAULT_LIMITS):
    """Clip a polygon layer to ``extent`` (lonlat or map units) or to ``area``; writes GeoJSON.

    Map units are the layer's own CRS. A pixel extent needs the DEM it refers to: pass the
    ``Cropped.area`` of that DEM as ``area`` instead. Returns the path written.
    """
    import geopandas as gpd
    from shapely.geometry import box

    path = Path(path)
    if area is None:
        if extent is None:
            raise ValueError("give an extent or an area")
        if extent.units == "pixels":
            raise LakesError(f"{extent.describe()} is given in DEM pixel indices; a vector layer alone cannot be cut "
                             "by it: give the DEM as well, or the domain in lat/lon")
        crs = LONLAT if extent.units == "lonlat" else vector_crs(path)
        layer = read_vector(path, srs=crs, limits=limits)
        xmin, ymin, xmax, ymax = layer.total_bounds
        x = extent.x or (xmin, xmax)
        y = extent.y or (ymin, ymax)
        bounds, label = (x[0], y[0], x[1], y[1]), extent.describe()
    else:
        crs = area.crs
        layer = read_vector(path, srs=crs, limits=limits)
        bounds = area.bounds
        label = extent.describe() if extent is not None else "the area"
    clipped = gpd.clip(layer, box(*bounds), keep_geom_type=True)
    clipped = clipped[~clipped.geometry.is_empty & clipped.geometry.notna()]
    if clipped.empty:
        have = layer.total_bounds
        raise OutsideError(f"{label} does not overlap {path.name}, which covers {_describe_bounds(have, crs)}")
    outpath = Path(outpath)
    outpath.parent.mkdir(parents=True, exist_ok=True)
    return write_geojson(clipped.sort_index(), outpath)
