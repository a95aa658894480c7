"""``make bench``: every benchmark in one run, a JSON record, and the table of docs/performance.rst.

    .venv/bin/python -m benchmarks                 # about 40 minutes on 2 cores
    .venv/bin/python -m benchmarks --only split service
    .venv/bin/python -m benchmarks --checkpoint CKPT   # also the merge and split figures of a trained detector

Each part runs in this process one after the other (never side by side: they would time each other)
and its figures go to ``benchmarks/results/bench.json`` as soon as it ends, so an interrupted run
keeps what it measured. Then docs/performance.rst is written from that record and from
``benchmarks/results/training_cpu.json`` (the 30-minute training run, ``make bench-training``:
too long for this one) and ``load.json`` when present.

The parts use the benchmarks' sizes that fit the budget: geodata and detect in full (20 000 px
rasters), split on 3 scenes of each style with three box sets, detector generalisation (zero-shot and two
default trainings, about 15 minutes), training for 3 minutes (data loading and images/s; the quality target
needs the 30-minute run), service, Celery against local jobs, and the 50-client load test.
"""
import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from wps_lakes.detector.pretrained import BUNDLED

from . import (
    bench_celery,
    bench_detect,
    bench_generalisation,
    bench_geodata,
    bench_service,
    bench_split,
    bench_training,
    load,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RECORD = RESULTS / "bench.json"
DOC = ROOT / "docs" / "performance.rst"
PARTS = ("geodata", "detect", "split", "generalisation", "training", "service", "celery", "load")


def machine():
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpus": os.cpu_count(), "cpu": model, "gpu": gpu or "none (GPU rows not measured)",
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}


def run_part(name, checkpoint):
    if name == "geodata":
        return bench_geodata.run()
    if name == "detect":  # the light model users get: the bundled one unless --checkpoint names another
        return bench_detect.run(checkpoint=checkpoint or str(BUNDLED))
    if name == "split":  # style A (tuned on) at full size, and style B (not tuned on); boxes of a detector too
        detector = checkpoint or str(BUNDLED)
        return {**bench_split.run(checkpoint=detector),
                "style_b": bench_split.run(checkpoint=detector, style="b", size_m=3000)}
    if name == "generalisation":
        return bench_generalisation.run()
    if name == "training":
        return bench_training.run(minutes=3.0, quick=True)
    if name == "service":
        return bench_service.run()
    if name == "celery":
        return bench_celery.run()
    if name == "load":
        return load.run(60, 50)
    raise ValueError(name)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=PARTS, help="run these parts (the record keeps the others)")
    parser.add_argument("--checkpoint", help="a trained detector for the merge and split comparisons")
    parser.add_argument("--doc-only", action="store_true", help="rewrite docs/performance.rst from the record")
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = json.loads(RECORD.read_text()) if RECORD.exists() else {}
    if not args.doc_only:
        record["machine"] = machine()
        parts = args.only or PARTS
        for name in parts:
            started = time.perf_counter()
            print(f"== {name}", flush=True)
            figures = run_part(name, args.checkpoint)
            figures["bench_s"] = round(time.perf_counter() - started, 1)
            record[name] = figures
            RECORD.write_text(json.dumps(record, indent=1, default=str) + "\n")
            print(f"== {name}: {figures['bench_s']} s", flush=True)
        if "load" in parts:
            (RESULTS / "load.json").write_text(json.dumps(record["load"], indent=1, default=str) + "\n")
    training = RESULTS / "training_cpu.json"
    DOC.write_text(render(record, json.loads(training.read_text()) if training.exists() else None))
    print(f"wrote {DOC.relative_to(ROOT)}" + ("" if args.doc_only else f" and {RECORD.relative_to(ROOT)}"))


# -- the docs page ------------------------------------------------------------------------------

def _get(record, *path):
    value = record
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _fmt(value, unit=""):
    if value is None:
        return "not measured"
    if isinstance(value, float):
        value = f"{value:.4g}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{value}{unit}"


