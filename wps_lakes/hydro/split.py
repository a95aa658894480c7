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
import logging
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from math import ceil, pi
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from rasterio import features
from rasterio.enums import Resampling
from scipy import ndimage

from ..errors import LakesError
from ..geodata.grid import Grid, crs_string
from ..geodata.quicklook import split_quicklook
from ..geodata.rasters import open_dem
from ..geodata.vectors import LAKE, RIVER, check_overlap, read_vector, write_geojson
from ..limits import DEFAULT_LIMITS

log = logging.getLogger(__name__)
METHODS = ("refined", "boxes")
EVIDENCE = "split_evidence"  # the property that says what decided each part
EIGHT = np.ones((3, 3), bool)  # 8-connectivity
MIN_RADIUS, RADIUS_STEP = 2.0, 2 ** 0.5  # the opening radii tried without a DEM, in pixels
MIN_NECK_RADIUS = 3.0  # pixels: a narrower lake joined to other water is not told from a channel
SHORE_PX = 2  # the band along the shore where a resampled DEM blends water and land
# levelness of a DEM that is not hydro-flattened
SMOOTH_PX = 3.0  # Gaussian smoothing of a noisy water surface, pixels
LEVEL_BAND_SIGMAS = 4.0  # half-width of a level band, in standard deviations of the smoothed noise
MIN_BAND_M = 0.005  # the narrowest level band
EXACT_NOISE_M = 0.002  # less noise than this over the water: its level regions are read exactly
MAX_NOISE_M = 1.0  # rougher water than this: the DEM tells nothing about levels there
MAX_WATER_RELIEF_M = 500.0  # more height range than this over the water: not heights in metres
MIN_HEIGHT_M, MAX_HEIGHT_M = -500.0, 9000.0  # water surfaces on Earth lie between these
# the evidence that decided a part (the ``split_evidence`` property)
LEVEL, SHAPE, BOXES = "level surface", "shape", "boxes"
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
    evidence: dict = field(default_factory=dict)  # {evidence: number of waterbodies it decided}
    dem_unusable: int = 0  # waterbodies where a DEM was given but told nothing (split by shape and boxes)
    dem_problem: str | None = None  # why a given DEM was not used at all (its values are not heights)

    def summary(self):
        """One line for a log or a status message: which evidence split how many waterbodies."""
        waterbodies = ", ".join(f"{n} by {why}" for why, n in sorted(self.evidence.items())) or "none"
        lakes = self.lakes[EVIDENCE].value_counts().sort_index() if EVIDENCE in self.lakes else {}
        counts = f"waterbodies {waterbodies}; lake parts " + (
            ", ".join(f"{n} by {why}" for why, n in lakes.items()) or "none")
        if self.dem_problem:
            return f"{counts}; DEM not used: {self.dem_problem}"
        return counts + (f"; DEM unusable over {self.dem_unusable} of them" if self.dem_unusable else "")


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
        parts = [_parts(geom.intersection(boxes), geom.difference(boxes), BOXES) for geom in waterbodies.geometry]
    else:
        with _opened_dem(dem, crs, limits) as source:
            problem = None
            if source is not None and not waterbodies.empty:
                check_overlap(waterbodies, source.grid)  # a DEM elsewhere would be ignored without a word
                problem = _not_heights(source, waterbodies, crs)
            used = None if problem else source
            parts = [_refined(geom, crs, boxes, used, params) for geom in waterbodies.geometry]
        unusable = 0 if source is None else sum(part[3] != LEVEL for part in parts)
        return _result(waterbodies, parts, unusable, problem)
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
                   score_threshold=None, crs="EPSG:4326", device="auto", progress=None, limits=DEFAULT_LIMITS,
                   on_result=None):
    """Read, split and write, as the CLI and the WPS process run it: the waterbodies file ``vector``,
    lake boxes from a ``detections`` file or detected first with ``checkpoint`` on ``rasters`` (then
    detections.geojson and detections.png are written too; ``progress(done, total)`` counts its tiles).
    ``on_result(result)`` sees the ``SplitResult`` (its ``summary()`` says which evidence decided what).
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
    if on_result is not None:
        on_result(result)
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


def _parts(lake, river, evidence):
    """Polygon parts of one waterbody as ``_result`` takes them: (lakes, rivers, the evidence of each
    lake part, the evidence of the rivers and of the waterbody)."""
    lakes = _polygons(lake)
    return lakes, _polygons(river), [evidence] * len(lakes), evidence


def _polygons(geom):
    return [g for g in shapely.get_parts(shapely.make_valid(geom)).tolist()
            if isinstance(g, shapely.Polygon) and not g.is_empty]


def _not_heights(dem, waterbodies, crs):
    """Why the DEM's values over the water are not heights in metres (None when they may be), from a
    coarse read (about 512 px a side) of the waterbodies' area."""
    xmin, ymin, xmax, ymax = waterbodies.total_bounds
    px = max(dem.grid.px_size, (xmax - xmin) / 512, (ymax - ymin) / 512)
    grid = Grid.from_bounds((xmin - px, ymin - px, xmax + px, ymax + px), px, crs)
    z = dem.read(grid, resampling=Resampling.nearest)  # a check of the value range: nearest is 3x cheaper
    water = features.rasterize(((g, 1) for g in waterbodies.geometry), out_shape=grid.shape,
                               transform=grid.transform, all_touched=True, dtype=np.uint8).astype(bool)
    heights = np.ma.getdata(z)[water & ~np.ma.getmaskarray(z)]
    if heights.size == 0:
        return "it has no data over the waterbodies"
    if np.ptp(heights) == 0 and len(waterbodies) > 1:
        return f"it is constant ({heights[0]:g}) over every waterbody"
    if heights.min() < MIN_HEIGHT_M or heights.max() > MAX_HEIGHT_M or np.ptp(heights) > MAX_WATER_RELIEF_M:
        return (f"its values over the water range from {heights.min():g} to {heights.max():g}, "
                "not heights in metres")
    return None


