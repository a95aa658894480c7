"""Split waterbodies into lake and river parts.

Two methods:

``boxes``
    The original TB15-D104 cut: the part of each waterbody inside the union of the detected boxes
    is lake, the rest river.
``refined`` (default)
    Each waterbody is rasterised on its own grid and its lakes are found from the water itself,
    boxes being one piece of evidence among others (docs/split.rst tells the whole method):

    - with a hydro-flattened DEM, lake candidates are the level regions of the water (every pixel
      at one height, within ``level_tolerance``); rivers descend, so a lake ends where its level
      surface ends, on its own shoreline across the river mouth, not at a box edge;
    - without a DEM (or where it has no data), openings at increasing radii cut the water at its
      necks, and the parts that come loose from their channels are the candidates.

    A candidate is a lake when it is big enough, its outlets are narrow compared with its width,
    it has no channel leading away, and it is compact or covered by boxes. So a river reach
    crossing a box stays river and a flat compact lake stays lake without any box. The lake pixels
    become polygons intersected with the waterbody: shorelines keep their vertices, only the cuts
    across the water follow pixel edges.

Both methods keep every original property on every part, set ``TYPECE`` to ``"21"`` (lake) or
``"10"`` (river), and write one feature per polygon part, as the original did.
"""
from contextlib import contextmanager
from dataclasses import dataclass
from math import ceil, pi
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from rasterio import features
from scipy import ndimage

from ..errors import LakesError
from ..geodata.grid import Grid, crs_string
from ..geodata.quicklook import split_quicklook
from ..geodata.rasters import open_dem
from ..geodata.vectors import LAKE, RIVER, check_overlap, read_vector, write_geojson
from ..limits import DEFAULT_LIMITS

METHODS = ("refined", "boxes")
EIGHT = np.ones((3, 3), bool)  # 8-connectivity
MIN_RADIUS, RADIUS_STEP = 2.0, 2 ** 0.5  # the opening radii tried without a DEM, in pixels
MIN_NECK_RADIUS = 3.0  # pixels: a narrower lake joined to other water is not told from a channel
SHORE_PX = 2  # the band along the shore where a resampled DEM blends water and land
MAX_FEATURE_PIXELS = 16_000_000  # per waterbody grid; a bigger waterbody is analysed at a coarser pixel


@dataclass(frozen=True)
class SplitParams:
    """Tuning of the refined method (the defaults are what the docs and benchmarks use)."""
    px_size: float = 3.0             # analysis pixel (m) when no DEM is given; with a DEM, the DEM's pixel
    lake_area_min: float = 100.0     # m², as the lake_area_min of the training samples
    level_tolerance: float = 1e-4    # m: neighbours closer than this are on the same level surface
    max_elongation: float = 10.0     # area / (pi r²), r the largest inscribed radius: above it, a channel
    box_cover_min: float = 0.5       # share of a candidate inside boxes for the boxes to vouch for it
    neck_ratio: float = 0.6          # a lake's outlets are narrower than this x its inscribed diameter
    dem_cover_min: float = 0.9       # share of a waterbody with DEM data for the DEM to be used there


@dataclass
class SplitResult:
    lakes: gpd.GeoDataFrame
    rivers: gpd.GeoDataFrame
    hydro: gpd.GeoDataFrame


