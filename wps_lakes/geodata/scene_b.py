"""make_scene_b(): a second, independent scene style, so the split is not tuned to ``make_scene``.

Other CRS (EPSG:32618, WGS 84 / UTM 18N) and pixel (2 m); ridged terrain (folded absolute-value
noise) on a steeper regional slope; one river whose course is a sum of sines along the slope that
splits around an island (a braid) and rejoins; lakes that are unions of a few random ellipses
(irregular lobes): a chain of two on the river, levels taken from the river where it leaves them,
and a few isolated ones below their shores. Rivers descend linearly along the slope. Files as
``make_scene``: ``dem.tif``, ``hydro.geojson``, ``waterbodies.geojson`` (water merged by
connectivity, no TYPECE) and ``truth.json`` (counts only).
"""
import json
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from rasterio.features import rasterize
from scipy import ndimage
from shapely import affinity
from shapely.geometry import LineString, Point

from .grid import Grid
from .synthetic import NODATA, _write_dem
from .vectors import LAKE, OBJECTID, RIVER, TYPECE, write_geojson

SCENE_B_CRS = "EPSG:32618"
ORIGIN_B = (400_000.0, 5_000_000.0)
SLOPE = 0.002        # m/m, the river's and the terrain's fall along x
RIDGE_M = 10.0       # relief of the ridges


