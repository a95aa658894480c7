"""Split benchmark: the refined method against the original box cut, on every DEM variant (issue 17).

    .venv/bin/python -m benchmarks.bench_split                      # 3 seeds, 6 km scenes, every variant
    .venv/bin/python -m benchmarks.bench_split --quick              # 2 seeds, 3 km scenes
    .venv/bin/python -m benchmarks.bench_split --checkpoint CKPT    # also with a trained detector's boxes
    .venv/bin/python -m benchmarks.bench_split --style b --size 3000  # the second scene style

Each scene (``make_scene``) is split with two sets of lake boxes: the true ones (one per lake part)
and a degraded set standing in for a detector (20% of the lakes missed, the others' boxes loosened
and shifted, a few false boxes on rivers); with ``--checkpoint`` (``make bench``: the bundled model),
a trained detector's boxes too, at its calibrated threshold.
For each box set: the box cut and the refined split without a DEM, then the refined split with each
DEM variant of ``wps_lakes.geodata.dem_variants``. Figures: lake and river area IoU against the
truth, and per-lake F1 (a true lake is found when one predicted lake part has IoU >= 0.5 with it).
Targets on every variant but ``nodata``: IoU >= 0.95, F1 >= 0.9, never below the box cut; ``nodata``:
no worse than without a DEM.
"""
import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely

from wps_lakes.geodata import make_scene, read_vector
from wps_lakes.geodata.dem_variants import VARIANTS, degrade_dem
from wps_lakes.geodata.scene_b import make_scene_b
from wps_lakes.geodata.vectors import RIVER, TYPECE
from wps_lakes.hydro import evaluate_lakes, evaluate_split, split_waterbodies, truth_lake_boxes

KEYS = ("lake_iou", "river_iou", "lake_f1")


def degraded_boxes(truth, seed):
    """A detector stand-in: 20% of the true boxes dropped, the rest loosened by 0-30% and shifted by
    up to 10% of their size, and three 60-100 m false boxes on rivers."""
    rng = np.random.default_rng(seed)
    boxes = truth_lake_boxes(truth)
    kept = boxes[rng.random(len(boxes)) >= 0.2]
    out = []
    for xmin, ymin, xmax, ymax in shapely.bounds(kept.geometry.values):
        w, h = xmax - xmin, ymax - ymin
        grow, shift = rng.uniform(0, 0.3, 2), rng.uniform(-0.1, 0.1, 2)
        cx, cy = (xmin + xmax) / 2 + shift[0] * w, (ymin + ymax) / 2 + shift[1] * h
        out.append(shapely.box(cx - w * (1 + grow[0]) / 2, cy - h * (1 + grow[1]) / 2,
                               cx + w * (1 + grow[0]) / 2, cy + h * (1 + grow[1]) / 2))
    reaches = truth.geometry[truth[TYPECE] == RIVER].values
    for reach in rng.choice(reaches, size=min(3, len(reaches)), replace=False):
        point, half = reach.representative_point(), rng.uniform(30, 50)
        out.append(shapely.box(point.x - half, point.y - half, point.x + half, point.y + half))
    return gpd.GeoDataFrame({"confidence": np.ones(len(out))}, geometry=out, crs=truth.crs)


def scores(result, seconds, truth):
    split = evaluate_split(result.hydro, truth)
    return {"lake_iou": round(split["lake_iou"], 4), "river_iou": round(split["river_iou"], 4),
            "lake_f1": round(evaluate_lakes(result.hydro, truth)["f1"], 4), "seconds": round(seconds, 2)}


def timed_split(waterbodies, boxes, **kwargs):
    started = time.perf_counter()
    result = split_waterbodies(waterbodies, boxes, **kwargs)
    return result, time.perf_counter() - started


def scene_figures(paths, boxes, variants, seed):
    truth, waterbodies = read_vector(paths["hydro"]), read_vector(paths["waterbodies"])
    row = {"boxes": scores(*timed_split(waterbodies, boxes, method="boxes"), truth=truth),
           "no_dem": scores(*timed_split(waterbodies, boxes), truth=truth)}
    for variant in variants:
        dem = degrade_dem(paths, variant, seed=seed)
        result, seconds = timed_split(waterbodies, boxes, dem=str(dem))
        row[variant] = {**scores(result, seconds, truth), "evidence": result.evidence}
    return row


