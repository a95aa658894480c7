"""Generalisation benchmark (issue 18): whole-region AP@0.5 and F1 per scene style, zero-shot with the
bundled model and after the default training (``wps-lakes train --raster --vector``, no config).
Part of ``make bench`` (about 15 minutes on 2 cores); on its own:

    .venv/bin/python -m benchmarks.bench_generalisation --json /tmp/generalisation.json
    .venv/bin/python -m benchmarks.bench_generalisation --parts zero-shot      # the bundled model only

Scenes (made on the spot, nothing downloaded; styles in ``wps_lakes.detector.scenes``: a, its variant
a2, and b from an independent generator): evaluation on seeds 301 and 302 of each style, which no
training uses; the bundled model was trained on styles a and a2 only. The default training runs on one
scene (style a, seed 311) from scratch (``scratch``) and from the bundled model (``finetune``).
Scores: ``detect`` over the whole DEM as users run it, boxes against every true lake part; AP@0.5
over all boxes, F1/precision/recall at the checkpoint's calibrated threshold (the default).
"""
import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from wps_lakes.detector.config import default_config, load_config
from wps_lakes.detector.pretrained import BUNDLED
from wps_lakes.detector.scenes import STYLES, make_styled_scene
from wps_lakes.detector.training import test_scene_scores, train_session
from wps_lakes.geodata import read_vector

EVAL_SEEDS = (301, 302)
TRAIN_SEED = 311
PARTS = ("zero-shot", "scratch", "finetune")


def _round(scores):
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()}


def score(checkpoint, scenes):
    """{scene: scores} and the mean AP/F1 per style."""
    out = {}
    for name, paths in scenes.items():
        hydro = read_vector(paths["hydro"], "EPSG:2959", require_typece=True)
        out[name] = _round(test_scene_scores(checkpoint, [paths["dem"]], hydro))
    for style in STYLES:
        rows = [s for n, s in out.items() if n.split("-")[0] == style]
        if rows:
            out[f"mean_{style}"] = {key: round(sum(r[key] for r in rows) / len(rows), 4) for key in ("ap", "f1")}
    return out


def run(parts=PARTS, workdir=None, checkpoint=BUNDLED, epochs=None):
    """The figures of ``parts`` as a dict (also printed)."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="bench_generalisation_"))
    scenes = {f"{style}-{seed}": make_styled_scene(style, workdir / "scenes" / f"{style}-{seed}", seed)
              for style in STYLES for seed in EVAL_SEEDS}
    figures = {"threads": torch.get_num_threads(), "eval_scenes": sorted(scenes), "styles": list(STYLES)}
    if "zero-shot" in parts:
        figures["zero_shot"] = {"checkpoint": Path(checkpoint).name, **score(checkpoint, scenes)}
        print(json.dumps(figures["zero_shot"], indent=1), flush=True)
    train = make_styled_scene("a", workdir / "scenes" / f"a-{TRAIN_SEED}", TRAIN_SEED)
    for part in ("scratch", "finetune"):
        if part not in parts:
            continue
        config = load_config(default_config(), overrides={"epochs": epochs})
        config = config.with_data([train["dem"]], train["hydro"])
        data = config.to_dict()
        data["name"], data["overwrite"] = part, True
        started = time.time()
        result = train_session(load_config(data), workdir / "sessions",
                               init_checkpoint=BUNDLED if part == "finetune" else None, log=print)
        minutes = (time.time() - started) / 60
        figures[part] = {"training_minutes": round(minutes, 1), "epochs": result.epochs_done,
                         "valid_mAP": result.best_value, **score(result.best_checkpoint, scenes)}
        print(json.dumps(figures[part], indent=1), flush=True)
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", help="scenes and sessions (default: a temporary folder)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated among {', '.join(PARTS)}")
    parser.add_argument("--checkpoint", default=str(BUNDLED), help="the model scored zero-shot (default: bundled)")
    parser.add_argument("--epochs", type=int, help="override the default config's epochs")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    figures = run(args.parts.split(","), args.workdir, args.checkpoint, args.epochs)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
