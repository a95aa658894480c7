"""Geodata benchmark: tensor building speed and tiling memory.

    .venv/bin/python -m benchmarks.bench_geodata            # full: 12 km scene, 20 000 px raster (1.6 GB in /tmp)
    .venv/bin/python -m benchmarks.bench_geodata --quick    # about a minute: 3 km scene, 6 000 px raster

Speed, on one core (the process pins itself to CPU 0): 500 px tiles of a synthetic scene through
``iter_tiles`` (read + rasterise + distance transform + scale), for the DEM as written (already on the
work lattice: plain windowed reads) and warped beforehand to EPSG:32618 (WGS 84 / UTM 18N: a datum
shift) and to EPSG:3979 (Canada Atlas Lambert: rotated 17.6 degrees), both resampled bilinearly per tile;
the EPSG:32618 case again with GDAL's warper doing every tile (the affine map turned off); and the raw
rasterio windowed read of the same windows, the physical limit. Targets: >= 20 Mpx/s.

Memory: all tiles of a small and a large float32 tiled GeoTIFF, each in a fresh subprocess that
reports its peak RSS. Targets: large < 1 GiB, growth from small to large < 20%.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import calculate_default_transform, reproject
from rasterio.windows import Window
from shapely.geometry import Point

from wps_lakes.geodata import iter_tiles, make_scene, open_dem, rasters, read_vector, tile_grids, write_geojson

TILE, OVERLAP = 500, 100
LAKE_SPACING_M = 1500.0   # hydro for the memory runs: one lake per tile-sized cell, so no tile is skipped


def tensor_speed(workdir, size_m, passes=3):
    """Mpx/s of iter_tiles (best of ``passes``) on a scene as written and reprojected, and of raw reads."""
    paths = make_scene(workdir / "scene", seed=0, size_m=size_m)
    water = read_vector(paths["hydro"])
    figures = {"scene_size_m": size_m, "tile_px": TILE}
    cases = {"on_lattice": paths["dem"],
             "reprojected": _warp(paths["dem"], workdir / "dem_32618.tif", "EPSG:32618"),
             "reprojected_rotated": _warp(paths["dem"], workdir / "dem_3979.tif", "EPSG:3979")}
    figures["tiles_with_water"] = {}   # the reprojected mosaics cover more ground (their corners)
    for name, dem_path in cases.items():
        figures[f"tensor_mpx_s_{name}"], figures["tiles_with_water"][name] = _tiles_speed(dem_path, water, passes)
    # the same without the affine map: every tile warped by GDAL (its error threshold cannot be met)
    tolerance, rasters.AFFINE_TOLERANCE_PX = rasters.AFFINE_TOLERANCE_PX, -1.0
    try:
        figures["tensor_mpx_s_reprojected_gdal"], _ = _tiles_speed(cases["reprojected"], water, passes)
    finally:
        rasters.AFFINE_TOLERANCE_PX = tolerance
    figures["raw_read_mpx_s"] = round(_raw_read_speed(paths["dem"], passes), 1)
    return figures


def _tiles_speed(dem_path, water, passes):
    best = 0.0
    for _ in range(passes):
        with open_dem(dem_path) as dem:
            start, pixels, tiles = time.perf_counter(), 0, 0
            for tile in iter_tiles(dem, water, TILE, OVERLAP):
                pixels += tile.tensor[0].size
                tiles += 1
            best = max(best, pixels / (time.perf_counter() - start) / 1e6)
    return round(best, 1), tiles


def _raw_read_speed(dem_path, passes):
    """rasterio windowed reads of the same tile windows (the part inside the file), same pixel count."""
    with open_dem(dem_path) as dem:
        grids = [grid for _, grid in tile_grids(dem.grid, TILE, OVERLAP)]
        raster = dem.grid
    best = 0.0
    for _ in range(passes):
        with rasterio.Env(GDAL_CACHEMAX=64 * 2**20), rasterio.open(dem_path) as src:
            start = time.perf_counter()
            for grid in grids:
                part = raster.intersection(grid)
                col, row = part.offset_in(raster)
                src.read(1, window=Window(col, row, part.width, part.height))
            best = max(best, len(grids) * TILE * TILE / (time.perf_counter() - start) / 1e6)
    return best


def _warp(src_path, dst_path, crs):
    with rasterio.open(src_path) as src:
        transform, width, height = calculate_default_transform(src.crs, crs, src.width, src.height, *src.bounds)
        profile = src.profile | dict(crs=crs, transform=transform, width=width, height=height)
        with rasterio.open(dst_path, "w", **profile) as dst:
            reproject(rasterio.band(src, 1), rasterio.band(dst, 1), resampling=Resampling.bilinear)
    return dst_path


def tiling_memory(workdir, small_px, large_px):
    """Peak RSS (MiB) of tiling a small and a large raster, each in its own process."""
    figures = {}
    for label, px in (("small", small_px), ("large", large_px)):
        dem_path, hydro_path = memory_inputs(workdir, px)
        out = subprocess.run([sys.executable, "-m", "benchmarks.bench_geodata", "--tile-only", str(dem_path),
                              str(hydro_path)], check=True, capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[1])
        result = json.loads(out.stdout.splitlines()[-1])
        figures[f"{label}_raster_px"] = px
        figures[f"{label}_raster_mb"] = round(dem_path.stat().st_size / 2**20)
        figures[f"{label}_peak_rss_mib"] = result["peak_rss_mib"]
        figures[f"{label}_tiles"] = result["tiles"]
        figures[f"{label}_seconds"] = result["seconds"]
        dem_path.unlink()
    figures["rss_growth_pct"] = round(100 * (figures["large_peak_rss_mib"] / figures["small_peak_rss_mib"] - 1), 1)
    return figures


def memory_inputs(workdir, px, water_px=None):
    """A px x px float32 tiled GeoTIFF of gentle terrain (written in strips) and lakes all over it, or
    only in its top-left ``water_px`` square (then every raster size has the same tiles with water)."""
    x0, y0 = 300_000.0, 5_100_000.0
    dem_path = workdir / f"dem_{px}.tif"
    profile = dict(driver="GTiff", width=px, height=px, count=1, dtype="float32", crs="EPSG:2959",
                   transform=rasterio.Affine(3.0, 0, x0, 0, -3.0, y0), nodata=-9999.0, tiled=True,
                   blockxsize=256, blockysize=256, BIGTIFF="IF_SAFER")
    cols = np.arange(px, dtype=np.float32)
    with rasterio.open(dem_path, "w", **profile) as out:
        for row in range(0, px, 1024):
            rows = np.arange(row, min(row + 1024, px), dtype=np.float32)[:, None]
            strip = 150 + 10 * np.sin(cols / 700) * np.cos(rows / 900) + 0.001 * (rows + cols)
            out.write(strip.astype(np.float32), 1, window=Window(0, row, px, len(rows)))
    centres = np.arange(LAKE_SPACING_M / 2, (water_px or px) * 3.0, LAKE_SPACING_M)
    lakes = [Point(x0 + cx, y0 - cy).buffer(120) for cx in centres for cy in centres]
    hydro = gpd.GeoDataFrame({"TYPECE": "21", "OBJECTID": np.arange(len(lakes))}, geometry=lakes, crs="EPSG:2959")
    hydro_path = write_geojson(hydro, workdir / f"hydro_{px}.geojson", crs="EPSG:2959")
    return dem_path, hydro_path


def _tile_only(dem_path, hydro_path):
    """Child process of tiling_memory: iterate every tile, report peak RSS."""
    water = read_vector(hydro_path)
    start, tiles = time.perf_counter(), 0
    with open_dem(dem_path) as dem:
        for tile in iter_tiles(dem, water, TILE, OVERLAP):
            tiles += 1
            assert tile.tensor.shape == (3, TILE, TILE)
    # VmHWM, not ru_maxrss: the latter keeps the parent's peak across fork + exec
    peak_kib = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("VmHWM:"))
    print(json.dumps({"peak_rss_mib": round(peak_kib / 1024), "tiles": tiles,
                      "seconds": round(time.perf_counter() - start, 1)}))


def run(quick=False):
    """All figures as a dict (also printed)."""
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})  # one core, given back below (make bench runs the others after)
    try:
        with tempfile.TemporaryDirectory(prefix="bench_geodata_", dir="/tmp") as tmp:
            workdir = Path(tmp)
            figures = {"machine": f"{os.cpu_count()}-core CPU, measured on 1 core",
                       **tensor_speed(workdir, 3000 if quick else 12_000),
                       **tiling_memory(workdir, 2000, 6000 if quick else 20_000)}
    finally:
        os.sched_setaffinity(0, cores)
    print(json.dumps(figures, indent=1))
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller scene and raster (about a minute)")
    parser.add_argument("--tile-only", nargs=2, metavar=("DEM", "HYDRO"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tile_only:
        _tile_only(*args.tile_only)
    else:
        run(quick=args.quick)


if __name__ == "__main__":
    main()
