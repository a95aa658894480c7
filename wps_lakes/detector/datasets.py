"""torch datasets over geodata windows: one sample per focal-lake window (thelper's TB15D104Dataset).

A sample is ``(image, target)``: image a float32 (3, H, W) tensor in [0, 1] from
``geodata.build_tensor``, target ``{"boxes": (N, 4) float32 pixel boxes, "labels": (N,) int64 ones}``.
Window sizes differ; ``collate`` keeps a batch as lists and the detector pads them itself, so any
batch size works. With ``cache`` (the default) every tensor is built once, up front, and kept in
memory as float16, so an epoch costs no raster reads. Augmentations (flips, rotations by 90 degrees)
move the boxes with the pixels and draw from a generator seeded by (seed, epoch, index): the same
epoch gives the same samples whatever the worker count, and a resumed session sees the same data.
"""
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
import torch

from ..errors import LakesError
from ..geodata import (
    Window,
    build_tensor,
    ground_truth_boxes,
    open_dem,
    read_vector,
    spatial_split,
    tile_grids,
    training_windows,
)
from ..geodata.vectors import RIVER, TYPECE
from ..limits import DEFAULT_LIMITS
from .config import TB15_TILE_DATASET, TRANSFORMS

CACHE_MAX_BYTES = 8 * 2**30   # beyond this the tensors are rebuilt at each use instead of kept
SPLITS = ("train", "valid")


def collate(batch):
    """A batch as (list of images, list of targets): the detectors take lists of any sizes."""
    images, targets = zip(*batch, strict=True)
    return list(images), list(targets)


def _flip(image, boxes, axis):
    """Flip along ``axis`` (2: left-right, 1: up-down) with the boxes."""
    size = image.shape[axis]
    image = image.flip(axis)
    boxes = boxes.clone()
    lo, hi = (0, 2) if axis == 2 else (1, 3)
    boxes[:, lo], boxes[:, hi] = size - boxes[:, hi], size - boxes[:, lo]
    return image, boxes


def _rot90(image, boxes):
    """Rotate a quarter turn counter-clockwise (column x -> row W - x, row y -> column y)."""
    width = image.shape[2]
    image = image.rot90(1, dims=(1, 2))
    boxes = torch.stack([boxes[:, 1], width - boxes[:, 2], boxes[:, 3], width - boxes[:, 0]], dim=1)
    return image, boxes


def _scale(image, boxes, factor):
    """Zoom the window by ``factor`` (bilinear; the water mask kept binary), the boxes with it; boxes
    left 1 px wide or high are dropped, as in the labels."""
    _, height, width = image.shape
    new_h, new_w = max(32, round(height * factor)), max(32, round(width * factor))
    image = torch.nn.functional.interpolate(image[None], size=(new_h, new_w), mode="bilinear",
                                            align_corners=False)[0]
    image[1] = (image[1] >= 0.5).to(image.dtype)
    boxes = boxes * torch.tensor([new_w / width, new_h / height] * 2, dtype=boxes.dtype)
    keep = ((boxes[:, 2] - boxes[:, 0]) > 1) & ((boxes[:, 3] - boxes[:, 1]) > 1)
    return image, boxes[keep]


def _resample(image, source_px, px_size):
    """The DEM channel as a DEM of ``source_px`` metres resampled to ``px_size`` would look: area-averaged
    to the coarser pixels, then bilinear back (a finer source changes nothing at the work pixel size)."""
    factor = source_px / px_size
    if factor <= 1.05:
        return image
    dem = image[0][None, None]
    _, _, height, width = dem.shape
    coarse = torch.nn.functional.interpolate(dem, size=(max(2, round(height / factor)), max(2, round(width / factor))),
                                             mode="area")
    image = image.clone()
    image[0] = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    return image


def _relief(image, factor, offset):
    """DEM channel scaled by ``factor`` around the water level (its median under the water mask), shifted
    by ``offset``, clipped to [0, 1]: more or less relief in the window, a different elevation."""
    dem, water = image[0], image[1] > 0.5
    level = dem[water].median() if water.any() else dem.median()
    image = image.clone()
    image[0] = (level + (dem - level) * factor + offset).clamp(0, 1)
    return image


