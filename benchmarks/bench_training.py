"""Training benchmark: the shipped CPU config's validation curve and time to mAP@0.5 >= 0.85, and
whether data loading ever starves the model.

    .venv/bin/python -m benchmarks.bench_training                  # the full 30-minute CPU run
    .venv/bin/python -m benchmarks.bench_training --quick          # 3 minutes, smaller scenes
    .venv/bin/python -m benchmarks.bench_training --no-cache --workers 2 --minutes 5   # data loading without the cache
    .venv/bin/python -m benchmarks.bench_training --config CFG --device cuda --minutes 10   # e.g. ResNet-50 on a GPU

Scenes: training on a synthetic scene (seed 0, 12 km), validation on another (seed 1, 6 km), both
made on the spot (nothing downloaded). The config's two datasets get these paths; everything else
is as shipped. The run stops at the time budget (``max_train_seconds``) or at its last epoch.

Figures: per-epoch (elapsed s, mAP, precision, recall, loss); the best mAP and when mAP first
reached the target; the share of a training step spent waiting for the batch (mean and worst epoch)
and training images per second.
"""
import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from wps_lakes.detector.config import load_config
from wps_lakes.detector.training import train_session
from wps_lakes.geodata import make_scene
from wps_lakes.limits import Limits

CPU_CONFIG = Path(__file__).resolve().parents[1] / "wps_lakes" / "configs" / "lakes_cpu.json"
TARGET_MAP = 0.85


def with_scenes(config_path, train, valid):
    """The config with its training dataset on ``train`` and its validation dataset on ``valid``."""
    config = json.loads(Path(config_path).read_text())
    loaders = config.get("loaders", {})
    train_names, valid_names = set(loaders.get("train_split", {})), set(loaders.get("valid_split", {}))
    for name, dataset in config["datasets"].items():
        scene = valid if name in valid_names and name not in train_names else train
        dataset.setdefault("params", {}).update(raster_path=str(scene["dem"]), vector_path=str(scene["hydro"]))
    return config


def run(config_path=CPU_CONFIG, minutes=30.0, quick=False, device=None, threads=2, workdir=None, workers=None,
        cache=True):
    torch.set_num_threads(threads)
    workdir = Path(workdir or tempfile.mkdtemp(prefix="bench-training-"))
    started = time.perf_counter()
    train = make_scene(workdir / "train", seed=0, size_m=6000 if quick else 12000)
    valid = make_scene(workdir / "valid", seed=1, size_m=3000 if quick else 6000)
    scenes_s = time.perf_counter() - started
    data = with_scenes(config_path, train, valid)
    data.setdefault("loaders", {})["cache"] = cache
    if workers is not None:
        data["loaders"]["workers"] = workers
    config = load_config(data, overrides={"device": device})
    config.data["overwrite"] = True
    lines = []
    result = train_session(config, workdir / "sessions", log=lambda m: (lines.append(m), print(m, flush=True)),
                           limits=Limits(max_train_seconds=int(minutes * 60)))
    history = result.history
    reached = next((h for h in history if h[config.trainer["monitor"]] >= TARGET_MAP), None)
    waits = [h["data_wait_fraction"] for h in history]
    figures = {
        "config": Path(config_path).name,
        "model": config.model["type"],
        "device": config.trainer["device"] if device is None else device,
        "threads": threads,
        "workers": config.loaders["workers"],
        "cache": cache,
        "scenes_s": round(scenes_s, 1),
        "budget_min": minutes,
        "epochs_done": result.epochs_done,
        "stopped_by_budget": result.stopped,
        "best_mAP": result.best_value,
        "target_mAP": TARGET_MAP,
        "reached_target_at_s": reached["time_s"] if reached else None,
        "reached_target_epoch": reached["epoch"] if reached else None,
        "data_wait_fraction_mean": sum(waits) / len(waits) if waits else None,
        "data_wait_fraction_max": max(waits) if waits else None,
        "train_images_per_s": (sum(h["train_images_per_s"] for h in history) / len(history)) if history else None,
        "curve": [{"epoch": h["epoch"], "time_s": h["time_s"], "mAP": round(h["mAP"], 4),
                   "precision": round(h["precision"], 4), "recall": round(h["recall"], 4),
                   "loss": round(h["train_loss"], 4)} for h in history],
        "session": str(result.session_dir),
    }
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=CPU_CONFIG, help="session config (default: the shipped CPU config)")
    parser.add_argument("--minutes", type=float, help="time budget (default 30, or 3 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smaller scenes and a 3-minute budget")
    parser.add_argument("--device", help="override the config's device (auto, cpu, cuda, cuda:N)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--workdir", help="where scenes and the session go (default: a temporary folder)")
    parser.add_argument("--workers", type=int, help="data loader worker processes (default: the config's)")
    parser.add_argument("--no-cache", action="store_true", help="build every tensor at each use (no memory cache)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    minutes = args.minutes if args.minutes is not None else (3.0 if args.quick else 30.0)
    figures = run(args.config, minutes, args.quick, args.device, args.threads, args.workdir, args.workers,
                  not args.no_cache)
    print(json.dumps(figures, indent=1))
    if args.json:
        figures.pop("session")
        figures.update(machine=f"{os.cpu_count()}-core CPU, torch {args.threads} threads",
                       measured=time.strftime("%Y-%m-%d"))
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return figures


if __name__ == "__main__":
    main()
