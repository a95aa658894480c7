"""DEM variants of a synthetic scene: the DEMs users actually have, made from a scene's hydro-flattened one.

``degrade_dem(scene, variant)`` rewrites a ``make_scene`` scene's ``dem.tif`` into another file, from
the scene's own truth (``hydro.geojson``), so tests and benchmarks can split the same water with:

``flattened``         the scene's DEM as made: every lake at one exact level, rivers descending;
``noise1`` .. ``noise20``  LiDAR-like Gaussian noise of 1, 5, 10 or 20 cm on every pixel (not hydro-flattened);
``resampled``         bilinearly resampled into another CRS (EPSG:3979, 3 m), as a mosaic from another source;
``coarse10``, ``coarse30``  averaged to 10 m or 30 m pixels, coarser than the vector;
``stepped``           rivers hydro-flattened in level steps of 0.25 m (lakes unchanged);
``tin``               water surfaces interpolated across from the shore heights (TIN-like triangles);
``nodata``            no data over the water.
"""
from pathlib import Path

import numpy as np
import rasterio
from rasterio.features import rasterize
from rasterio.warp import Resampling, calculate_default_transform, reproject
from scipy import interpolate, ndimage

from ..errors import LakesError
from .vectors import LAKE, RIVER, TYPECE, read_vector

NOISE_CM = {"noise1": 1, "noise5": 5, "noise10": 10, "noise20": 20}
VARIANTS = ("flattened", *NOISE_CM, "resampled", "coarse10", "coarse30", "stepped", "tin", "nodata")
RESAMPLED_CRS = "EPSG:3979"  # Canada Atlas Lambert: another CRS, rotated against UTM 18N
RIVER_STEP_M = 0.25


def degrade_dem(scene, variant, seed=0, out=None):
    """Write the ``variant`` of the scene's DEM (``scene``: the paths ``make_scene`` returned) to ``out``
    (default ``dem_<variant>.tif`` beside it); returns its path."""
    if variant not in VARIANTS:
        raise LakesError(f"unknown DEM variant {variant!r}; use one of: {', '.join(VARIANTS)}")
    source = Path(scene["dem"])
    out = Path(out or source.with_name(f"dem_{variant}.tif"))
    with rasterio.open(source) as src:
        profile = src.profile
        dem = src.read(1, masked=True).astype(np.float64).filled(np.nan)
        truth = read_vector(scene["hydro"], srs=src.crs.to_string())
        lake, river = (rasterize(truth.geometry[truth[TYPECE] == code], out_shape=dem.shape,
                                 transform=src.transform, fill=0, dtype="uint8").astype(bool)
                       if (truth[TYPECE] == code).any() else np.zeros(dem.shape, bool) for code in (LAKE, RIVER))
        rng = np.random.default_rng(seed)
        if variant in NOISE_CM:
            dem += rng.normal(0.0, NOISE_CM[variant] / 100.0, dem.shape)
        elif variant == "stepped":
            dem[river] = np.floor(dem[river] / RIVER_STEP_M) * RIVER_STEP_M
        elif variant == "tin":
            dem = _tin_water(dem, lake | river)
        elif variant == "nodata":
            dem[lake | river] = np.nan
        if variant in ("resampled", "coarse10", "coarse30"):
            return _reprojected(src, dem, out, variant)
    _write(out, profile, dem, profile["transform"], profile["crs"])
    return out


def _tin_water(dem, water):
    """Water pixels linearly interpolated (Delaunay triangles) from the heights of the land along the shore."""
    shore = ndimage.binary_dilation(water) & ~water & np.isfinite(dem)
    rows, cols = np.nonzero(shore)
    wrows, wcols = np.nonzero(water)
    filled = interpolate.griddata((rows, cols), dem[rows, cols], (wrows, wcols), method="linear")
    nearest = interpolate.griddata((rows, cols), dem[rows, cols], (wrows, wcols), method="nearest")
    dem = dem.copy()
    dem[wrows, wcols] = np.where(np.isfinite(filled), filled, nearest)
    return dem


def _reprojected(src, dem, out, variant):
    if variant == "resampled":
        crs, px, resampling = RESAMPLED_CRS, src.res[0], Resampling.bilinear
    else:
        crs, px, resampling = src.crs, float(variant[len("coarse"):]), Resampling.average
    transform, width, height = calculate_default_transform(src.crs, crs, src.width, src.height, *src.bounds,
                                                           resolution=px)
    target = np.full((height, width), np.nan)
    reproject(dem, target, src_transform=src.transform, src_crs=src.crs, src_nodata=np.nan,
              dst_transform=transform, dst_crs=crs, dst_nodata=np.nan, resampling=resampling)
    profile = dict(src.profile, width=width, height=height)
    _write(out, profile, target, transform, crs)
    return out


def _write(path, profile, dem, transform, crs):
    nodata = profile.get("nodata") or -9999.0
    profile = dict(profile, transform=transform, crs=crs, nodata=nodata, dtype="float32")
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.where(np.isfinite(dem), dem, nodata).astype(np.float32), 1)