def _result(waterbodies, parts, dem_unusable=0, dem_problem=None):
    """Explode to one feature per part, original properties kept, TYPECE and ``split_evidence`` set;
    lake parts first. Logs how many waterbodies each kind of evidence decided."""
    props = waterbodies.drop(columns=waterbodies.geometry.name).reset_index(drop=True)
    rows, geoms, types, evidence = [], [], [], []
    for i, (lakes, rivers, lake_evidence, river_evidence) in enumerate(parts):
        for typece, polys, why in ((LAKE, lakes, lake_evidence), (RIVER, rivers, [river_evidence] * len(rivers))):
            rows += [i] * len(polys)
            geoms += polys
            types += [typece] * len(polys)
            evidence += why
    hydro = props.iloc[rows].reset_index(drop=True)
    hydro["TYPECE"] = pd.Series(types, dtype=object)
    hydro[EVIDENCE] = pd.Series(evidence, dtype=object)
    hydro = gpd.GeoDataFrame(hydro, geometry=gpd.GeoSeries(geoms, crs=waterbodies.crs))
    lakes = hydro[hydro["TYPECE"] == LAKE].reset_index(drop=True)
    rivers = hydro[hydro["TYPECE"] == RIVER].reset_index(drop=True)
    counts = dict(Counter(part[3] for part in parts))
    result = SplitResult(lakes=lakes, rivers=rivers, hydro=hydro, evidence=counts, dem_unusable=dem_unusable,
                         dem_problem=dem_problem)
    log.info("split %d waterbodies: %s", len(parts), result.summary())
    if dem_problem:
        log.warning("the DEM was not used: %s; the split went on by shape and boxes", dem_problem)
    elif dem_unusable:
        log.warning("the DEM was unusable over the water of %d waterbodies (no data, or heights that do not "
                    "read as water levels): those were split by shape and boxes", dem_unusable)
    return result


# ---------------------------------------------------------------------------------------------
# the refined method, one waterbody at a time on its own grid