def _log_uniform(rng, low, high):
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def augment(image, boxes, operations, rng, px_size=3.0):
    """Apply the config's train_augments in order, each with probability p: flips and quarter turns
    (the 8 orientations), zoom (``RandomScale``), the DEM of a coarser source (``RandomResample``, pixel
    sizes px_min..px_max metres), relief scaled and elevation shifted (``RandomRelief``), DEM noise
    (``RandomDemNoise``) and nearly flat land (``RandomFlatten``). Boxes move with the pixels."""
    for op in operations:
        params = op["params"]
        if rng.random() >= params.get("p", 0.5):
            continue
        kind = TRANSFORMS[op["operation"]]
        if kind == "hflip":
            image, boxes = _flip(image, boxes, 2)
        elif kind == "vflip":
            image, boxes = _flip(image, boxes, 1)
        elif kind == "rot90":
            image, boxes = _rot90(image, boxes)
        elif kind == "scale":
            image, boxes = _scale(image, boxes, _log_uniform(rng, params["min"], params["max"]))
        elif kind == "resample":
            image = _resample(image, _log_uniform(rng, params["px_min"], params["px_max"]), px_size)
        elif kind in ("relief", "flatten"):
            offset = rng.uniform(-params.get("offset", 0.0), params.get("offset", 0.0))
            image = _relief(image, _log_uniform(rng, params["min"], params["max"]), offset)
        elif kind == "noise":
            sigma = rng.uniform(0, params["max"])
            noise = torch.from_numpy(rng.standard_normal(image.shape[1:]).astype(np.float32)) * sigma
            image = image.clone()
            image[0] = (image[0] + noise).clamp(0, 1)
    return image, boxes


@dataclass(frozen=True)
class Scene:
    """Where one dataset's samples come from: its files and how to read them."""

    rasters: tuple
    vector: str
    srs: str
    px_size: float
    scaling: str


class WindowDataset(torch.utils.data.Dataset):
    """Samples for a list of ``(scene index, Window)``; tensors cached in memory or built on demand."""

    def __init__(self, scenes, items, augments=(), cache=True, seed=0, limits=DEFAULT_LIMITS, hydro=None):
        self.scenes = list(scenes)
        self.items = list(items)
        self.augments = list(augments)
        self.seed = seed
        self.epoch = 0
        self.limits = limits
        self._hydro = dict(hydro or {})     # scene index -> GeoDataFrame, read once
        self._opened = (None, {})           # (pid, {scene index: Dem}) opened lazily in each process
        self._cache = None
        if cache:
            self._cache = [self._build(i).to(torch.float16) for i in range(len(self.items))]
            for dem in self._opened[1].values():  # every tensor is built: the rasters are not needed any more
                dem.close()
            self._opened = (None, {})

    def __len__(self):
        return len(self.items)

    def set_epoch(self, epoch):
        self.epoch = epoch

    def _dem(self, scene_index):
        pid, dems = self._opened
        if pid != os.getpid():  # a forked worker must not share the parent's GDAL handles
            dems = {}
            self._opened = (os.getpid(), dems)
        if scene_index not in dems:
            scene = self.scenes[scene_index]
            dems[scene_index] = open_dem(list(scene.rasters), scene.srs, scene.px_size, self.limits)
        return dems[scene_index]

    def _build(self, index):
        scene_index, window = self.items[index]
        if scene_index not in self._hydro:
            scene = self.scenes[scene_index]
            self._hydro[scene_index] = read_vector(scene.vector, scene.srs, require_typece=True, limits=self.limits)
        tensor = build_tensor(self._dem(scene_index), self._hydro[scene_index], window.grid,
                              self.scenes[scene_index].scaling)
        return torch.from_numpy(tensor)

    def boxes(self, index):
        return torch.as_tensor(self.items[index][1].boxes, dtype=torch.float32).reshape(-1, 4)

    def __getitem__(self, index):
        image = self._cache[index].float() if self._cache is not None else self._build(index)
        boxes = self.boxes(index)
        if self.augments:
            rng = np.random.default_rng((self.seed, self.epoch, index))
            image, boxes = augment(image, boxes, self.augments, rng, self.scenes[self.items[index][0]].px_size)
        return image.contiguous(), {"boxes": boxes, "labels": torch.ones(len(boxes), dtype=torch.int64)}


