"""make_scene(): a synthetic DEM + hydrography scene with its ground truth, deterministic per seed.

The scene imitates a hydro-flattened LiDAR DEM (like Canada's HRDEM) near Petawawa, Ontario:
rolling terrain; meandering rivers that descend along their course and are cut into it; lakes
(irregular, some with islands, one in two parts) whose every pixel lies at one level just below the
shore, some on a river (the river flows in and out), some beside one, some far from any; a few nodata
patches. Files written: ``dem.tif``, ``hydro.geojson`` (TYPECE/OBJECTID, RFC 7946 lon/lat so every
reader reprojects), ``waterbodies.geojson`` (the same water merged by connectivity, no TYPECE: what a
user of split has) and ``truth.json``.
"""
import json
import math
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from rasterio.features import rasterize
from scipy import ndimage
from shapely import affinity
from shapely.geometry import LineString, MultiLineString, MultiPolygon, Point, Polygon, box
from shapely.ops import split

from ..errors import LakesError
from .grid import Grid
from .labels import LAKE_AREA_MAX, LAKE_AREA_MIN, LAKE_RIVER_MAX_DIST
from .vectors import LAKE, OBJECTID, RIVER, TYPECE, write_geojson

SCENE_CRS = "EPSG:2959"
ORIGIN = (320_000.0, 5_085_000.0)  # about the lower-left corner of every scene, NAD83(CSRS) / UTM 18N
NODATA = -9999.0
SIZE_RANGE_M = (1000.0, 30_000.0)

# terrain: (Gaussian smoothing length in m, standard deviation in m) per octave, and regional tilt
TERRAIN_OCTAVES = ((400.0, 12.0), (120.0, 4.0), (30.0, 1.0))
TERRAIN_BASE_M = 180.0
TERRAIN_TILT = 0.004             # m/m toward the downhill direction; rivers flow that way
# rivers
RIVER_CUT_M = (1.5, 3.0)         # water level below the smoothed terrain along the course
RIVER_MIN_DROP = 0.0003          # m/m: levels strictly decrease along the course
RIVER_BANK_M = 1.5               # bank top above the water next to the channel
VALLEY_SLOPE = 0.06              # m/m rise of the valley sides away from the banks
MEANDER_MIN_RADIUS_M = 80.0      # keeps offset banks from folding over in bends
REACH_LENGTH_M = (600.0, 1200.0)
# lakes
LAKE_DROP_M = (0.3, 1.0)         # level below the lowest shore pixel
SHORE_RISE = 0.08                # m/m rise of the land away from a lake
SHORE_MIN_M = 0.2                # every shore pixel at least this much above the water
FEATURE_GAP_M = 15.0             # land between separate waterbodies (5 px at 3 m)


@dataclass
class _River:
    points: np.ndarray           # stations along the centreline, upstream first, spaced px_size / 2
    levels: np.ndarray           # water level per station, strictly decreasing
    widths: np.ndarray           # channel width per station
    channel: Polygon = None      # the whole channel, lakes not yet cut out


@dataclass
class _Lake:
    geometry: Polygon | MultiPolygon
    kind: str                    # "flow-through", "beside" or "isolated"
    river: _River | None = None  # the river flowing through it
    level: float = math.nan
    objectid: int = 0


def make_scene(outdir, seed=0, size_m=6000, px_size=3.0):
    """Write a scene of ``size_m`` x ``size_m`` metres into ``outdir``; returns the paths written."""
    if not SIZE_RANGE_M[0] <= size_m <= SIZE_RANGE_M[1]:
        raise LakesError(f"scene size {size_m:g} m is out of range; use {SIZE_RANGE_M[0]:g} to {SIZE_RANGE_M[1]:g} m")
    if not 0.5 <= px_size <= 30:
        raise LakesError(f"pixel size {px_size:g} m is out of range; use 0.5 to 30 m")
    rng = np.random.default_rng(seed)
    n = round(size_m / px_size)
    x0, y0 = (math.floor(v / px_size) * px_size for v in ORIGIN)  # on the global pixel lattice
    grid = Grid(x0, y0 + n * px_size, px_size, n, n, SCENE_CRS)
    scene_box = box(*grid.bounds)
    downhill = rng.uniform(0, 2 * math.pi)
    dem = _terrain(rng, grid, downhill)
    rivers = _rivers(rng, grid, dem, downhill)
    river_union = shapely.union_all([r.channel for r in rivers])
    lakes = _lakes(rng, grid, rivers, river_union)
    reaches = _reaches(rng, rivers, lakes, scene_box, px_size)
    for number, lake in enumerate(lakes, start=1):
        lake.objectid = number
    nodata_pixels = _burn(rng, grid, dem, rivers, lakes, reaches)

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = {name: outdir / filename for name, filename in
             (("dem", "dem.tif"), ("hydro", "hydro.geojson"), ("waterbodies", "waterbodies.geojson"),
              ("truth", "truth.json"))}
    _write_dem(paths["dem"], grid, dem)
    hydro = _hydro_frame(lakes, reaches)
    write_geojson(hydro, paths["hydro"])
    water = shapely.get_parts(shapely.union_all(hydro.geometry.values))
    waterbodies = gpd.GeoDataFrame({"id": np.arange(1, len(water) + 1)}, geometry=list(water), crs=SCENE_CRS)
    write_geojson(waterbodies, paths["waterbodies"])
    truth = _truth(seed, size_m, px_size, grid, lakes, reaches, river_union, len(water), nodata_pixels)
    paths["truth"].write_text(json.dumps(truth, indent=1))
    return paths