def _refined(geom, crs, boxes, dem, params):
    if geom.is_empty:
        return [], [], [], SHAPE
    grid = _feature_grid(geom, crs, params.px_size if dem is None else dem.grid.px_size)
    inside = _rasterise(geom, grid)
    if not inside.any():  # thinner than a pixel: nothing to measure, the boxes decide
        in_boxes = geom.intersection(boxes).area > geom.area / 2
        return _parts(geom, shapely.Polygon(), BOXES) if in_boxes else _parts(shapely.Polygon(), geom, BOXES)
    in_box = np.zeros(grid.shape, bool) if boxes.is_empty else _rasterise(boxes, grid)

    level = None
    if dem is not None:
        z = dem.read(grid)
        valid = inside & ~np.ma.getmaskarray(z)
        z = np.ma.getdata(z).astype(np.float64)
        if valid.sum() >= params.dem_cover_min * inside.sum():
            level, sharp = _level_lakes(z, inside, valid, in_box, grid.px_size, params)
    if level is None:  # no DEM, or it tells nothing here: the shape and the boxes decide
        lake, decided, evidence = _shape_lakes(inside, in_box, grid.px_size, params), None, SHAPE
    elif sharp:  # a hydro-flattened DEM on its own grid: its level surfaces are the lakes
        lake = decided = _nearest(level, valid, inside)
        if _one_lake(inside, decided, in_box, grid.px_size, params):
            # water that is not level there (a surface interpolated from uneven shores) has nowhere to
            # flow, so it is lake too
            lake = inside
        evidence = LEVEL
    else:
        shape = _shape_lakes(inside, in_box, grid.px_size, params)
        lake, decided = _with_shape(_nearest(level, valid, inside), shape)
        evidence = LEVEL
    # the pixels the shoreline crosses (centre outside) take the type of the nearest inside pixel
    lake = _nearest(lake, inside) & _rasterise(geom, grid, all_touched=True)
    lake_poly = _polygonise(lake, grid.transform)
    lakes, rivers = _settle_slivers(geom.intersection(lake_poly), geom.difference(lake_poly), grid.px_size ** 2)
    return lakes, rivers, [_lake_evidence(p, decided, in_box, grid) for p in lakes], evidence


def _one_lake(inside, level, in_box, px, params):
    """True when the waterbody holds one level surface but more water than it, and the whole waterbody
    is a lake by its shape (big enough, compact, no channel)."""
    if not level.any() or level[inside].all() or ndimage.label(level, structure=EIGHT)[1] != 1:
        return False
    return bool(_accepted(inside.astype(np.int32), 1, inside, in_box, px, params).any())


def _lake_evidence(part, decided, in_box, grid):
    """What decided a lake part: its level surface when the DEM decided most of it (``decided``), else
    its shape (with the boxes when they cover most of it)."""
    pixels = _rasterise(part, grid)
    if pixels.any() and decided is not None and decided[pixels].mean() > 0.5:
        return LEVEL
    return f"{SHAPE}, {BOXES}" if pixels.any() and in_box[pixels].mean() >= 0.5 else SHAPE


def _rasterise(geom, grid, all_touched=False):
    return features.rasterize([(geom, 1)], out_shape=grid.shape, transform=grid.transform, dtype=np.uint8,
                              all_touched=all_touched).astype(bool)


