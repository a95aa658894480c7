"""detect(): the lakes of a whole region, from a checkpoint, a DEM and a hydro layer.

Tiles come from the one tile grid (``geodata.iter_tiles``: 500 px, 100 px overlap, tiles without
water skipped), are built in a background thread while the model runs on the previous batch, and
go through the model in batches. Each box is mapped to the work SRS through its tile's grid.

Cross-tile merge (``fuse``): a lake in the overlap of two tiles is seen twice, and a lake that a
tile border cuts is seen truncated; a box side within 2 px of its tile's border is marked *cut*.
Boxes are taken by decreasing score; each one gathers the remaining boxes that overlap it by
IoU >= 0.5, and the truncated ones that lie at least half inside it (or, when it is truncated
itself, that it lies at least half inside). Of a group, the boxes scoring at least half its best
score make the merged box, side by side: each side is the score-weighted mean of that side in the
boxes that saw it (not cut there), or, when every one is cut there (a lake wider than the overlap),
the farthest of them. The group's confidence is its best score. The original's plain union of
all boxes is kept as ``union``, for comparison.
"""
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Full, Queue

import geopandas as gpd
import numpy as np
import shapely
import torch

from ..errors import LakesError
from ..geodata import iter_tiles, open_dem, read_vector, write_geojson
from ..geodata.quicklook import detections_quicklook
from ..geodata.tiles import TILE_OVERLAP, TILE_SIZE, tile_counts
from ..limits import DEFAULT_LIMITS
from .checkpoints import load_checkpoint
from .metrics import box_iou
from .names import DEVICE_CHOICES
from .pretrained import resolve_checkpoint
from .training import resolve_device
from .zoo import model_from_checkpoint

MERGES = ("fuse", "union")
LAKE_LABEL = 1
EDGE_PX = 2           # a box side this close to its tile's border may be cut by it
CREDIBLE_SHARE = 0.5  # boxes of a group scoring under this share of its best do not shape the merged box
PREFETCH_BATCHES = 2  # batches built ahead of the model: bounded, so memory stays flat
BATCH_SIZE = {"cpu": 1, "cuda": 8}


@dataclass
class TilePredictions:
    """Every lake box of every tile, in map coordinates, before the cross-tile merge."""
    boxes: np.ndarray   # (N, 4) xmin, ymin, xmax, ymax in the work SRS
    scores: np.ndarray  # (N,)
    tiles: list         # "row_col" of the tile each box comes from
    cut: np.ndarray     # (N, 4) True where a side (xmin, ymin, xmax, ymax) touches its tile's border
    crs: str
    stats: dict = field(default_factory=dict)  # tiles, batches, seconds (total, forward, waiting for tiles)


def detect(checkpoint, rasters, vector, score_threshold=None, tile_size=TILE_SIZE, tile_overlap=TILE_OVERLAP,
           batch_size=None, device="auto", progress=None, limits=DEFAULT_LIMITS, merge="fuse"):
    """Lake boxes over the whole DEM: a GeoDataFrame in the work SRS with ``confidence``, ``tile``, ``id``.

    ``checkpoint``: a path (ours or thelper's ``ckpt.best.pth``), a dict from ``load_checkpoint``, or None
    for the bundled model (``pretrained.BUNDLED``).
    ``rasters``: DEM GeoTIFF path(s); ``vector``: hydro layer path or GeoDataFrame.
    ``progress(done_tiles, total_tiles)``: called after each batch (tiles without water count as done).
    ``merge``: ``fuse`` (default, see the module docstring) or ``union`` (the original: every box kept).
    ``score_threshold``: None (default) takes the checkpoint's calibrated threshold (best F1 on its
    validation; 0.5 for checkpoints without one); a number given wins.
    The run's timings are in ``result.attrs["stats"]``.
    """
    if merge not in MERGES:
        raise LakesError(f"unknown merge {merge!r}; use one of: {', '.join(MERGES)}")
    predictions = predict_tiles(checkpoint, rasters, vector, score_threshold, tile_size, tile_overlap,
                                batch_size, device, progress, limits)
    started = time.perf_counter()
    merged = merge_predictions(predictions, merge)
    predictions.stats["merge_s"] = time.perf_counter() - started
    merged.attrs["stats"] = predictions.stats
    return merged