def split_waterbodies(waterbodies, detections, dem=None, method="refined", params=SplitParams(),
                      limits=DEFAULT_LIMITS):
    """Split ``waterbodies`` into lake and river parts (see the module docstring).

    ``waterbodies``: GeoDataFrame in a metric work SRS, or a path read with ``read_vector``.
    ``detections``: GeoDataFrame (or path) of lake boxes, any CRS; may be empty or None.
    ``dem``: None, a DEM path or list of paths, or an open ``Dem``; used by ``refined`` only.
    """
    if method not in METHODS:
        raise LakesError(f"unknown split method {method!r}; use one of: {', '.join(METHODS)}")
    if not isinstance(waterbodies, gpd.GeoDataFrame):
        waterbodies = read_vector(waterbodies, limits=limits)
    if waterbodies.crs is None or not waterbodies.crs.is_projected:
        raise LakesError("the waterbodies must be in a projected (metric) CRS; read them with read_vector")
    crs = crs_string(waterbodies.crs)
    if detections is None:
        detections = gpd.GeoDataFrame(geometry=[], crs=crs)
    elif not isinstance(detections, gpd.GeoDataFrame):
        detections = read_vector(detections, srs=crs, limits=limits, allow_empty=True)
    boxes = _boxes_union(detections, waterbodies)

    if method == "boxes":
        parts = [_parts(geom.intersection(boxes), geom.difference(boxes)) for geom in waterbodies.geometry]
    else:
        with _opened_dem(dem, crs, limits) as source:
            if source is not None and not waterbodies.empty:
                check_overlap(waterbodies, source.grid)  # a DEM elsewhere would be ignored without a word
            parts = [_refined(geom, crs, boxes, source, params) for geom in waterbodies.geometry]
    return _result(waterbodies, parts)


def write_split(result, outdir, crs="EPSG:4326", dem=None, detections=None, limits=DEFAULT_LIMITS):
    """Write lakes.geojson, rivers.geojson, hydro.geojson (in ``crs``) and split.png into ``outdir``.

    Returns {name: path} for ``lakes``, ``rivers``, ``hydro`` and ``quicklook``.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = {name: write_geojson(getattr(result, name), outdir / f"{name}.geojson", crs=crs)
             for name in ("lakes", "rivers", "hydro")}
    with _opened_dem(dem, crs_string(result.hydro.crs), limits) as source:
        paths["quicklook"] = split_quicklook(outdir / "split.png", result, source, detections)
    return paths


def split_to_files(vector, outdir, detections=None, checkpoint=None, rasters=None, method="refined",
                   score_threshold=None, crs="EPSG:4326", device="auto", progress=None, limits=DEFAULT_LIMITS):
    """Read, split and write, as the CLI and the WPS process run it: the waterbodies file ``vector``,
    lake boxes from a ``detections`` file or detected first with ``checkpoint`` on ``rasters`` (then
    detections.geojson and detections.png are written too; ``progress(done, total)`` counts its tiles).
    Returns {name: path} of the files written (see ``write_split``)."""
    if detections is not None and checkpoint is not None:
        raise LakesError("give the lake boxes one way: detections, or a checkpoint with the DEM to detect them, "
                         "not both")
    rasters = list(rasters or []) or None
    waterbodies = read_vector(vector, limits=limits)
    outdir = Path(outdir)
    paths = {}
    if checkpoint is not None:
        if rasters is None:
            raise LakesError("a checkpoint needs the DEM to detect lakes on: give the DEM raster too, "
                             "or give detections instead")
        from ..detector.inference import detect, write_detections

        boxes = detect(checkpoint, rasters, waterbodies, score_threshold=score_threshold, device=device,
                       progress=progress, limits=limits)
        written = write_detections(boxes, outdir / "detections.geojson", rasters=rasters, vector=waterbodies,
                                   crs=crs, limits=limits)
        paths = {"detections": written["detections"], "detections_quicklook": written["quicklook"]}
    else:
        boxes = None if detections is None else read_vector(detections, srs=waterbodies.crs, limits=limits,
                                                            allow_empty=True)
    result = split_waterbodies(waterbodies, boxes, dem=rasters, method=method, limits=limits)
    return {**paths, **write_split(result, outdir, crs=crs, dem=rasters, detections=boxes, limits=limits)}


@contextmanager
def _opened_dem(dem, srs, limits=DEFAULT_LIMITS):
    """``dem`` as an open ``Dem`` for the ``with`` block: None stays None, paths are opened and closed."""
    if dem is None or hasattr(dem, "read"):
        yield dem
    else:
        with open_dem(dem, srs=srs, limits=limits) as source:
            yield source


def _boxes_union(detections, waterbodies):
    """The union of the boxes in the waterbodies' CRS; refuse boxes that lie far from every waterbody."""
    if detections.empty:
        return shapely.Polygon()
    if detections.crs is None:
        raise LakesError("the detections have no CRS; write them with `wps-lakes detect` or add a crs member")
    boxes = detections.to_crs(waterbodies.crs)
    union = shapely.union_all(boxes.geometry.values)
    if not waterbodies.empty and not union.intersects(shapely.box(*waterbodies.total_bounds)):
        raise LakesError(f"none of the {len(boxes)} detections overlaps the waterbodies (detections in "
                         f"{detections.crs.to_string()}, waterbodies in {waterbodies.crs.to_string()}); "
                         "check that the detections were made for this area and that their CRS is right")
    return union