def _verdict(value, ok):
    if value is None:
        return "not measured"
    return "met" if ok(value) else "**missed**"


def rows(record, training):
    """(area, figure, value, target, verdict) for the table."""
    out = []

    def row(area, figure, value, target="", ok=None, unit=""):
        out.append((area, figure, _fmt(value, unit), target, _verdict(value, ok) if ok else "reported"))

    g = lambda *p: _get(record, *p)  # noqa: E731
    light = "light CPU model: "
    row("detect", light + "detect (tiles -> merged boxes) / forward", g("detect", "overhead", "pipeline_ratio"),
        "<= 1.3", lambda v: v <= 1.3)
    row("detect", light + "first detect in a process (model read and built) / forward",
        g("detect", "overhead", "first_call_pipeline_ratio"))
    row("detect", light + "+ GeoJSON and quicklook / forward", g("detect", "overhead", "ratio_to_pure_forward"),
        "<= 1.3", lambda v: v <= 1.3)
    row("detect", light + "end-to-end / forward inside that run", g("detect", "overhead", "ratio_in_run"),
        "<= 1.3", lambda v: v <= 1.3)
    row("detect", "writing GeoJSON and quicklook", g("detect", "overhead", "writing_outputs_s"), unit=" s")
    row("detect", "with ResNet-50 FPN (the original's model): end-to-end / forward",
        g("detect", "overhead_resnet50", "ratio_to_pure_forward"), "<= 1.3", lambda v: v <= 1.3)
    row("detect", "with ResNet-50 FPN: end-to-end / forward inside that run",
        g("detect", "overhead_resnet50", "ratio_in_run"), "<= 1.3", lambda v: v <= 1.3)
    for px in (2000, 6000, 20000):
        row("detect", f"peak RSS, {px:,} px raster", g("detect", "memory", f"{px}px", "peak_rss_mib"), unit=" MiB")
    row("detect", "peak RSS growth 2 000 -> 20 000 px", g("detect", "memory", "rss_growth_pct"), "< 20%",
        lambda v: v < 20, "%")
    row("detect", "tiles/s (CPU, fast model)", g("detect", "overhead", "tiles_per_s"))
    row("geodata", "tensor building, DEM on the work lattice (1 core)", g("geodata", "tensor_mpx_s_on_lattice"),
        ">= 20 Mpx/s", lambda v: v >= 20, " Mpx/s")
    row("geodata", "tensor building, DEM reprojected per tile from EPSG:32618 (1 core)",
        g("geodata", "tensor_mpx_s_reprojected"), ">= 20 Mpx/s", lambda v: v >= 20, " Mpx/s")
    row("geodata", "the same from EPSG:3979 (rotated 17.6 degrees)", g("geodata", "tensor_mpx_s_reprojected_rotated"),
        ">= 20 Mpx/s", lambda v: v >= 20, " Mpx/s")
    row("geodata", "the same from EPSG:32618, every tile warped by GDAL", g("geodata", "tensor_mpx_s_reprojected_gdal"),
        "reference", unit=" Mpx/s")
    row("geodata", "raw rasterio windowed read of the same windows", g("geodata", "raw_read_mpx_s"),
        "physical limit", unit=" Mpx/s")
    row("geodata", "tiling peak RSS growth 2 000 -> 20 000 px", g("geodata", "rss_growth_pct"), "< 20%",
        lambda v: v < 20, "%")
    wait = g("training", "data_wait_fraction_mean")
    row("training", "data wait, share of a step (mean)", None if wait is None else round(100 * wait, 2), "< 10%",
        lambda v: v < 10, "%")
    row("training", "training images/s (CPU, shipped config)", g("training", "train_images_per_s"))
    if training:
        row("training", "30-minute run: best validation mAP@0.5 (other-seed scene)", training.get("best_mAP"),
            ">= 0.85", lambda v: v >= 0.85)
        row("training", "30-minute run: time to mAP@0.5 >= 0.85", training.get("reached_target_at_s"), "<= 1800 s",
            lambda v: v <= 1800, " s")
    split = g("split", "true_boxes", "summary") or {}
    variants = [v for v in (g("split", "variants") or []) if v != "nodata"]
    for style, boxes in [(s, b) for s in ("", "style_b") for b in ("true_boxes", "degraded_boxes", "detected_boxes")]:
        summ = g("split", style, boxes, "summary") if style else g("split", boxes, "summary")
        if not summ:
            continue
        label = ("style B, " if style else "") + boxes.replace("_", " ")
        for kind, target in (("lake_iou", 0.95), ("river_iou", 0.95), ("lake_f1", 0.9)):
            worst = min((summ[v][f"min_{kind}"] for v in variants), default=None)
            row("split", f"refined + DEM, {label}: worst {kind.replace('_', ' ')} over the DEM variants (not nodata)",
                worst, f">= {target}", lambda v, t=target: v >= t)
        row("split", f"refined + DEM, {label}: scenes x variants below the box cut",
            sum(summ[v]["below_box_cut"] for v in variants), "0", lambda v: v == 0)
        row("split", f"refined + DEM, {label}: nodata DEM, scenes below the split without a DEM",
            summ.get("nodata", {}).get("below_no_dem"), "0", lambda v: v == 0)
    row("split", "refined + hydro-flattened DEM, s/km²", split.get("flattened", {}).get("s_per_km2"), unit=" s")
    fuse = g("detect", "merge_perfect_tile_detector", "fuse", "ap")
    union = g("detect", "merge_perfect_tile_detector", "union", "ap")
    row("merge", "AP@0.5, cross-tile fusion (perfect per-tile detector)", fuse, "> plain union",
        (lambda v: union is not None and v > union))
    row("merge", "AP@0.5, plain union of tiles (original)", union)
    if g("detect", "merge_checkpoint"):
        row("merge", "AP@0.5 with a trained detector: fusion", g("detect", "merge_checkpoint", "mean_ap_fuse"))
        row("merge", "AP@0.5 with a trained detector: plain union", g("detect", "merge_checkpoint", "mean_ap_union"))
    zero = g("generalisation", "zero_shot", "mean_b")
    row("detector", "bundled model zero-shot, style b (a generator it never saw): AP@0.5",
        zero and zero["ap"], ">= 0.80", lambda v: v >= 0.80)
    tuned = g("generalisation", "finetune") or {}
    row("detector", "default training on one scene: minutes", tuned.get("training_minutes"), "<= 30",
        lambda v: v <= 30)
    for style in ("a", "a2", "b"):  # other scenes than the training one, of its style and of two others
        scores = tuned.get(f"mean_{style}")
        row("detector", f"default training, then detect on style {style}: AP@0.5", scores and scores["ap"], ">= 0.85",
            lambda v: v >= 0.85)
        row("detector", f"default training, then detect on style {style}: F1", scores and scores["f1"], ">= 0.8",
            lambda v: v >= 0.8)
    row("service", "split direct library call", g("service", "split_direct_s"), unit=" s")
    row("service", "added latency, WPS sync Execute", g("service", "added_latency_sync_s"), unit=" s")
    row("service", "added latency, WPS async Execute (polled)", g("service", "added_latency_async_s"), unit=" s")
    row("service", "GetCapabilities requests/s (8 client threads)",
        g("service", "getcapabilities", "requests_per_s"))
    row("service", "DescribeProcess (all) requests/s", g("service", "describeprocess_all", "requests_per_s"))
    row("jobs", "submit-to-start latency, local fork server", g("celery", "local", "submit_to_start_s"), unit=" s")
    row("jobs", "submit-to-start latency, Celery + Redis", g("celery", "celery", "submit_to_start_s"), unit=" s")
    row("jobs", "short split jobs/min, local (2 slots)", g("celery", "local", "jobs_per_min"))
    row("jobs", "short split jobs/min, Celery (2 workers)", g("celery", "celery", "jobs_per_min"))
    row("load", "50 clients x 60 s: requests/s", g("load", "requests_per_s"))
    row("load", "latency p50", g("load", "latency_ms", "p50"), unit=" ms")
    row("load", "latency p99", g("load", "latency_ms", "p99"), unit=" ms")
    row("load", "server errors (5xx other than a full queue's 503)", g("load", "server_errors"), "0",
        lambda v: v == 0)
    row("load", "jobs not finished", g("load", "jobs", "unfinished"), "0", lambda v: v == 0)
    for name in ("ResNet-50 FPN training images/s (AMP on/off, batch sweep)", "detection tiles/s (AMP on/off)"):
        row("GPU", name, g("gpu", name))
    return out