# ---------------------------------------------------------------------------------------------
# terrain and rivers


def _terrain(rng, grid, downhill):
    """Rolling terrain: Gaussian-filtered noise at a few scales plus a regional tilt (float64)."""
    pad = int(3 * TERRAIN_OCTAVES[0][0] / grid.px_size)  # FFT filtering wraps around: pad it away
    shape = (grid.height + 2 * pad, grid.width + 2 * pad)
    ky = np.fft.fftfreq(shape[0])[:, None]
    kx = np.fft.rfftfreq(shape[1])[None, :]
    k2 = kx**2 + ky**2
    dem = np.zeros(grid.shape)
    for length_m, std_m in TERRAIN_OCTAVES:
        sigma = length_m / grid.px_size
        noise = np.fft.irfft2(np.fft.rfft2(rng.standard_normal(shape)) * np.exp(-2 * math.pi**2 * sigma**2 * k2),
                              s=shape)[pad:-pad, pad:-pad]
        dem += std_m * noise / noise.std()
    rows, cols = np.mgrid[0:grid.height, 0:grid.width] * grid.px_size
    along = cols * math.cos(downhill) - rows * math.sin(downhill)  # metres toward downhill
    return TERRAIN_BASE_M + dem - TERRAIN_TILT * (along - along.mean())


def _rivers(rng, grid, dem, downhill):
    """A main river across the scene, downhill; from 3 km scenes, a tributary joining it."""
    size = grid.width * grid.px_size
    xmin, ymin, xmax, ymax = grid.bounds
    centre = np.array([(xmin + xmax) / 2, (ymin + ymax) / 2])
    flow = np.array([math.cos(downhill), math.sin(downhill)])
    across = np.array([-flow[1], flow[0]])
    start = centre - 0.75 * size * flow + rng.uniform(-0.15, 0.15) * size * across
    end = centre + 0.75 * size * flow + rng.uniform(-0.15, 0.15) * size * across
    main = _river(rng, grid, dem, start, end, widths=(rng.uniform(6, 12), rng.uniform(18, 40)))
    inside = np.flatnonzero(shapely.contains_xy(box(*grid.bounds).buffer(-0.2 * size), *main.points.T))
    for _attempt in range(20 if size >= 3000 else 0):
        join = inside[int(len(inside) * rng.uniform(0.35, 0.65))]
        tangent = main.points[min(join + 10, len(main.points) - 1)] - main.points[max(join - 10, 0)]
        angle = math.atan2(tangent[1], tangent[0]) + rng.choice([-1, 1]) * math.radians(rng.uniform(45, 70))
        direction = np.array([math.cos(angle), math.sin(angle)])
        junction = main.points[join]
        tributary = _river(rng, grid, dem, junction - size * direction, junction,
                           widths=(rng.uniform(6, 9), rng.uniform(10, 16)), junction_level=main.levels[join])
        # rivers meet only at the junction: the tributary's course before it keeps clear of the main channel
        before = tributary.points[np.hypot(*(tributary.points - junction).T) > 150]
        if not shapely.intersects(LineString(before), main.channel.buffer(30)):
            tributary.channel = tributary.channel.difference(main.channel)
            return [main, tributary]
    return [main]