def predict_tiles(checkpoint, rasters, vector, score_threshold=None, tile_size=TILE_SIZE,
                  tile_overlap=TILE_OVERLAP, batch_size=None, device="auto", progress=None, limits=DEFAULT_LIMITS):
    """Run the model over every tile with water; its lake boxes at or above ``score_threshold`` and over
    1 px wide and high (as the training labels), unmerged. ``score_threshold`` None: the checkpoint's."""
    started = time.perf_counter()
    if device not in DEVICE_CHOICES:
        raise LakesError(f"unknown device {device!r}; use one of: {', '.join(DEVICE_CHOICES)}")
    if score_threshold is not None and not 0 <= score_threshold <= 1:
        raise LakesError(f"score_threshold must be between 0 and 1 (got {score_threshold})")
    target = resolve_device(device)
    if batch_size is None:
        batch_size = BATCH_SIZE[target.type]
    if not isinstance(batch_size, int) or batch_size < 1:
        raise LakesError(f"batch_size must be a whole number of tiles, at least 1 (got {batch_size!r})")
    model, info = _model(checkpoint, target)
    score_threshold = info["score_threshold"] if score_threshold is None else score_threshold
    built = info["input"]
    water = vector if isinstance(vector, gpd.GeoDataFrame) else read_vector(vector, srs=built["srs"], limits=limits)
    water = water.to_crs(built["srs"])

    boxes, scores, tiles, cut = [], [], [], []
    stats = {"tiles": 0, "batches": 0, "forward_s": 0.0, "wait_s": 0.0, "device": str(target),
             "batch_size": batch_size, "model": info["model_type"], "score_threshold": score_threshold}
    with open_dem(rasters, srs=built["srs"], px_size=built["px_size"], limits=limits) as dem:
        rows, cols = tile_counts(dem.grid, tile_size, tile_overlap)
        batches = _batches(iter_tiles(dem, water, tile_size, tile_overlap, built["scaling"], limits), batch_size)
        waited = time.perf_counter()
        # closing(): the reader thread has stopped before the DEM closes, even on an error
        with closing(_prefetched(batches, PREFETCH_BATCHES)) as prefetched:
            for batch in prefetched:
                stats["wait_s"] += time.perf_counter() - waited
                outputs, seconds = _forward(model, [tile.tensor for tile in batch], target)
                stats["forward_s"] += seconds
                stats["tiles"] += len(batch)
                stats["batches"] += 1
                for tile, output in zip(batch, outputs, strict=True):
                    pixel_boxes, tile_scores = _lake_boxes(output, score_threshold)
                    boxes.append(_to_map(pixel_boxes, tile.grid))
                    scores.append(tile_scores)
                    tiles += [f"{tile.index[0]}_{tile.index[1]}"] * len(pixel_boxes)
                    cut.append(_touches_border(pixel_boxes, tile_size))
                if progress is not None:
                    row, col = batch[-1].index
                    progress(row * cols + col + 1, rows * cols)
                waited = time.perf_counter()
    if progress is not None:
        progress(rows * cols, rows * cols)
    stats["total_s"] = time.perf_counter() - started
    return TilePredictions(boxes=np.concatenate(boxes) if boxes else np.zeros((0, 4)),
                           scores=np.concatenate(scores) if scores else np.zeros(0), tiles=tiles,
                           cut=np.concatenate(cut) if cut else np.zeros((0, 4), bool), crs=built["srs"],
                           stats=stats)