def _parts(lake, river):
    """Polygon parts (lake, river) of one waterbody, each a list of Polygons."""
    return _polygons(lake), _polygons(river)


def _polygons(geom):
    return [g for g in shapely.get_parts(shapely.make_valid(geom)).tolist()
            if isinstance(g, shapely.Polygon) and not g.is_empty]


def _result(waterbodies, parts):
    """Explode to one feature per part, original properties kept, TYPECE set; lake parts first."""
    props = waterbodies.drop(columns=waterbodies.geometry.name).reset_index(drop=True)
    rows, geoms, types = [], [], []
    for i, (lakes, rivers) in enumerate(parts):
        for typece, polys in ((LAKE, lakes), (RIVER, rivers)):
            rows += [i] * len(polys)
            geoms += polys
            types += [typece] * len(polys)
    hydro = props.iloc[rows].reset_index(drop=True)
    hydro["TYPECE"] = pd.Series(types, dtype=object)
    hydro = gpd.GeoDataFrame(hydro, geometry=gpd.GeoSeries(geoms, crs=waterbodies.crs))
    lakes = hydro[hydro["TYPECE"] == LAKE].reset_index(drop=True)
    rivers = hydro[hydro["TYPECE"] == RIVER].reset_index(drop=True)
    return SplitResult(lakes=lakes, rivers=rivers, hydro=hydro)


# ---------------------------------------------------------------------------------------------
# the refined method, one waterbody at a time on its own grid


def _refined(geom, crs, boxes, dem, params):
    if geom.is_empty:
        return [], []
    grid = _feature_grid(geom, crs, params.px_size if dem is None else dem.grid.px_size)
    inside = _rasterise(geom, grid)
    if not inside.any():  # thinner than a pixel: nothing to measure, the boxes decide
        in_boxes = geom.intersection(boxes).area > geom.area / 2
        return _parts(geom, shapely.Polygon()) if in_boxes else _parts(shapely.Polygon(), geom)
    in_box = np.zeros(grid.shape, bool) if boxes.is_empty else _rasterise(boxes, grid)

    valid = None
    if dem is not None:
        z = dem.read(grid)
        valid = inside & ~np.ma.getmaskarray(z)
        if valid.sum() < params.dem_cover_min * inside.sum():
            valid = None
    if valid is not None:
        lake = _level_lakes(np.ma.getdata(z).astype(np.float64), inside, valid, in_box, grid.px_size, params)
        lake = _nearest(lake, valid)  # pixels without data take the type of the nearest one with data
    else:
        lake = _shape_lakes(inside, in_box, grid.px_size, params)
    # the pixels the shoreline crosses (centre outside) take the type of the nearest inside pixel
    lake = _nearest(lake, inside) & _rasterise(geom, grid, all_touched=True)
    lake_poly = _polygonise(lake, grid.transform)
    return _settle_slivers(geom.intersection(lake_poly), geom.difference(lake_poly), grid.px_size ** 2)


def _rasterise(geom, grid, all_touched=False):
    return features.rasterize([(geom, 1)], out_shape=grid.shape, transform=grid.transform, dtype=np.uint8,
                              all_touched=all_touched).astype(bool)


def _nearest(mask, known):
    """``mask`` where ``known``, elsewhere the value at the nearest known pixel."""
    if known.all():
        return mask
    _, (rows, cols) = ndimage.distance_transform_edt(~known, return_indices=True)
    return mask[rows, cols]