def _river(rng, grid, dem, start, end, widths, junction_level=None):
    """A meandering river from ``start`` to ``end``, where it meets a river at ``junction_level`` if given."""
    spacing = grid.px_size / 2
    axis = end - start
    length = float(np.hypot(*axis))
    along = np.arange(0.0, length, spacing / 2)
    offset = np.zeros_like(along)
    for _ in range(2):
        wavelength = rng.uniform(500, 1500)
        amplitude = min(rng.uniform(60, 200), wavelength**2 / (4 * math.pi**2 * MEANDER_MIN_RADIUS_M))
        offset += amplitude * np.sin(2 * math.pi * along / wavelength + rng.uniform(0, 2 * math.pi))
    offset *= np.clip(np.minimum(along, length - along) / 300.0, 0, 1)  # fixed ends (junction)
    unit = axis / length
    raw = start + along[:, None] * unit + offset[:, None] * np.array([-unit[1], unit[0]])
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(raw, axis=0).T))])
    stations = np.arange(0.0, arc[-1], spacing)
    points = np.column_stack([np.interp(stations, arc, raw[:, 0]), np.interp(stations, arc, raw[:, 1])])

    rows, cols = _pixel_indices(grid, points)
    window = max(3, int(200 / spacing))
    ground = np.convolve(np.pad(dem[rows, cols], window // 2, mode="edge"), np.ones(window) / window, "valid")
    target = ground[:len(points)] - rng.uniform(*RIVER_CUT_M)
    drop = RIVER_MIN_DROP * spacing * np.arange(len(points))
    levels = np.minimum.accumulate(target + drop) - drop
    if junction_level is not None:  # end at the junction: stay above it, spread any excess along the course
        levels = np.maximum(levels, junction_level + drop[::-1])
        levels -= (levels[-1] - junction_level) * stations / stations[-1]
    widths = np.interp(stations, [0, arc[-1]], widths) * (1 + 0.1 * np.sin(stations / rng.uniform(150, 400)))
    river = _River(points, levels, widths)
    river.channel = _channel(points, widths, step=max(1, round(6.0 / spacing)))
    return river


def _channel(points, widths, step):
    """The channel polygon: the centreline offset by half the width on each side."""
    index = np.unique(np.append(np.arange(0, len(points), step), len(points) - 1))
    centre, half = points[index], widths[index, None] / 2
    tangent = np.gradient(centre, axis=0)
    tangent /= np.hypot(*tangent.T)[:, None]
    normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
    ring = np.concatenate([centre + half * normal, (centre - half * normal)[::-1]])
    return shapely.make_valid(Polygon(ring), method="structure")


def _pixel_indices(grid, points):
    cols = np.clip(((points[:, 0] - grid.x0) / grid.px_size).astype(int), 0, grid.width - 1)
    rows = np.clip(((grid.y0 - points[:, 1]) / grid.px_size).astype(int), 0, grid.height - 1)
    return rows, cols


# ---------------------------------------------------------------------------------------------
# lakes


def _lakes(rng, grid, rivers, river_union):
    """Flow-through, beside-a-river and isolated lakes; islands in a few, one in two parts."""
    size = grid.width * grid.px_size
    inner = box(*grid.bounds).buffer(-FEATURE_GAP_M)
    max_area = min(LAKE_AREA_MAX, 0.02 * size * size)
    river_length = sum(r.channel.intersection(inner).length / 2 for r in rivers)  # half the perimeter
    shapely.prepare(river_union)  # many distance tests against it below
    lakes = []

    def free(geometry, gap=FEATURE_GAP_M * 2):
        return inner.contains(geometry) and all(geometry.distance(o.geometry) >= gap for o in lakes)

    # flow-through: centred on the river, elongated along it
    for _ in range(max(1, round(river_length / 3500))):
        for _attempt in range(200):
            river = rivers[rng.integers(len(rivers))]
            i = rng.integers(len(river.points))
            tangent = river.points[min(i + 20, len(river.points) - 1)] - river.points[max(i - 20, 0)]
            area = math.exp(rng.uniform(math.log(15_000), math.log(max_area)))
            shape = _lake_shape(rng, river.points[i], area, rng.uniform(1.2, 2.2), math.atan2(tangent[1], tangent[0]))
            others = [r.channel for r in rivers if r is not river]
            if free(shape, gap=300) and not any(shapely.dwithin(c, shape, FEATURE_GAP_M) for c in others):
                lakes.append(_Lake(shape, "flow-through", river))
                break

    # beside a river: strictly closer than the focal distance, some with the river across their bounding box
    n_beside = max(3, round(river_length / 700))
    for k in range(n_beside):
        for attempt in range(300):
            river = rivers[rng.integers(len(rivers))]
            i = rng.integers(len(river.points))
            area = math.exp(rng.uniform(math.log(1000), math.log(max_area / 2)))
            radius = math.sqrt(area / math.pi)
            tangent = river.points[min(i + 20, len(river.points) - 1)] - river.points[max(i - 20, 0)]
            tangent /= np.hypot(*tangent)
            side = rng.choice([-1, 1]) * np.array([-tangent[1], tangent[0]])
            centre = river.points[i] + side * (river.widths[i] / 2 + radius * rng.uniform(0.8, 1.5)
                                               + rng.uniform(FEATURE_GAP_M, 150))
            shape = _lake_shape(rng, centre, area, rng.uniform(1.3, 3.0), rng.uniform(0, math.pi))
            if k == 0:
                shape = _two_parts(rng, shape)
            near = shapely.dwithin(river_union, shape, LAKE_RIVER_MAX_DIST - 20)
            too_near = shapely.dwithin(river_union, shape, FEATURE_GAP_M)
            crosses = river_union.intersects(box(*shape.bounds))
            if near and not too_near and free(shape) and (crosses or k % 2 or attempt > 200):
                lakes.append(_Lake(shape, "beside"))
                break

    # isolated: farther than the focal distance from every river
    for _ in range(max(1, round(0.2 * size * size / 1e6))):
        for _attempt in range(100):
            xmin, ymin, xmax, ymax = inner.bounds
            centre = np.array([rng.uniform(xmin, xmax), rng.uniform(ymin, ymax)])
            area = math.exp(rng.uniform(math.log(1000), math.log(max_area)))
            shape = _lake_shape(rng, centre, area, rng.uniform(1.0, 2.5), rng.uniform(0, math.pi))
            if not shapely.dwithin(river_union, shape, LAKE_RIVER_MAX_DIST + 50) and free(shape):
                lakes.append(_Lake(shape, "isolated"))
                break

    _add_islands(rng, lakes)
    return lakes


def _lake_shape(rng, centre, area, aspect, angle, vertices=96):
    """An irregular star-shaped polygon of the given area: a noisy ellipse."""
    theta = np.linspace(0, 2 * math.pi, vertices, endpoint=False)
    radius = np.ones(vertices)
    for k in range(2, 8):
        radius += rng.uniform(0, 0.3 / k**0.8) * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
    radius = np.maximum(radius, 0.35)
    x, y = radius * np.cos(theta) * aspect, radius * np.sin(theta)
    c, s = math.cos(angle), math.sin(angle)
    ring = np.column_stack([c * x - s * y, s * x + c * y])
    scale = math.sqrt(area / Polygon(ring).area)
    return Polygon(centre + scale * ring)


def _two_parts(rng, shape):
    """One lake in two parts a narrow strip of land apart (a multipart feature)."""
    part = affinity.scale(shape, 0.6, 0.6)
    angle = rng.uniform(0, 2 * math.pi)
    step = np.array([math.cos(angle), math.sin(angle)])
    offset, gap = 0.0, rng.uniform(8, 20)
    other = part
    while other.distance(part) < gap:
        offset += 3.0
        other = affinity.translate(part, *(step * offset))
    return MultiPolygon([part, other])


def _add_islands(rng, lakes):
    """Holes: one or two islands in lakes large enough, and in at least one lake."""
    candidates = sorted((lake for lake in lakes if isinstance(lake.geometry, Polygon)),
                        key=lambda lake: -lake.geometry.area)
    for rank, lake in enumerate(candidates):
        if lake.geometry.area < 12_000 or (rank > 0 and rng.uniform() > 0.4):
            continue
        holes = []
        for _ in range(rng.integers(1, 3)):
            area = rng.uniform(150, min(3000, lake.geometry.area / 25))
            room = lake.geometry.buffer(-(math.sqrt(area / math.pi) * 2 + FEATURE_GAP_M))
            if room.is_empty:
                continue
            for _attempt in range(50):
                xmin, ymin, xmax, ymax = room.bounds
                point = Point(rng.uniform(xmin, xmax), rng.uniform(ymin, ymax))
                if room.contains(point):
                    island = _lake_shape(rng, np.array(point.coords[0]), area, rng.uniform(1, 2), rng.uniform(0, 3))
                    if all(island.distance(h) > FEATURE_GAP_M for h in holes):
                        holes.append(island)
                        break
        if holes:
            lake.geometry = Polygon(lake.geometry.exterior, [h.exterior for h in holes])


# ---------------------------------------------------------------------------------------------
# river reaches, DEM burning, outputs


def _reaches(rng, rivers, lakes, scene_box, px_size):
    """River water (channel minus lakes and their islands, inside the scene) cut across into reaches."""
    parts = shapely.get_parts([lake.geometry for lake in lakes])
    lake_union = shapely.union_all(shapely.polygons(shapely.get_exterior_ring(parts)))
    reaches = []
    for number, river in enumerate(rivers, start=1):
        water = river.channel.intersection(scene_box).difference(lake_union)
        line = LineString(river.points)
        cuts, position = [], rng.uniform(*REACH_LENGTH_M) / 2
        while position < line.length:
            i = min(int(position / (line.length / (len(river.points) - 1))), len(river.points) - 2)
            tangent = river.points[i + 1] - river.points[i]
            normal = np.array([-tangent[1], tangent[0]]) / np.hypot(*tangent)
            half = river.widths[i] / 2 + 10  # across the channel and a little beyond, not into the next bend
            cuts.append([tuple(river.points[i] + half * normal), tuple(river.points[i] - half * normal)])
            position += rng.uniform(*REACH_LENGTH_M)
        pieces = shapely.get_parts(split(water, MultiLineString(cuts))) if cuts else shapely.get_parts(water)
        reaches.extend((number, piece) for piece in _merge_slivers(pieces, 10 * px_size**2, line))
    return reaches


def _merge_slivers(pieces, min_area, line):
    """Pieces smaller than ``min_area`` (cuts near a lake shore) joined to a neighbour; sorted downstream."""
    pieces = sorted(pieces, key=lambda p: -p.area)
    kept = [p for p in pieces if p.area >= min_area]
    for sliver in pieces[len(kept):]:
        touching = [i for i, p in enumerate(kept) if p.intersects(sliver)]
        if touching:
            kept[touching[0]] = shapely.union_all([kept[touching[0]], sliver])
    return sorted(kept, key=lambda p: line.project(p.representative_point()))


def _burn(rng, grid, dem, rivers, lakes, reaches):
    """Cut valleys and lake basins into ``dem``, flatten the water, add nodata; returns the nodata count."""
    px = grid.px_size
    # nearest river station for every pixel: distance, level, width
    points = np.concatenate([r.points for r in rivers])
    levels = np.concatenate([r.levels for r in rivers])
    widths = np.concatenate([r.widths for r in rivers])
    station = np.full(grid.shape, -1, dtype=np.int64)
    rows, cols = _pixel_indices(grid, points)
    station[rows, cols] = np.arange(len(points))
    distance, (near_r, near_c) = ndimage.distance_transform_edt(station < 0, return_indices=True)
    nearest = station[near_r, near_c]
    river_level = levels[nearest]
    bank_distance = np.maximum(distance * px - widths[nearest] / 2, 0)
    # smoothed: where the nearest station switches to one far along the course (across a meander, at a
    # junction) its level jumps; and distances to the pixel-snapped centreline leave ripples
    valley = ndimage.gaussian_filter(river_level, 10) + RIVER_BANK_M + VALLEY_SLOPE * bank_distance
    valley = ndimage.gaussian_filter(valley, 1.5)
    np.minimum(dem, valley, out=dem)
    del valley
    del near_r, near_c, nearest, distance

    # lake levels: flow-through lakes at the river's level where it leaves them, others below their shore
    lake_id = rasterize(((lake.geometry, i + 1) for i, lake in enumerate(lakes)), out_shape=grid.shape,
                        transform=grid.transform, fill=0, dtype="int32")
    lake_distance, (near_r, near_c) = ndimage.distance_transform_edt(lake_id == 0, return_indices=True)
    nearest_lake = lake_id[near_r, near_c]
    del near_r, near_c
    shore = (lake_id == 0) & (lake_distance <= 3)
    shore_min = ndimage.minimum(dem, labels=np.where(shore, nearest_lake, 0), index=np.arange(1, len(lakes) + 1))
    for lake, lowest in zip(lakes, shore_min, strict=True):
        if lake.kind == "flow-through":
            inside = np.flatnonzero(shapely.contains_xy(lake.geometry, *lake.river.points.T))
            lake.level = float(lake.river.levels[inside.max()])
        else:
            lake.level = float(lowest - rng.uniform(*LAKE_DROP_M))
    lake_levels = np.array([math.nan] + [lake.level for lake in lakes])
    level_near_lake = lake_levels[nearest_lake]
    np.minimum(dem, ndimage.gaussian_filter(level_near_lake + 0.5 + SHORE_RISE * lake_distance * px, 1.5), out=dem)

    # banks above the water next to them, then the water itself, flat at its level
    river_id = rasterize(((geometry, 1) for _, geometry in reaches), out_shape=grid.shape,
                         transform=grid.transform, fill=0, dtype="uint8") if reaches else np.zeros(grid.shape, "uint8")
    land = (lake_id == 0) & (river_id == 0)
    np.maximum(dem, np.where(land & shore, level_near_lake + SHORE_MIN_M, dem), out=dem)
    river_bank = land & (bank_distance <= 2 * px)
    np.maximum(dem, np.where(river_bank, river_level + SHORE_MIN_M, dem), out=dem)
    dem[river_id == 1] = river_level[river_id == 1]
    dem[lake_id > 0] = level_near_lake[lake_id > 0]

    # nodata: a few small patches
    nodata = np.zeros(grid.shape, dtype=bool)
    for _ in range(rng.integers(3, 7)):
        row, col = rng.integers(0, grid.height), rng.integers(0, grid.width)
        nodata[max(row - 3, 0):row + rng.integers(1, 4), max(col - 3, 0):col + rng.integers(1, 4)] = True
    dem[nodata] = NODATA
    return int(nodata.sum())


def _write_dem(path, grid, dem):
    profile = dict(driver="GTiff", width=grid.width, height=grid.height, count=1, dtype="float32", crs=grid.crs,
                   transform=grid.transform, nodata=NODATA, tiled=True, blockxsize=256, blockysize=256,
                   compress="deflate", predictor=3)
    with rasterio.open(path, "w", **profile) as out:
        out.write(dem.astype(np.float32), 1)


def _hydro_frame(lakes, reaches):
    rows = [{TYPECE: LAKE, OBJECTID: lake.objectid, "geometry": lake.geometry} for lake in lakes]
    first = len(lakes) + 1
    rows += [{TYPECE: RIVER, OBJECTID: first + i, "geometry": geometry} for i, (_, geometry) in enumerate(reaches)]
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=SCENE_CRS)


def _truth(seed, size_m, px_size, grid, lakes, reaches, river_union, n_waterbodies, nodata_pixels):
    first = len(lakes) + 1
    rivers = {}
    for i, (number, _) in enumerate(reaches):
        rivers.setdefault(number, []).append(first + i)
    lake_records = []
    for lake in lakes:
        geometry = lake.geometry
        distance = geometry.distance(river_union)
        lake_records.append({
            "OBJECTID": lake.objectid, "kind": lake.kind, "area_m2": round(geometry.area, 1),
            "level_m": round(lake.level, 3), "bounds": [round(v, 3) for v in geometry.bounds],
            "parts": len(shapely.get_parts(geometry)), "holes": int(shapely.get_num_interior_rings(
                shapely.get_parts(geometry)).sum()),
            "distance_to_river_m": round(distance, 1),
            "bbox_crosses_river": bool(box(*geometry.bounds).intersects(river_union)),
            "focal": bool(LAKE_AREA_MIN <= geometry.area <= LAKE_AREA_MAX and distance < LAKE_RIVER_MAX_DIST),
        })
    return {
        "seed": seed, "size_m": size_m, "px_size": px_size, "crs": SCENE_CRS,
        "grid": {"x0": grid.x0, "y0": grid.y0, "width": grid.width, "height": grid.height},
        "nodata_value": NODATA, "nodata_pixels": nodata_pixels,
        "lakes": lake_records,
        "rivers": [{"river": number, "reaches": ids} for number, ids in rivers.items()],
        "counts": {
            "lakes": len(lakes), "reaches": len(reaches), "waterbodies": n_waterbodies,
            "focal_lakes": sum(r["focal"] for r in lake_records),
            "lakes_with_holes": sum(r["holes"] > 0 for r in lake_records),
            "multipart_lakes": sum(r["parts"] > 1 for r in lake_records),
            "bbox_crossings": sum(r["bbox_crosses_river"] and r["kind"] != "flow-through" for r in lake_records),
        },
    }
