"""Detection benchmark: end-to-end cost against the model's own forward time, merge quality, memory.

    .venv/bin/python -m benchmarks.bench_detect                     # 6 km scene, memory at 2k, 6k, 20k px
    .venv/bin/python -m benchmarks.bench_detect --quick             # 3 km scene, memory at 2k and 6k px
    .venv/bin/python -m benchmarks.bench_detect --checkpoint CKPT   # a trained detector (else a fresh model)
    .venv/bin/python -m benchmarks.bench_detect --model fasterrcnn_resnet50_fpn --device cuda --batch-size 8

Overhead: ``detect`` (tiles read and built, batched through the model, boxes merged: ``pipeline_ratio``)
and ``detect`` plus ``write_detections`` (GeoJSON and quicklook) end to end, against the model's
forward time over the same tiles: as timed inside that run (``ratio_in_run``), and as timed on its own
in the same process just before (tensors built beforehand, same batches: ``ratio_to_pure_forward``).
Target: <= 1.3. On a shared machine the second one is noisy: each is repeated and the best is kept.

Merge: the AP@0.5 of the cross-tile merge (``fuse``) and of the original's plain union of every
tile's boxes, on the same raw tile predictions: those of a perfect per-tile detector (each true
lake box clipped to every tile that sees part of it) and, with ``--checkpoint``, the model's
(score threshold 0.05) on five scenes (one with ``--quick``).

Memory: peak RSS of ``detect`` on rasters of 2 000, 6 000 and 20 000 px a side (20 000 px: 1.5 GiB of
float32) with lakes in the same 2 000 px corner, each in its own process (fast model): the tiles the
model sees are the same, so any growth is what the raster size costs. Target: flat within 20%.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely
import torch

from wps_lakes.detector.checkpoints import save_checkpoint
from wps_lakes.detector.inference import (
    BATCH_SIZE,
    TilePredictions,
    detect,
    merge_predictions,
    predict_tiles,
    write_detections,
)
from wps_lakes.detector.training import resolve_device
from wps_lakes.detector.zoo import build_model, model_from_checkpoint, qualified_name
from wps_lakes.geodata import iter_tiles, make_scene, open_dem, read_vector
from wps_lakes.geodata.tiles import tile_grids
from wps_lakes.hydro import evaluate_detections, truth_lake_boxes

from .bench_geodata import memory_inputs

SEED = 21                  # a scene no training run used
MERGE_SEEDS = (21, 22, 23, 24, 25)
FAST = ("fcos_mobilenet_v3_large_fpn", {"image_scale": 0.5})


def fresh_checkpoint(path, model, params):
    torch.manual_seed(0)
    state = build_model(model, params).state_dict()
    return save_checkpoint(path, {"name": "fresh", "epoch": 0, "model": state, "model_type": qualified_name(model),
                                  "model_params": params})


def overhead(paths, checkpoint, device, batch_size, workdir, repeats=3):
    """Pure forward seconds over the tiles (tensors built beforehand, after one warm-up call) and
    end-to-end seconds of detect + write_detections over the same tiles, in the same process,
    alternated ``repeats`` times; the best of each (the machine is shared). The first detect reads and
    builds the model (``first_call_pipeline_ratio``); later ones reuse it, as a worker process does."""
    target = resolve_device(device)
    model, info = model_from_checkpoint(checkpoint, target)
    batch_size = batch_size or BATCH_SIZE[target.type]
    water = read_vector(paths["hydro"], srs=info["input"]["srs"])
    with open_dem([paths["dem"]], srs=info["input"]["srs"], px_size=info["input"]["px_size"]) as dem:
        tensors = [tile.tensor for tile in iter_tiles(dem, water, scaling=info["input"]["scaling"])]
    batches = [tensors[i:i + batch_size] for i in range(0, len(tensors), batch_size)]
    _forward_seconds(model, batches[:1], target)  # warm-up
    runs = []
    for _ in range(repeats):
        forward = _forward_seconds(model, batches, target)
        started = time.perf_counter()
        found = detect(checkpoint, [paths["dem"]], paths["hydro"], device=device, batch_size=batch_size)
        detected = time.perf_counter() - started
        write_detections(found, workdir / "detections.geojson", rasters=[paths["dem"]], vector=paths["hydro"])
        end_to_end = time.perf_counter() - started
        stats = found.attrs["stats"]
        runs.append({"end_to_end_s": round(end_to_end, 2), "detect_s": round(detected, 2),
                     "pipeline_ratio": round(detected / forward, 3), "forward_in_run_s": round(stats["forward_s"], 2),
                     "ratio_in_run": round(end_to_end / stats["forward_s"], 3),
                     "waiting_for_tiles_s": round(stats["wait_s"], 2),
                     "pure_forward_s": round(forward, 2), "ratio_to_pure_forward": round(end_to_end / forward, 3)})
    best = min(runs, key=lambda run: run["end_to_end_s"])
    return {"model": stats["model"], "device": stats["device"], "batch_size": batch_size, "tiles": stats["tiles"],
            "detections": len(found), "tiles_per_s": round(stats["tiles"] / best["end_to_end_s"], 2),
            "ratio_in_run": best["ratio_in_run"],
            "pipeline_ratio": min(run["pipeline_ratio"] for run in runs),
            "writing_outputs_s": round(best["end_to_end_s"] - best["detect_s"], 2),
            "ratio_to_pure_forward": min(run["ratio_to_pure_forward"] for run in runs),
            "first_call_pipeline_ratio": runs[0]["pipeline_ratio"], "runs": runs}


def _forward_seconds(model, batches, target):
    seconds = 0.0
    with torch.inference_mode():
        for batch in batches:
            images = [torch.from_numpy(t).to(target) for t in batch]
            if target.type == "cuda":
                torch.cuda.synchronize(target)
            begin = time.perf_counter()
            with torch.autocast(target.type, dtype=torch.float16, enabled=target.type == "cuda"):
                model(images)
            if target.type == "cuda":
                torch.cuda.synchronize(target)
            seconds += time.perf_counter() - begin
    return seconds


def oracle_predictions(paths):
    """The boxes a perfect per-tile detector gives: each true lake box clipped to every tile seeing it."""
    truth = read_vector(paths["hydro"])
    lakes = truth_lake_boxes(truth).geometry.values
    water = read_vector(paths["hydro"])
    boxes, tiles, cut = [], [], []
    with open_dem([paths["dem"]]) as dem:
        for (row, col), grid in tile_grids(dem.grid):
            tile = shapely.box(*grid.bounds)
            if not len(water.sindex.query(tile, predicate="intersects")):
                continue
            for lake in lakes:
                seen = lake.intersection(tile)
                if seen.area >= (2 * grid.px_size) ** 2:
                    boxes.append(seen.bounds)
                    tiles.append(f"{row}_{col}")
                    cut.append(np.abs(np.array(seen.bounds) - np.array(grid.bounds)) <= 2 * grid.px_size)
    return TilePredictions(np.array(boxes), np.ones(len(boxes)), tiles, np.array(cut).reshape(-1, 4),
                           "EPSG:2959"), truth


def merge_quality(predictions, truth):
    out = {"raw_boxes": len(predictions.boxes)}
    for merge in ("fuse", "union"):
        scores = evaluate_detections(merge_predictions(predictions, merge), truth, score_threshold=0.5)
        out[merge] = {"ap": round(scores["ap"], 4), "precision": round(scores["precision"], 4),
                      "recall": round(scores["recall"], 4), "boxes": scores["n_pred"]}
    return out


def memory(workdir, sizes_px, checkpoint, water_px=2000):
    """Peak RSS of detect on rasters of the given sizes (px a side) with the same lakes (in their
    top-left ``water_px`` square, so the model sees the same tiles), each in a fresh process."""
    out = {}
    for px in sizes_px:
        dem, hydro = memory_inputs(workdir, px, water_px)
        run = subprocess.run([sys.executable, "-m", "benchmarks.bench_detect", "--memory-child", str(checkpoint),
                              str(dem), str(hydro)], check=True, capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[1])
        out[f"{px}px"] = {"raster_mb": round(dem.stat().st_size / 2**20), **json.loads(run.stdout.splitlines()[-1])}
        dem.unlink()
    first, last = out[f"{sizes_px[0]}px"], out[f"{sizes_px[-1]}px"]
    out["rss_growth_pct"] = round(100 * (last["peak_rss_mib"] / first["peak_rss_mib"] - 1), 1)
    return out


def _memory_child(checkpoint, dem, hydro):
    started = time.perf_counter()
    found = detect(checkpoint, [dem], hydro, device="cpu")
    peak_kib = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("VmHWM:"))
    print(json.dumps({"peak_rss_mib": round(peak_kib / 1024), "tiles": found.attrs["stats"]["tiles"],
                      "seconds": round(time.perf_counter() - started, 1)}))


def run(quick=False, checkpoint=None, model=None, device="auto", batch_size=None):
    """All figures as a dict (also printed)."""
    size = 3000 if quick else 6000
    figures = {"machine": f"{os.cpu_count()}-core CPU" + (f", {torch.cuda.get_device_name()}"
                                                          if torch.cuda.is_available() else ", no GPU"),
               "scene_size_m": size, "seed": SEED}
    with tempfile.TemporaryDirectory(prefix="bench_detect_", dir="/tmp") as tmp:
        workdir = Path(tmp)
        paths = make_scene(workdir / "scene", seed=SEED, size_m=size)
        fast = fresh_checkpoint(workdir / "fast.pth", *FAST)
        if checkpoint is None:
            checkpoint = fresh_checkpoint(workdir / "fresh.pth", model, {}) if model else fast
            figures["checkpoint"] = f"freshly initialised {model or FAST[0]}"
        else:
            figures["checkpoint"] = Path(checkpoint).name
        figures["overhead"] = overhead(paths, checkpoint, device, batch_size, workdir)
        if not quick and model is None:  # the original's model beside ours: the same pipeline, a heavier forward
            original = fresh_checkpoint(workdir / "resnet50.pth", "fasterrcnn_resnet50_fpn", {})
            figures["overhead_resnet50"] = overhead(paths, original, device, batch_size, workdir, repeats=1)
        figures["merge_perfect_tile_detector"] = merge_quality(*oracle_predictions(paths))
        if not figures["checkpoint"].startswith("freshly"):
            per_scene = {}
            for seed in MERGE_SEEDS[:1] if quick else MERGE_SEEDS:
                scene = paths if seed == SEED else make_scene(workdir / f"scene{seed}", seed=seed, size_m=size)
                raw = predict_tiles(checkpoint, [scene["dem"]], scene["hydro"], score_threshold=0.05, device=device)
                per_scene[f"seed{seed}"] = merge_quality(raw, read_vector(scene["hydro"]))
            means = {f"mean_ap_{merge}": round(float(np.mean([f[merge]["ap"] for f in per_scene.values()])), 4)
                     for merge in ("fuse", "union")}
            figures["merge_checkpoint"] = {**per_scene, **means}
        figures["memory"] = memory(workdir, (2000, 6000) if quick else (2000, 6000, 20_000), fast)
    print(json.dumps(figures, indent=1))
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 km scene, memory at 2k and 6k px")
    parser.add_argument("--checkpoint", help="a trained detector (default: a freshly initialised model)")
    parser.add_argument("--model", help=f"fresh model to time without --checkpoint (default {FAST[0]})")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        _memory_child(*args.memory_child)
    else:
        run(args.quick, args.checkpoint, args.model, args.device, args.batch_size)


if __name__ == "__main__":
    main()