def _feature_grid(geom, crs, px_size):
    """A grid on the work lattice around ``geom``, two pixels of margin, coarser for a huge waterbody."""
    xmin, ymin, xmax, ymax = geom.bounds
    pixels = ((xmax - xmin) / px_size + 4) * ((ymax - ymin) / px_size + 4)
    if pixels > MAX_FEATURE_PIXELS:
        px_size *= ceil((pixels / MAX_FEATURE_PIXELS) ** 0.5)
    margin = 2 * px_size
    return Grid.from_bounds((xmin - margin, ymin - margin, xmax + margin, ymax + margin), px_size, crs)


def _level_lakes(z, inside, valid, in_box, px, params):
    """Lake mask from the level regions of a hydro-flattened DEM inside one waterbody.

    A resampled DEM blends the lake's level with the land in the pixels along the shore: outlets are
    looked for off that band, and a lake whose level surface stops short of its shore takes the band.
    """
    offshore = ndimage.binary_erosion(inside, iterations=SHORE_PX)
    same_x = valid[:, 1:] & valid[:, :-1] & (np.abs(np.diff(z, axis=1)) <= params.level_tolerance)
    same_y = valid[1:, :] & valid[:-1, :] & (np.abs(np.diff(z, axis=0)) <= params.level_tolerance)
    step_x = valid[:, 1:] & valid[:, :-1] & ~same_x
    step_y = valid[1:, :] & valid[:-1, :] & ~same_y
    has_same, has_step = np.zeros_like(valid), np.zeros_like(valid)
    for pairs, target in ((same_x, has_same), (step_x, has_step)):
        target[:, 1:] |= pairs
        target[:, :-1] |= pairs
    for pairs, target in ((same_y, has_same), (step_y, has_step)):
        target[1:, :] |= pairs
        target[:-1, :] |= pairs
    # the interior of a level surface: equal to every neighbour in the water
    labels, count = ndimage.label(valid & has_same & ~has_step)
    # the pixels on the break itself join the level region they are equal to
    edge = valid & (labels == 0)
    grown = labels.copy()
    grown[:, 1:][edge[:, 1:] & same_x] = labels[:, :-1][edge[:, 1:] & same_x]
    grown[:, :-1][edge[:, :-1] & same_x] = labels[:, 1:][edge[:, :-1] & same_x]
    grown[1:, :][edge[1:, :] & same_y] = labels[:-1, :][edge[1:, :] & same_y]
    grown[:-1, :][edge[:-1, :] & same_y] = labels[1:, :][edge[:-1, :] & same_y]
    lake = _accepted(grown, count, valid & offshore, in_box, px, params)
    if not lake.any():
        return lake
    # how far the level surface stops short of the shore (0 when the DEM is on its own grid)
    rim = lake & ~ndimage.binary_erosion(lake)
    gap = min(round(float(np.percentile(ndimage.distance_transform_edt(inside)[rim], 90))) - 1, SHORE_PX)
    if gap <= 0:
        return lake
    return lake | (ndimage.binary_dilation(lake, EIGHT, iterations=gap) & valid & ~offshore)


def _shape_lakes(inside, in_box, px, params):
    """Lake mask from the water's width alone (no DEM): the compact parts whose outlets are narrow.

    Openings (the union of the discs of radius R that fit in the water) at increasing radii cut the
    water at its necks; at the first radius where a part comes loose from its channels with narrow
    outlets it is taken as lake, with the corners the discs missed, and removed from what is left.
    """
    lake = np.zeros_like(inside)
    rest = inside.copy()
    radius = MIN_RADIUS
    while True:
        core = ndimage.distance_transform_edt(rest) >= radius
        if not core.any():
            return lake
        opened = rest & (ndimage.distance_transform_edt(~core) <= radius)
        candidates, count = ndimage.label(opened, structure=EIGHT)
        _absorb_corners(candidates, rest & ~opened, opened, radius)
        found = _accepted(candidates, count, rest, in_box, px, params)
        lake |= found
        rest &= ~found
        radius *= RADIUS_STEP


