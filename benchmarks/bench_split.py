"""Split benchmark: the refined method against the original box cut, on synthetic scenes.

    .venv/bin/python -m benchmarks.bench_split                      # 5 seeds, 6 km scenes (a few minutes)
    .venv/bin/python -m benchmarks.bench_split --quick              # 3 seeds, 3 km scenes
    .venv/bin/python -m benchmarks.bench_split --checkpoint CKPT    # also end to end, with a trained detector

With the true lake boxes as detections (one per lake part), each scene is split by ``boxes`` and by
``refined`` with and without the DEM; the figures are lake and river area IoU against the scene's
truth and the error ratio (1 - IoU of refined) / (1 - IoU of boxes). Targets: refined IoU >= 0.95 on
lakes and rivers, error ratio <= 0.5. With ``--checkpoint``, the lakes are detected first
(``detect``, score threshold 0.5) and both methods are scored again, with the detection scores.
"""
import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from wps_lakes.geodata import make_scene, read_vector
from wps_lakes.hydro import evaluate_detections, evaluate_split, split_waterbodies, truth_lake_boxes

METHODS = (("boxes", False), ("refined", True), ("refined", False))  # (method, with the DEM)


def split_figures(paths, detections):
    """lake/river IoU, typed share and seconds of each method for one scene and one set of boxes."""
    truth, waterbodies = read_vector(paths["hydro"]), read_vector(paths["waterbodies"])
    figures = {}
    for method, with_dem in METHODS:
        started = time.perf_counter()
        result = split_waterbodies(waterbodies, detections, dem=paths["dem"] if with_dem else None, method=method)
        seconds = time.perf_counter() - started
        scores = evaluate_split(result.hydro, truth)
        name = method + ("_dem" if with_dem else "")
        figures[name] = {key: round(scores[key], 4) for key in ("lake_iou", "river_iou", "typed_correctly")}
        figures[name]["seconds"] = round(seconds, 2)
    for name in ("refined_dem", "refined"):
        for kind in ("lake_iou", "river_iou"):
            base = 1 - figures["boxes"][kind]
            figures[name][f"{kind[:-4]}_error_ratio"] = round((1 - figures[name][kind]) / base, 3) if base else None
    return figures


def summary(rows):
    """Worst IoU and worst error ratio of each refined variant over the scenes."""
    out = {}
    for name in ("refined_dem", "refined"):
        out[name] = {
            "min_lake_iou": min(r[name]["lake_iou"] for r in rows),
            "min_river_iou": min(r[name]["river_iou"] for r in rows),
            "max_lake_error_ratio": max(r[name]["lake_error_ratio"] or 0 for r in rows),
            "max_river_error_ratio": max(r[name]["river_error_ratio"] or 0 for r in rows),
        }
    out["boxes"] = {"min_lake_iou": min(r["boxes"]["lake_iou"] for r in rows),
                    "min_river_iou": min(r["boxes"]["river_iou"] for r in rows)}
    return out


def run(quick=False, checkpoint=None, seeds=None):
    """All figures as a dict (also printed)."""
    seeds = seeds or ([11, 12, 13] if quick else [11, 12, 13, 14, 15])
    size_m = 3000 if quick else 6000
    figures = {"machine": f"{os.cpu_count()}-core CPU", "scene_size_m": size_m, "seeds": seeds}
    true_rows, detected_rows = [], []
    with tempfile.TemporaryDirectory(prefix="bench_split_", dir="/tmp") as tmp:
        for seed in seeds:
            paths = make_scene(Path(tmp) / f"scene{seed}", seed=seed, size_m=size_m)
            truth = read_vector(paths["hydro"])
            true_rows.append({"seed": seed, **split_figures(paths, truth_lake_boxes(truth))})
            if checkpoint is not None:
                from wps_lakes.detector.inference import detect

                found = detect(checkpoint, [paths["dem"]], paths["hydro"], score_threshold=0.5)
                scores = evaluate_detections(found, truth)
                detected_rows.append({"seed": seed, "detections": {k: round(v, 4) for k, v in scores.items()},
                                      **split_figures(paths, found)})
    figures["true_boxes"] = {"scenes": true_rows, "summary": summary(true_rows)}
    if detected_rows:
        figures["detected_boxes"] = {"checkpoint": Path(checkpoint).name, "scenes": detected_rows,
                                     "summary": summary(detected_rows)}
    print(json.dumps(figures, indent=1))
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 seeds of 3 km scenes")
    parser.add_argument("--checkpoint", help="a trained detector: also split its detections")
    parser.add_argument("--seeds", type=int, nargs="+", help="scene seeds (default 11..15, unseen in training)")
    args = parser.parse_args(argv)
    run(quick=args.quick, checkpoint=args.checkpoint, seeds=args.seeds)


if __name__ == "__main__":
    main()