def _nearest(mask, known, where=None):
    """``mask`` where ``known``, elsewhere (only ``where`` matters, when given) the value at the nearest
    known pixel."""
    if known.all() or (where is not None and not (where & ~known).any()):
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
    """(lake mask, sharp) from the level regions of the DEM's water inside one waterbody; the mask is
    None where the DEM cannot tell level water from descending water (rougher than ``MAX_NOISE_M``,
    absurd height ranges); ``sharp``: the level surfaces reach the shore exactly, so their
    outlines are the lakes'.

    The noise is measured on the water itself: a hydro-flattened surface (noise within
    ``EXACT_NOISE_M``) is read exactly; a noisy one is smoothed and cut into level bands whose
    width follows the noise left after smoothing, so a river, which goes on descending, leaves each
    band through its channel, and a lake fills one band to its shore.
    """
    offshore = ndimage.binary_erosion(inside, iterations=SHORE_PX)
    water = valid & offshore
    if water.sum() < params.lake_area_min / (px * px):
        water = valid
    heights = z[water]
    if heights.size == 0 or np.ptp(heights) > MAX_WATER_RELIEF_M:
        return None, False
    noise = _noise(z, water)
    if noise > MAX_NOISE_M:
        return None, False
    sharp = noise <= EXACT_NOISE_M  # a hydro-flattened DEM: float rounding and river curvature only
    if sharp:
        lake = _exact_level_lakes(z, inside, valid, in_box, px, params)
    else:
        lake = _noisy_level_lakes(z, valid, water, in_box, px, params, noise)
    if not lake.any():  # no level surface at all (a river, or water interpolated from its shores)
        return lake, False
    # how far the level surface stops short of the shore (0 when the DEM is on its own grid); short of
    # it (a resampled or coarse DEM blends water and land there), its outline is not the lake's: the
    # shape draws it
    rim = lake & ~ndimage.binary_erosion(lake)
    gap = round(float(np.percentile(ndimage.distance_transform_edt(inside)[rim], 90))) - 1
    sharp = sharp and gap <= 0
    if gap <= 0:
        return lake, sharp
    lake |= ndimage.binary_dilation(lake, EIGHT, iterations=min(gap, SHORE_PX)) & valid & ~offshore
    return lake, sharp


def _noise(z, water):
    """Robust standard deviation (m) of the water heights around the mean of their water neighbours."""
    weights = ndimage.uniform_filter(water.astype(np.float64), 3) * 9 - water
    sums = ndimage.uniform_filter(np.where(water, z, 0.0), 3) * 9 - np.where(water, z, 0.0)
    usable = water & (weights >= 3)
    if usable.sum() < 9:
        return 0.0
    residual = z[usable] - sums[usable] / weights[usable]
    mad = np.median(np.abs(residual - np.median(residual)))
    return float(1.4826 * mad / np.sqrt(1 + 1 / 8))


def _smooth(z, water, sigma):
    """Gaussian mean of the heights over the water only (the land around does not bleed in)."""
    weight = ndimage.gaussian_filter(water.astype(np.float64), sigma)
    total = ndimage.gaussian_filter(np.where(water, z, 0.0), sigma)
    return np.where(water, total / np.maximum(weight, 1e-9), np.nan)


def _noisy_level_lakes(z, valid, water, in_box, px, params, noise):
    """Lakes of a noisy DEM: the compact parts of the water that lie within one level band."""
    smooth = _smooth(z, water, SMOOTH_PX)
    # the noise left after smoothing; a floor keeps the bands few on nearly smooth surfaces
    tolerance = max(LEVEL_BAND_SIGMAS * noise / (2 * np.sqrt(pi) * SMOOTH_PX), MIN_BAND_M)
    heights = smooth[water]
    edges = np.arange(heights.min() - tolerance, heights.max() + 2 * tolerance, tolerance)
    counts = np.histogram(heights, edges)[0]
    centres = (edges[:-1] + edges[1:]) / 2
    peaks = [i for i in range(len(counts)) if counts[i] >= params.lake_area_min / (px * px)
             and counts[i] >= counts[max(i - 1, 0)] and counts[i] >= counts[min(i + 1, len(counts) - 1)]]
    lake = np.zeros_like(water)
    taken = np.zeros_like(water)
    for i in sorted(peaks, key=lambda i: -counts[i]):
        band = water & ~taken & (np.abs(smooth - centres[i]) <= tolerance)
        parts, count = ndimage.label(band, structure=EIGHT)
        sizes = np.bincount(parts.ravel(), minlength=count + 1)
        free = water & ~taken
        taken |= band
        for j, sl in enumerate(ndimage.find_objects(parts), start=1):
            if sizes[j] < params.lake_area_min / (px * px):
                continue
            sl = tuple(slice(max(s.start - 2, 0), s.stop + 2) for s in sl)  # on its own box: fast
            part = ndimage.binary_fill_holes(parts[sl] == j) & free[sl]  # with the pixels the noise pushed out
            taken[sl] |= part
            lake[sl] |= _shape_lakes(part, in_box[sl], px, params, beyond=water[sl] & ~part)
    return lake