def _absorb_corners(candidates, rest, opened, radius):
    """Leftovers of the opening that lie within half a radius of it (the corners the discs miss)
    and touch exactly one candidate join that candidate; a channel reaches farther and stays out."""
    pieces, count = ndimage.label(rest, structure=EIGHT)
    if not count:
        return
    depth = ndimage.maximum(ndimage.distance_transform_edt(~opened), pieces, index=np.arange(count + 1))
    near = ndimage.grey_dilation(pieces, footprint=EIGHT)
    touch = (candidates > 0) & (near > 0)
    pairs = np.unique(np.stack([near[touch], candidates[touch]]), axis=1)
    ids, touching = np.unique(pairs[0], return_counts=True)
    target = np.zeros(count + 1, candidates.dtype)
    for piece, label in pairs.T:
        if touching[np.searchsorted(ids, piece)] == 1 and depth[piece] <= radius / 2:
            target[piece] = label
    joined = target[pieces]
    candidates[joined > 0] = joined[joined > 0]


def _accepted(labels, count, water, in_box, px, params):
    """Union of the labelled regions that are lakes; ``water``: where the water may go on from them.

    A lake is at least ``lake_area_min``; wherever the water goes on from it, it narrows to less
    than ``neck_ratio`` x the lake's inscribed diameter (measurable from ``MIN_NECK_RADIUS`` on);
    it has no thin parts (channels); and it is no more elongated than ``max_elongation``, unless
    boxes cover ``box_cover_min`` of it.
    """
    lake = np.zeros(labels.shape, bool)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    for i, sl in enumerate(ndimage.find_objects(labels, max_label=count), start=1):
        if sl is None or sizes[i] < params.lake_area_min / (px * px):
            continue
        sl = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in sl)  # a pixel around, to see the exits
        region = labels[sl] == i
        dist = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
        radius = dist.max()
        exits = _widest(water[sl] & ~region & ndimage.binary_dilation(region))
        if exits and (radius < MIN_NECK_RADIUS or exits > params.neck_ratio * 2 * radius):
            continue
        if _has_thin_parts(region, dist):
            continue
        elongation = region.sum() / (pi * radius**2)  # 1 for a disc, about length / width for a strip
        if elongation <= params.max_elongation or in_box[sl][region].mean() >= params.box_cover_min:
            lake[sl] |= region
    return lake


def _widest(exits):
    """Length in pixels of the longest connected run of exit pixels (its bounding-box diagonal)."""
    runs, count = ndimage.label(exits, structure=EIGHT)
    return max((np.hypot(r.stop - r.start, c.stop - c.start) for r, c in ndimage.find_objects(runs)), default=0.0)


def _has_thin_parts(region, dist):
    """True when part of the region lies farther than 1.5 r from the centres of all the discs of radius
    r/3 that fit in it (r: its inscribed radius). A channel leading away does; the lakes of synthetic
    scenes stay within 0.4 r (median) to 1.0 r (worst) of them, with their corners and pointed ends."""
    radius = dist.max()
    beyond = ndimage.distance_transform_edt(dist < radius / 3)  # distance to the nearest disc centre
    return bool((beyond[region] > 1.5 * radius).any())


def _polygonise(mask, transform):
    if not mask.any():
        return shapely.Polygon()
    shapes = features.shapes(mask.astype(np.uint8), mask=mask, transform=transform, connectivity=4)
    return shapely.union_all([shapely.geometry.shape(g) for g, _ in shapes])


def _settle_slivers(lake, river, min_area):
    """Give parts smaller than a pixel to the other class: they are artefacts of the pixel cut."""
    lakes, rivers = _polygons(lake), _polygons(river)
    small_lakes = [p for p in lakes if p.area < min_area]
    small_rivers = [p for p in rivers if p.area < min_area]
    if not small_lakes and not small_rivers:
        return lakes, rivers
    lake = shapely.union_all([p for p in lakes if p.area >= min_area] + small_rivers)
    river = shapely.union_all([p for p in rivers if p.area >= min_area] + small_lakes)
    return _polygons(lake), _polygons(river)