def merge_predictions(predictions, merge="fuse", iou_threshold=0.5, cover_threshold=0.5):
    """The GeoDataFrame of merged boxes (``fuse``) or of every box (``union``), best first, ``id`` from 1."""
    if merge == "union":
        boxes, scores, tiles = predictions.boxes, predictions.scores, list(predictions.tiles)
    else:
        boxes, scores, tiles = _fuse(predictions, iou_threshold, cover_threshold)
    order = np.argsort(-scores, kind="stable")
    return gpd.GeoDataFrame({"confidence": np.round(scores[order].astype(float), 4),
                             "tile": [tiles[i] for i in order], "id": np.arange(1, len(order) + 1)},
                            geometry=shapely.box(*boxes[order].T) if len(order) else [], crs=predictions.crs)


def write_detections(detections, path, rasters=None, vector=None, crs="EPSG:4326", limits=DEFAULT_LIMITS):
    """Write the detections as GeoJSON (RFC 7946 in EPSG:4326, else with a ``crs`` member) and a PNG
    quicklook beside it (hillshaded DEM if ``rasters``, waterbodies if ``vector``); returns both paths."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    paths = {"detections": write_geojson(detections, path, crs=crs)}
    work = detections.crs
    water = gpd.GeoDataFrame(geometry=[], crs=work) if vector is None else (
        vector.to_crs(work) if isinstance(vector, gpd.GeoDataFrame) else read_vector(vector, srs=work, limits=limits))
    quicklook = path.with_suffix(".png")
    if rasters is None:
        paths["quicklook"] = detections_quicklook(quicklook, detections, water)
    else:
        with open_dem(rasters, srs=work, limits=limits) as dem:
            paths["quicklook"] = detections_quicklook(quicklook, detections, water, dem)
    return paths


def detect_to_files(checkpoint, rasters, vector, outdir, score_threshold=None, tile_size=TILE_SIZE,
                    tile_overlap=TILE_OVERLAP, batch_size=None, device="auto", crs="EPSG:4326", progress=None,
                    limits=DEFAULT_LIMITS):
    """``detect`` then ``write_detections`` into ``outdir`` (detections.geojson and detections.png), as the
    WPS process runs it; returns {"detections": path, "quicklook": path}."""
    if not isinstance(vector, gpd.GeoDataFrame):
        vector = read_vector(vector, limits=limits)  # once, for the tiles and for the quicklook
    found = detect(checkpoint, rasters, vector, score_threshold, tile_size, tile_overlap, batch_size, device,
                   progress, limits)
    return write_detections(found, Path(outdir) / "detections.geojson", rasters=rasters, vector=vector, crs=crs,
                            limits=limits)


# ---------------------------------------------------------------------------------------------


_KEPT_MODEL = {}  # {(file, size, mtime, device): (model, info)}: the last model a file gave, in this process
_KEPT_MODEL_LOCK = threading.Lock()


def _model(checkpoint, device):
    """(model, info) of a checkpoint dict or file. A file's model is kept for the next call in this process
    (a worker detects with the same model again and again; reading and building it costs 0.2-0.3 s on
    CPU); a changed file (size or mtime) is read again."""
    if isinstance(checkpoint, dict):
        return model_from_checkpoint(checkpoint, device)
    path = Path(resolve_checkpoint(checkpoint))
    if not path.is_file():
        load_checkpoint(path)  # its error says what is missing
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, str(device))
    with _KEPT_MODEL_LOCK:
        if key not in _KEPT_MODEL:
            _KEPT_MODEL.clear()
            _KEPT_MODEL[key] = model_from_checkpoint(load_checkpoint(path), device)
        model, info = _KEPT_MODEL[key]
    return model, dict(info)


def _batches(tiles, size):
    batch = []
    for tile in tiles:
        batch.append(tile)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _prefetched(items, depth):
    """Iterate ``items`` in a background thread, at most ``depth`` ahead of the consumer."""
    queue, stop, end = Queue(maxsize=depth), threading.Event(), object()

    def put(item):
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce():
        try:
            for item in items:
                if not put(item):
                    return
            put(end)
        except BaseException as exc:  # handed to the consumer, raised there
            put(_Failure(exc))

    worker = threading.Thread(target=produce, name="tile-reader", daemon=True)
    worker.start()
    try:
        while True:
            item = queue.get()
            if item is end:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        while True:  # unblock a producer waiting on a full queue
            try:
                queue.get_nowait()
            except Empty:
                break
        worker.join()


@dataclass
class _Failure:
    exc: BaseException


@torch.inference_mode()
def _forward(model, tensors, device):
    """Model outputs for a batch, and the seconds the model took (mixed precision on CUDA)."""
    images = [torch.from_numpy(t).to(device, non_blocking=True) for t in tensors]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
        outputs = model(images)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return outputs, time.perf_counter() - started


def _lake_boxes(output, score_threshold):
    """(pixel boxes, scores) of the lake class at or above the threshold, over 1 px wide and high."""
    size = output["boxes"][:, 2:] - output["boxes"][:, :2]
    keep = (output["labels"] == LAKE_LABEL) & (output["scores"] >= score_threshold) & (size > 1).all(dim=1)
    return output["boxes"][keep].float().cpu().numpy().reshape(-1, 4), output["scores"][keep].float().cpu().numpy()


def _to_map(pixel_boxes, grid):
    """Pixel boxes (col0, row0, col1, row1) of a tile -> map boxes (xmin, ymin, xmax, ymax)."""
    px = grid.px_size
    return np.column_stack([grid.x0 + pixel_boxes[:, 0] * px, grid.y0 - pixel_boxes[:, 3] * px,
                            grid.x0 + pixel_boxes[:, 2] * px, grid.y0 - pixel_boxes[:, 1] * px])


def _touches_border(pixel_boxes, tile_size):
    """(N, 4) flags of the map sides (xmin, ymin, xmax, ymax) that lie on the tile's border (rows go down)."""
    col0, row0, col1, row1 = pixel_boxes.T
    return np.column_stack([col0 <= EDGE_PX, row1 >= tile_size - EDGE_PX,
                            col1 >= tile_size - EDGE_PX, row0 <= EDGE_PX])


