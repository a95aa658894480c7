"""Training and evaluation scenes of two styles, for the bundled model and the benchmarks.

``style_a``: ``geodata.make_scene`` as it is (EPSG:2959 at 3 m). ``style_b``: the same generator with
other parameters, changed after the fact: a finer pixel (2 m), relief scaled and the whole DEM lifted
(``RELIEF_B``, ``OFFSET_B_M``), and everything reprojected to WGS 84 / UTM 18N (EPSG:32618). It is a
variation of one generator, not an independently designed one: it checks pixel size, relief, absolute
height and CRS, not terrain or lake shapes another generator would draw.
"""
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.warp import Resampling, calculate_default_transform, reproject

from ..geodata import make_scene

STYLES = ("a", "b")
RELIEF_B = 2.5
OFFSET_B_M = 800.0
CRS_B = "EPSG:32618"
PX_B = 2.0


def style_a(outdir, seed, size_m=6000):
    """A scene of the project's generator as it is: {"dem", "hydro", "waterbodies", ...} paths."""
    return make_scene(outdir, seed=seed, size_m=size_m)


def style_b(outdir, seed, size_m=6000):
    """The variant described in the module docstring; the same keys as ``style_a``."""
    outdir = Path(outdir)
    paths = make_scene(outdir / "source", seed=seed, size_m=size_m, px_size=PX_B)
    with rasterio.open(paths["dem"]) as src:
        data = src.read(1)
        nodata = src.nodata
        valid = data != nodata
        median = float(np.median(data[valid]))
        data = np.where(valid, (data - median) * RELIEF_B + median + OFFSET_B_M, nodata).astype(np.float32)
        transform, width, height = calculate_default_transform(src.crs, CRS_B, src.width, src.height, *src.bounds,
                                                               resolution=PX_B)
        profile = dict(src.profile, crs=CRS_B, transform=transform, width=width, height=height)
        out = np.full((height, width), nodata, dtype=np.float32)
        reproject(data, out, src_transform=src.transform, src_crs=src.crs, dst_transform=transform, dst_crs=CRS_B,
                  resampling=Resampling.bilinear, src_nodata=nodata, dst_nodata=nodata)
    result = {"dem": outdir / "dem.tif"}
    with rasterio.open(result["dem"], "w", **profile) as dst:
        dst.write(out, 1)
    for name in ("hydro", "waterbodies"):
        result[name] = outdir / f"{name}.geojson"
        gpd.read_file(paths[name]).to_crs(CRS_B).to_file(result[name], driver="GeoJSON")
    return result


def make_styled_scene(style, outdir, seed, size_m=6000):
    if style not in STYLES:
        raise ValueError(f"unknown scene style {style!r}; use one of {STYLES}")
    return (style_a if style == "a" else style_b)(outdir, seed, size_m)