def scene_windows(hydro, grid, params, focal):
    """Samples from the whole scene (``sampling: scene``): the focal-lake windows, a window for each lake
    far from rivers (isolated lakes), and the inference tiles with water over the whole DEM (rivers
    only, lakes cut by tile borders, no lake at all), so that training sees what detect sees."""
    seen = {w.focal_id for w in focal}
    try:
        isolated = training_windows(hydro, grid, params["roi_buffer"], params["lake_area_min"],
                                    params["lake_area_max"], 4 * max(grid.width, grid.height) * grid.px_size)
    except LakesError:  # no lake in the area range at all
        isolated = []
    not_rivers = hydro[hydro[TYPECE] != RIVER]
    tiles = [tile for _, tile in tile_grids(grid, SCENE_TILE_PX, 0)
             if len(hydro.sindex.query(shapely.box(*tile.bounds), predicate="intersects"))]
    return [*focal, *(w for w in isolated if w.focal_id not in seen),
            *(Window(tile, ground_truth_boxes(not_rivers, tile), -1) for tile in tiles)]


def _windows_in_roi(windows, roi_path, srs, limits):
    roi = read_vector(roi_path, srs, limits=limits)
    area = shapely.union_all(roi.geometry.values)
    return [w for w in windows if area.contains(shapely.Point(np.mean(w.grid.bounds[0::2]),
                                                               np.mean(w.grid.bounds[1::2])))]


def _share_windows(windows, ratios, seed):
    """``{split: [Window, ...]}`` drawn window by window (overlaps allowed): each smaller share gets at
    least one window, the largest the rest. For areas too small for ``spatial_split``."""
    order = list(np.random.default_rng(seed).permutation(len(windows)))
    names = sorted(ratios, key=lambda name: (ratios[name], name))
    total = sum(ratios.values())
    parts = {}
    for name in names[:-1]:
        count = max(1, round(ratios[name] / total * len(windows)))
        parts[name], order = [windows[i] for i in sorted(order[:count])], order[count:]
    parts[names[-1]] = [windows[i] for i in sorted(order)]
    return parts


SCENE_TILE_PX = 320   # the scene tiles of sampling "scene": side by side, small enough for a spatial split
SPLIT_ATTEMPTS = 8   # spatial splits tried (seed, seed + 1, ...) before windows are shared out
SHARED_FILES_SPLIT = {"train": 0.8, "valid": 0.2}   # train and valid datasets on the same files, over 1 in all


def _files_key(params):
    """What a dataset reads: its rasters (as a set) and its vector, as resolved paths."""
    rasters = params["raster_path"] if isinstance(params["raster_path"], list) else [params["raster_path"]]
    return (frozenset(str(Path(p).resolve()) for p in rasters), str(Path(params["vector_path"]).resolve()))


def _groups(config, log):
    """``[(label, params, {split: ratio})]``: one entry per set of files, the datasets that read the
    same files merged, so that their windows are split once, spatially, and validation never sees a
    training window (``SHARED_FILES_SPLIT`` when their shares add up to more than 1)."""
    loaders = config.loaders
    groups = {}
    for name, entry in config.datasets.items():
        ratios = {split: loaders[f"{split}_split"].get(name, 0.0) for split in SPLITS}
        if not any(ratios.values()):
            continue
        if entry["type"] == TB15_TILE_DATASET:
            raise LakesError(f"datasets.{name}: the tile dataset serves inference (wps-lakes detect); train on "
                             "thelper.data.geo.ogc.TB15D104Dataset windows")
        params = entry["params"]
        if not params.get("raster_path") or not params.get("vector_path"):
            raise LakesError(f"datasets.{name} needs raster_path and vector_path")
        group = groups.setdefault(_files_key(params), {"names": [], "params": params, "ratios": {}})
        group["names"].append(name)
        for split, ratio in ratios.items():
            group["ratios"][split] = group["ratios"].get(split, 0.0) + ratio
        if ratios["train"] > 0 and group["params"] is not params and not ratios["valid"]:
            group["params"] = params  # the training dataset's options (areas, distances) choose the windows
    out = []
    for group in groups.values():
        names, ratios = group["names"], group["ratios"]
        if len(names) > 1 and sum(1 for r in ratios.values() if r > 0) > 1:
            if sum(ratios.values()) > 1 + 1e-9:
                ratios = {split: SHARED_FILES_SPLIT[split] if ratio > 0 else 0.0 for split, ratio in ratios.items()}
            log(f"warning: datasets {', '.join(names)} read the same files; their windows are split spatially "
                f"({', '.join(f'{s} {r:g}' for s, r in ratios.items() if r > 0)}) so that validation never sees a "
                "training window; give validation a scene of its own for scores on unseen ground")
        out.append(("+".join(names), group["params"], ratios))
    return out