def summary(rows, variants):
    """Per variant: worst figures over the scenes, and in how many scenes it fell below the box cut
    or below the split without a DEM (by more than 0.001)."""
    out = {}
    for name in ("boxes", "no_dem", *variants):
        out[name] = {f"min_{key}": min(r[name][key] for r in rows) for key in KEYS}
        out[name]["below_box_cut"] = sum(any(r[name][k] < r["boxes"][k] - 1e-3 for k in KEYS) for r in rows)
        out[name]["below_no_dem"] = sum(any(r[name][k] < r["no_dem"][k] - 1e-3 for k in KEYS) for r in rows)
        out[name]["s_per_km2"] = round(float(np.mean([r[name]["seconds"] / r["km2"] for r in rows])), 4)
    return out


STYLES = {"a": make_scene, "b": make_scene_b}  # geodata.synthetic (tuned on) and geodata.scene_b (not)


def run(quick=False, checkpoint=None, seeds=None, variants=VARIANTS, style="a", size_m=None):
    """All figures as a dict (also printed)."""
    seeds = seeds or ([11, 12] if quick else [11, 12, 13])
    size_m = size_m or (3000 if quick else 6000)
    figures = {"machine": f"{os.cpu_count()}-core CPU", "scene_size_m": size_m, "seeds": seeds,
               "variants": list(variants), "style": style}
    sets = {"true_boxes": [], "degraded_boxes": []} | ({"detected_boxes": []} if checkpoint else {})
    with tempfile.TemporaryDirectory(prefix="bench_split_", dir="/tmp") as tmp:
        for seed in seeds:
            paths = STYLES[style](Path(tmp) / f"scene{seed}", seed=seed, size_m=size_m)
            truth = read_vector(paths["hydro"])
            boxes = {"true_boxes": truth_lake_boxes(truth), "degraded_boxes": degraded_boxes(truth, seed)}
            if checkpoint:
                from wps_lakes.detector.inference import detect

                # as users run it: the checkpoint's calibrated threshold
                boxes["detected_boxes"] = detect(checkpoint, [paths["dem"]], paths["hydro"])
            for name, found in boxes.items():
                row = {"seed": seed, "km2": (size_m / 1000) ** 2, **scene_figures(paths, found, variants, seed)}
                sets[name].append(row)
                print(json.dumps({name: row}), flush=True)
    for name, rows in sets.items():
        figures[name] = {"scenes": rows, "summary": summary(rows, variants)}
    return figures


def table(figures):
    """The reStructuredText table of the worst figures per variant (docs/performance.rst)."""
    if not figures or "variants" not in figures:
        return ""
    head = ("Boxes", "DEM", "lake IoU", "river IoU", "lake F1", "< box cut", "< no DEM", "s/km²")
    lines = []
    for name in ("true_boxes", "degraded_boxes", "detected_boxes"):
        if name not in figures:
            continue
        summ = figures[name]["summary"]
        for variant in ("boxes", "no_dem", *figures["variants"]):
            s = summ[variant]
            label = {"boxes": "(box cut)", "no_dem": "(refined, no DEM)"}.get(variant, variant)
            lines.append((name.replace("_boxes", ""), label, f"{s['min_lake_iou']:.3f}", f"{s['min_river_iou']:.3f}",
                          f"{s['min_lake_f1']:.3f}", str(s["below_box_cut"]), str(s["below_no_dem"]),
                          f"{s['s_per_km2']:.3f}"))
    widths = [max(len(r[i]) for r in [head, *lines]) for i in range(len(head))]
    rule = "  ".join("=" * w for w in widths)
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([rule, fmt(head), rule, *(fmt(r) for r in lines), rule])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 seeds of 3 km scenes")
    parser.add_argument("--checkpoint", help="a trained detector: also split its detections")
    parser.add_argument("--seeds", type=int, nargs="+", help="scene seeds (default 11..13, unseen in training)")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=VARIANTS, help="DEM variants")
    parser.add_argument("--style", choices=sorted(STYLES), default="a", help="scene style (default a)")
    parser.add_argument("--size", type=float, help="scene size in m (default 6000, 3000 with --quick)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    figures = run(quick=args.quick, checkpoint=args.checkpoint, seeds=args.seeds, variants=args.variants,
                  style=args.style, size_m=args.size)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    print(table(figures))


if __name__ == "__main__":
    main()