def make_scene_b(outdir, seed=0, size_m=2000, px_size=2.0, isolated_per_km2=0.75):
    rng = np.random.default_rng(seed)
    n = round(size_m / px_size)
    grid = Grid(ORIGIN_B[0], ORIGIN_B[1] + n * px_size, px_size, n, n, SCENE_B_CRS)
    xmin, ymin, xmax, ymax = grid.bounds
    # ridged terrain: |filtered noise| folds it into ridges and valleys
    noise = ndimage.gaussian_filter(rng.standard_normal(grid.shape), 60 / px_size, mode="wrap")
    cols = np.arange(n)[None, :] * px_size
    terrain = 150 + RIDGE_M * np.abs(noise / noise.std()) - SLOPE * cols
    # river: along x, sines across, a braid around an island in the middle third
    xs = np.linspace(xmin - 50, xmax + 50, 400)
    phase = rng.uniform(0, 2 * math.pi, 2)
    ys = (ymin + ymax) / 2 + 120 * np.sin(xs / 310 + phase[0]) + 50 * np.sin(xs / 97 + phase[1])
    centre = LineString(np.column_stack([xs, ys]))
    width = rng.uniform(12, 20)
    channel = centre.buffer(width / 2, cap_style="flat")
    a, b = xmin + size_m * 0.4, xmin + size_m * 0.6
    mid = (xs > a) & (xs < b)
    bulge = np.sin(np.pi * (xs[mid] - a) / (b - a)) * rng.uniform(40, 70)
    braid = LineString(np.column_stack([xs[mid], ys[mid] + bulge]))
    channel = shapely.union(channel, braid.buffer(width / 3, cap_style="flat"))
    # lakes: a chain of two on the river (upstream half), and isolated ones away from it
    lakes, kinds = [], []
    for fx in (0.2, 0.3):
        x = xmin + size_m * fx
        y = float(np.interp(x, xs, ys))
        lake = _lobes(rng, x, y, rng.uniform(45, 70))
        # lakes of a chain stay apart (touching lakes would be one waterbody without a boundary):
        # the next one moves downstream along the river
        while lakes and lake.distance(lakes[-1]) < 30:
            shift = float(np.interp(x + 20, xs, ys)) - float(np.interp(x, xs, ys))
            lake, x = affinity.translate(lake, 20, shift), x + 20
        lakes.append(lake)
        kinds.append("flow-through")
    # at least three isolated lakes; more on larger scenes, at the same density
    wanted = max(3, round(isolated_per_km2 * (size_m / 1000) ** 2))
    tries = 0
    while kinds.count("isolated") < wanted and tries < 70 * wanted:
        tries += 1
        p = Point(rng.uniform(xmin + 100, xmax - 100), rng.uniform(ymin + 100, ymax - 100))
        lake = _lobes(rng, p.x, p.y, rng.uniform(20, 45))
        if lake.distance(channel) > 40 and all(lake.distance(other) > 30 for other in lakes):
            lakes.append(lake)
            kinds.append("isolated")
    river = shapely.intersection(channel.difference(shapely.union_all(lakes)), shapely.box(*grid.bounds))
    lakes = [shapely.intersection(lake, shapely.box(*grid.bounds)) for lake in lakes]

    # the DEM: a valley along the river, basins under lakes, water flat (lakes) or descending (river)
    level_at = lambda x: 148 - SLOPE * (x - xmin)  # noqa: E731
    xcoords = xmin + (np.arange(n)[None, :] + 0.5) * px_size + np.zeros((n, 1))
    water = rasterize([(g, 1) for g in [river, *lakes] if not g.is_empty], out_shape=grid.shape,
                      transform=grid.transform).astype(bool)
    distance = ndimage.distance_transform_edt(~water) * px_size
    river_level = level_at(xcoords)
    dem = np.minimum(terrain, river_level + 1.0 + 0.1 * distance)
    lake_id = rasterize([(g, i + 1) for i, g in enumerate(lakes) if not g.is_empty], out_shape=grid.shape,
                        transform=grid.transform, dtype="int32")
    levels = []
    for i, (lake, kind) in enumerate(zip(lakes, kinds, strict=True), start=1):
        if kind == "flow-through":
            level = level_at(lake.bounds[2])  # where the river leaves it
        else:
            shore = ndimage.binary_dilation(lake_id == i, iterations=2) & ~water
            level = float(dem[shore].min()) - rng.uniform(0.3, 0.8)
        basin = ndimage.distance_transform_edt(lake_id != i) * px_size
        dem = np.where(basin < 40, np.minimum(dem, level + 0.3 + 0.05 * basin), dem)
        levels.append(level)
    dem = np.where(water & (lake_id == 0), river_level, dem)
    for i, level in enumerate(levels, start=1):
        dem[lake_id == i] = level
    banks = ndimage.binary_dilation(water, iterations=1) & ~water
    dem[banks] = np.maximum(dem[banks], river_level[banks] + 0.3)

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = {"dem": outdir / "dem.tif", "hydro": outdir / "hydro.geojson",
             "waterbodies": outdir / "waterbodies.geojson", "truth": outdir / "truth.json"}
    _write_dem(paths["dem"], grid, np.where(np.isfinite(dem), dem, NODATA))
    rows = [{TYPECE: LAKE, OBJECTID: i + 1, "geometry": g} for i, g in enumerate(lakes) if not g.is_empty]
    rows += [{TYPECE: RIVER, OBJECTID: len(lakes) + 1 + i, "geometry": g}
             for i, g in enumerate(shapely.get_parts(river)) if g.area > px_size**2]
    hydro = gpd.GeoDataFrame(rows, geometry="geometry", crs=SCENE_B_CRS)
    write_geojson(hydro, paths["hydro"])
    parts = shapely.get_parts(shapely.union_all(hydro.geometry.values))
    write_geojson(gpd.GeoDataFrame({"id": np.arange(1, len(parts) + 1)}, geometry=list(parts), crs=SCENE_B_CRS),
                  paths["waterbodies"])
    paths["truth"].write_text(json.dumps({"style": "B", "seed": seed, "size_m": size_m, "px_size": px_size,
                                          "crs": SCENE_B_CRS, "lakes": len(lakes), "kinds": kinds}))
    return paths


def _lobes(rng, x, y, radius):
    """An irregular lake: the union of three ellipses around (x, y)."""
    shapes = []
    for _ in range(3):
        cx, cy = x + rng.uniform(-0.6, 0.6) * radius, y + rng.uniform(-0.6, 0.6) * radius
        ellipse = affinity.scale(Point(cx, cy).buffer(1.0, 32), radius * rng.uniform(0.5, 1.0),
                                 radius * rng.uniform(0.3, 0.7))
        shapes.append(affinity.rotate(ellipse, rng.uniform(0, 180)))
    return shapely.union_all(shapes)