def _fuse(predictions, iou_threshold, cover_threshold):
    """Cross-tile merge (module docstring): (boxes, scores, tiles) of the groups."""
    boxes, scores, sides_cut = predictions.boxes, predictions.scores, predictions.cut
    if not len(boxes):
        return boxes, scores, []
    cut = sides_cut.any(axis=1)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    tree = shapely.STRtree(shapely.box(*boxes.T))
    free = np.ones(len(boxes), bool)
    fused, best, tiles = [], [], []
    for i in np.argsort(-scores, kind="stable"):
        if not free[i]:
            continue
        near = tree.query(shapely.box(*boxes[i]))
        near = near[free[near]]
        iou = box_iou(boxes[i], boxes[near])[0]
        inter = iou * (area[i] + area[near]) / (1 + iou)
        # the share of a truncated box inside the other one
        cover = np.maximum(np.where(cut[near], inter / area[near], 0), inter / area[i] if cut[i] else 0)
        members = np.union1d(near[(iou >= iou_threshold) | (cover >= cover_threshold)], [i])
        free[members] = False
        credible = members[scores[members] >= CREDIBLE_SHARE * scores[i]]
        box = np.empty(4)
        for side in range(4):
            seen = credible[~sides_cut[credible, side]]
            if len(seen):
                box[side] = np.average(boxes[seen, side], weights=scores[seen])
            else:  # every view is cut on this side: the lake goes on at least as far as the farthest
                box[side] = boxes[credible, side].min() if side < 2 else boxes[credible, side].max()
        fused.append(box)
        best.append(scores[i])
        tiles.append(predictions.tiles[i])
    return np.array(fused), np.array(best), tiles