def generalisation_table(figures):
    """The rst table of bench_generalisation's figures: AP and F1 per style for each model."""
    if not figures:
        return "(not measured: ``python -m benchmarks --only generalisation``)"
    styles = figures.get("styles", ["a", "b"])
    models = [("zero_shot", "bundled model, zero-shot"), ("finetune", "default training (fine-tunes the bundled)"),
              ("scratch", "default training ``--from-scratch``")]
    header = ["Model", "Minutes"] + [f"{kind} {style}" for style in styles for kind in ("AP", "F1")]
    table = []
    for key, label in models:
        part = figures.get(key)
        if not part:
            continue
        cells = [label, str(part.get("training_minutes", "-"))]
        for style in styles:
            mean = part.get(f"mean_{style}") or {}
            cells += [f"{mean['ap']:.3f}" if mean else "-", f"{mean['f1']:.3f}" if mean else "-"]
        table.append(cells)
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
    line = "  ".join("=" * w for w in widths)
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line, fmt(header), line, *(fmt(r) for r in table), line])


def render(record, training):
    m = record.get("machine", {})
    table = rows(record, training)
    widths = [max(len(str(r[i])) for r in table + [("Area", "Figure", "Value", "Target", "Verdict")])
              for i in range(5)]
    line = "  ".join("=" * w for w in widths)
    fmt = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    body = "\n".join([line, fmt(("Area", "Figure", "Value", "Target", "Verdict")), line,
                      *(fmt(r) for r in table), line])
    training_note = ""
    if training:
        training_note = (f"The training quality figures come from the separate 30-minute run "
                         f"(``make bench-training``, {training.get('machine', 'this machine')}, "
                         f"{training.get('measured', '')}): "
                         f"{training.get('epochs_done')} epochs of ``{training.get('config')}``; its curve is "
                         "in ``benchmarks/results/training_cpu.json`` and :doc:`training`.\n")
    split = record.get("split") or {}
    if split.get("measured"):
        training_note += (f"The split rows and tables were measured again on {split['measured']} by "
                          "``bench_split`` alone (both scene styles), not in the same run as the rest.\n")
    checkpoint = _get(record, "detect", "checkpoint")
    if checkpoint and not checkpoint.startswith("freshly"):
        training_note += (f"The rows \"with a trained detector\" and the detect figures used the checkpoint "
                          f"``{checkpoint}``.\n")
    return f""".. This page is written by ``make bench`` (benchmarks/__main__.py); edit that file, not this one.

Performance
===========

Every figure below was measured by ``make bench`` in one run on the machine named here, with the
comparisons (ratios, the original approach beside ours) taken in that same run, because absolute
times on a shared machine drift. The JSON record is ``benchmarks/results/bench.json``.

Machine: {m.get('cpus', '?')} cores ({m.get('cpu', '?')}), GPU: {m.get('gpu', '?')}, Python
{m.get('python', '?')}, measured {m.get('date', '?')}. It is a shared development machine: other
work ran beside some parts, so absolute times are pessimistic.

{training_note}
{body}

Split on every DEM variant (``benchmarks/bench_split.py``; worst figure over the scenes, and the
number of scenes below the box cut or below the refined split without a DEM; ``degraded`` boxes
stand in for a detector: 20 % of the lakes missed, loose and shifted boxes, false boxes on rivers):

Scene style A (``geodata.synthetic``, the thresholds were tuned on it), 6 km, seeds 11 to 13:

{bench_split.table(split)}

Scene style B (``geodata.scene_b``, written apart from the method and not tuned on), 3 km at 2 m in
EPSG:32618, seeds 11 to 13:

{bench_split.table(split.get("style_b"))}

Detector generalisation (``benchmarks/bench_generalisation.py``): whole-region ``detect`` over 6 km
scenes no training used (seeds 301 and 302 of each style), boxes against every true lake part;
AP@0.5 over all boxes, F1 at the checkpoint's calibrated threshold (its default); mean of the two
scenes. Style a is ``geodata.make_scene`` (EPSG:2959, 3 m); a2 the same generator at 2 m, relief
x2.5, +800 m, in EPSG:32618; b the independent generator ``geodata.make_scene_b`` (ridged terrain,
braided river, lobed lakes; EPSG:32618, 2 m). The bundled model was trained on style a only. Default
training is ``wps-lakes train --raster --vector`` with no config on one style-a scene (seed 311),
validated on a spatially separate part of it; it fine-tunes the bundled model unless told
``--from-scratch``:

{generalisation_table(record.get("generalisation"))}

How each figure is taken (the docstring of each module says more):

- **detect** (``benchmarks/bench_detect.py``): ``detect`` on a 6 km scene (tiles read and built,
  batched through the model, boxes merged), then also writing the GeoJSON and quicklook, over the
  model's forward time on the same tiles timed alone (tensors built beforehand), with the light CPU
  model (the bundled model unless ``--checkpoint`` names another) and with a ResNet-50 FPN (the
  original's model). The best of three runs in one process: the first reads and builds the model
  (its ratio is the "first detect" row), later ones reuse it as a worker does. The pipeline's own
  cost is about fixed (the quicklook, the first call's model): it weighs on the light model's 1 s of
  forward, hardly on ResNet-50's 35 s. On a CPU the tile
  building thread and the model share the same 2 cores, so the model runs slower inside ``detect``
  than alone; on a GPU host they do not compete. Peak RSS of ``detect`` in a fresh process on rasters of
  2 000, 6 000 and 20 000 px a side with lakes in the same corner (the same tiles reach the model, so
  growth is what the raster size costs).
- **geodata** (``bench_geodata.py``): the 3-channel tiles of a 12 km scene per second on one core,
  for a DEM already on the work lattice and for the same DEM in EPSG:32618 and EPSG:3979, which each
  tile resamples through its affine map (and, for reference, through GDAL's warper), beside rasterio's
  raw windowed read of the same windows.
- **training** (``bench_training.py``): the shipped CPU config for a few minutes: the share of each
  step spent waiting for the batch. The quality target needs the separate 30-minute run.
- **split** and **merge** (``bench_split.py``, ``bench_detect.py``): our refined split against the
  original's box cut on three unseen 6 km scenes and every DEM variant (noisy, resampled, coarse,
  stepped, TIN-like, no data over water), area IoU and per-lake F1 against the scene truth; our cross-tile box
  fusion against the original's plain union of every tile's boxes, AP@0.5.
- **service** (``bench_service.py``): the same ``split`` as a library call and through WPS Execute on
  a live gunicorn server; document requests per second.
- **jobs** (``bench_celery.py``): from the ProcessAccepted answer to the job running, one job at a
  time; 20 short ``split`` jobs submitted at once, local fork server (2 slots) against 2 Celery
  workers with Redis, all on this machine.
- **load** (``load.py``): 50 clients for 60 s mixing GetCapabilities, DescribeProcess, status polls
  and small ``split`` jobs; see :doc:`security`.
- **GPU**: this task was lent no GPU, so the GPU rows are not measured; ``bench_training.py --config
  wps_lakes/configs/lakes_resnet50_gpu.json --device cuda`` and ``bench_detect.py --device cuda``
  measure them on a GPU host.
"""


if __name__ == "__main__":
    main()