def build_datasets(config, log=print, limits=DEFAULT_LIMITS):
    """``{"train": WindowDataset, "valid": WindowDataset}`` from a SessionConfig's datasets and splits.

    Datasets that read the same files are taken together and split spatially (with a warning), so a
    config whose train and valid datasets name one scene (or ``with_data`` on any config) cannot
    validate on its training windows."""
    loaders = config.loaders
    scenes, hydros, items = [], {}, {split: [] for split in SPLITS}
    for name, params, ratios in _groups(config, log):
        rasters = params["raster_path"] if isinstance(params["raster_path"], list) else [params["raster_path"]]
        scene = Scene(tuple(rasters), params["vector_path"], params["srs_target"], params["px_size"],
                      params["scaling"])
        hydro = read_vector(scene.vector, scene.srs, require_typece=True, limits=limits)
        with open_dem(rasters, scene.srs, scene.px_size, limits) as dem:
            windows = training_windows(hydro, dem.grid, params["roi_buffer"], params["lake_area_min"],
                                       params["lake_area_max"], params["lake_river_max_dist"])
            if params.get("sampling") == "scene":
                windows = scene_windows(hydro, dem.grid, params, windows)
        if params["master_roi"]:
            windows = _windows_in_roi(windows, params["master_roi"], scene.srs, limits)
        used = {split: ratio for split, ratio in ratios.items() if ratio > 0}
        if len(used) == 1 and sum(ratios.values()) >= 1:
            parts = {next(iter(used)): windows}
        else:
            rest = 1.0 - sum(ratios.values())
            shares = {**ratios, **({"unused": rest} if rest > 1e-9 else {})}
            for attempt in range(SPLIT_ATTEMPTS):  # another corner to start from may keep every split
                parts = spatial_split(windows, shares, loaders["split_block_size"], loaders["seed"] + attempt)
                if all(parts.get(split) for split in used):
                    break
            if any(not parts.get(split) for split in used) and len(windows) >= len(used):
                parts = _share_windows(windows, used, loaders["seed"])
                log(f"dataset {name}: the area is too small to keep the splits apart (its windows overlap); "
                    "windows shared out one by one, so validation scores are optimistic")
        index = len(scenes)
        scenes.append(scene)
        hydros[index] = hydro
        for split in SPLITS:
            items[split] += [(index, window) for window in parts.get(split, [])]
        log(f"dataset {name}: {len(windows)} windows -> " +
            ", ".join(f"{split} {len(parts.get(split, []))}" for split in SPLITS))
    for split in SPLITS:
        if not items[split]:
            raise LakesError(f"the {split} split has no window; give it a dataset or a larger share "
                             f"(loaders.{split}_split), or use a larger area")
    pixels = sum(w.grid.width * w.grid.height for split in SPLITS for _, w in items[split])
    cache = loaders["cache"] and 3 * 2 * pixels <= CACHE_MAX_BYTES
    if loaders["cache"] and not cache:
        log(f"tensors would take {6 * pixels / 2**30:.1f} GiB: built at each use instead of cached")
    return {split: WindowDataset(scenes, items[split], loaders["train_augments"] if split == "train" else (),
                                 cache, loaders["seed"], limits, hydros)
            for split in SPLITS}
