"""Training and evaluation scenes of three styles, for the bundled model and the benchmarks.

- ``a``: ``geodata.make_scene`` as it is (EPSG:2959 at 3 m).
- ``a2``: the same generator with other parameters, changed after the fact: a finer pixel (2 m), relief
  scaled and the whole DEM lifted (``RELIEF_A2``, ``OFFSET_A2_M``), and everything reprojected to WGS 84 /
  UTM 18N (EPSG:32618). A variation of one generator: it varies pixel size, relief, absolute height and
  CRS, not terrain or lake shapes.
- ``b``: ``geodata.make_scene_b``, an independently designed generator (ridged terrain, braided river,
  lobed lakes, EPSG:32618 at 2 m). The bundled model is trained on ``a`` and ``a2`` only, so ``b``
  measures it on a style it has never seen.
"""
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.warp import Resampling, calculate_default_transform, reproject

from ..geodata import make_scene
from ..geodata.scene_b import make_scene_b

STYLES = ("a", "a2", "b")
RELIEF_A2 = 2.5
OFFSET_A2_M = 800.0
CRS_A2 = "EPSG:32618"
PX_A2 = 2.0


def style_a(outdir, seed, size_m=6000):
    """A scene of the project's generator as it is: {"dem", "hydro", "waterbodies", ...} paths."""
    return make_scene(outdir, seed=seed, size_m=size_m)


def style_a2(outdir, seed, size_m=6000):
    """The variant of style a described in the module docstring; the same keys as ``style_a``."""
    outdir = Path(outdir)
    paths = make_scene(outdir / "source", seed=seed, size_m=size_m, px_size=PX_A2)
    with rasterio.open(paths["dem"]) as src:
        data = src.read(1)
        nodata = src.nodata
        valid = data != nodata
        median = float(np.median(data[valid]))
        data = np.where(valid, (data - median) * RELIEF_A2 + median + OFFSET_A2_M, nodata).astype(np.float32)
        transform, width, height = calculate_default_transform(src.crs, CRS_A2, src.width, src.height, *src.bounds,
                                                               resolution=PX_A2)
        profile = dict(src.profile, crs=CRS_A2, transform=transform, width=width, height=height)
        out = np.full((height, width), nodata, dtype=np.float32)
        reproject(data, out, src_transform=src.transform, src_crs=src.crs, dst_transform=transform, dst_crs=CRS_A2,
                  resampling=Resampling.bilinear, src_nodata=nodata, dst_nodata=nodata)
    result = {"dem": outdir / "dem.tif"}
    with rasterio.open(result["dem"], "w", **profile) as dst:
        dst.write(out, 1)
    for name in ("hydro", "waterbodies"):
        result[name] = outdir / f"{name}.geojson"
        gpd.read_file(paths[name]).to_crs(CRS_A2).to_file(result[name], driver="GeoJSON")
    return result


def style_b(outdir, seed, size_m=6000):
    """A scene of the independent generator ``geodata.make_scene_b``; the same keys as ``style_a``."""
    return make_scene_b(outdir, seed=seed, size_m=size_m)


def make_styled_scene(style, outdir, seed, size_m=6000):
    makers = {"a": style_a, "a2": style_a2, "b": style_b}
    if style not in makers:
        raise ValueError(f"unknown scene style {style!r}; use one of {STYLES}")
    return makers[style](outdir, seed, size_m)