def _exact_level_lakes(z, inside, valid, in_box, px, params):
    """Lake mask from the level regions of a hydro-flattened DEM (neighbours within ``level_tolerance``).

    Outlets are measured across all the water: a step of a stepped river is as wide as the river there.
    """
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
    return _accepted(grown, count, valid, in_box, px, params)


def _with_shape(level, shape):
    """Lakes from both kinds of evidence, for a DEM whose level surfaces do not reach the shore exactly
    (noisy, resampled, coarse): (mask, the part of it the level surfaces decided).

    Every lake found by shape stays (the DEM only adds evidence: a surface that seems to descend may be
    one interpolated across from the shores); one that a level lake overlaps is confirmed by it and
    keeps the shape's outline; a level lake that no shape lake overlaps is added (the DEM found what
    the shape missed).
    """
    shapes, _ = ndimage.label(shape, structure=EIGHT)
    levels, _ = ndimage.label(level, structure=EIGHT)
    confirmed = np.isin(shapes, np.unique(shapes[(shapes > 0) & (levels > 0)])) & (shapes > 0)
    own = level & ~np.isin(levels, np.unique(levels[(shapes > 0) & (levels > 0)]))
    return shape | own, confirmed | own


def _shape_lakes(inside, in_box, px, params, beyond=None):
    """Lake mask from the water's width alone (no DEM): the compact parts whose outlets are narrow.

    ``beyond``: more water the parts may flow on into (seen as outlets, never taken).
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
        found = _accepted(candidates, count, rest if beyond is None else rest | beyond, in_box, px, params,
                          trim_channels=True)
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


def _accepted(labels, count, water, in_box, px, params, trim_channels=False):
    """Union of the labelled regions that are lakes; ``water``: where the water may go on from them.

    A lake is at least ``lake_area_min``; wherever the water goes on from it, it narrows to less
    than ``neck_ratio`` x the lake's inscribed diameter (measurable from ``MIN_NECK_RADIUS`` on);
    it has no thin parts (channels); and it is no more elongated than ``max_elongation``, unless
    boxes cover ``box_cover_min`` of it. ``trim_channels``: the region was cut out by an opening, so
    it may hold the end of a channel that leads away (``_without_channel_ends``).
    """
    lake = np.zeros(labels.shape, bool)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    width = None
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
            if exits and trim_channels:
                if width is None:  # half-width of the water, measured once, on the whole grid
                    width = ndimage.distance_transform_edt(water | (labels > 0))
                region = _without_channel_ends(region, water[sl] & ~region, width[sl])
            lake[sl] |= region
    return lake


def _without_channel_ends(region, beyond, width):
    """``region`` less the ends of the channels it opens into (``beyond``; ``width``: the water's
    half-width, distance to its shore): an opening cuts a channel where the water gets narrower than
    its discs, so the channel's first stretch, as narrow as the channel itself, comes with the lake.
    A lake begins where the water gets wider than the channel: the parts of the region that no disc
    wider than the channel covers go back to it when they touch the channel, or when they join two
    wider parts (a stretch of the same channel between two lakes of a chain)."""
    mouths = beyond & ndimage.binary_dilation(region, EIGHT)
    channel = width[mouths].max() + 0.5  # half-width of the widest channel at its mouth
    inner = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    covered = ndimage.distance_transform_edt(inner < channel + 1) <= channel + 1  # discs wider than the channel
    covered &= region
    ends, count = ndimage.label(region & ~covered, structure=EIGHT)
    if not count:
        return region
    wide, _ = ndimage.label(covered, structure=EIGHT)
    channel_like = np.zeros(count + 1, bool)
    channel_like[np.unique(ends[ndimage.binary_dilation(mouths, EIGHT) & (ends > 0)])] = True
    # the wide parts each narrow part touches: two or more make it a link between lakes
    near = ndimage.grey_dilation(wide, footprint=EIGHT)
    links = np.unique(np.stack([ends[(ends > 0) & (near > 0)], near[(ends > 0) & (near > 0)]]), axis=1)
    piece, touched = np.unique(links[0], return_counts=True)
    channel_like[piece[touched >= 2]] = True
    return region & ~channel_like[ends]


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
