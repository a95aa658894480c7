"""The bundled model: a light detector shipped as package data, the default checkpoint of detect,
split and train, and how to rebuild it (``make pretrained``: ``python -m wps_lakes.detector.pretrained``).

``pretrained/lakes_fcos_mobilenet.pth`` holds the model weights in float16 (a few MB) with the keys
any checkpoint of ours has (model, model_type, model_params, input, score_threshold, config), so it
loads through the one reader, ``load_checkpoint`` (``torch.load(weights_only=True)``); float16
weights are cast back to float32 by ``load_state_dict``. ``lakes_fcos_mobilenet.json`` beside it
says how it was made: config, scenes and seeds, metrics, date, training time.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

from .checkpoints import load_checkpoint, save_checkpoint
from .config import default_config, load_config
from .scenes import make_styled_scene

FOLDER = Path(__file__).resolve().parent / "pretrained"
NAME = "lakes_fcos_mobilenet"
BUNDLED = FOLDER / f"{NAME}.pth"
PROVENANCE = FOLDER / f"{NAME}.json"
# styles in scenes.py: trained on style a and its variant a2 (another pixel size, relief, height and CRS);
# b, an independent generator, is never trained on, so its test scenes measure a style the model has not seen
TRAIN_SEEDS = {"a": (101, 102, 103), "a2": (111,)}
VALID_SEEDS = {"a": (105,), "a2": (115,)}
TEST_SEEDS = {"a": (106,), "a2": (116,), "b": (201, 202, 203)}
EPOCHS = 45
KEEP_KEYS = ("name", "epoch", "iter", "source", "version", "task", "model_type", "model_params", "input",
             "score_threshold", "calibration", "config", "monitor_best", "monitor_best_epoch")


def bundled_checkpoint():
    """Path of the bundled model, or None when this installation has none."""
    return BUNDLED if BUNDLED.is_file() else None


def bundled_models():
    """[{name, path, model_type, provenance summary}] of the bundled models (one today)."""
    if bundled_checkpoint() is None:
        return []
    info = json.loads(PROVENANCE.read_text()) if PROVENANCE.is_file() else {}
    return [{"name": NAME, "path": str(BUNDLED), "model_type": info.get("model_type", ""),
             "size_mb": round(BUNDLED.stat().st_size / 2**20, 1), "trained": info.get("date", ""),
             "metrics": info.get("metrics", {})}]


def resolve_checkpoint(checkpoint):
    """``checkpoint`` itself, or the bundled model when it is None (LakesError when none is bundled)."""
    if checkpoint is not None:
        return checkpoint
    from ..errors import LakesError

    found = bundled_checkpoint()
    if found is None:
        raise LakesError("no checkpoint given and this installation has no bundled model; give --checkpoint "
                         "(train one with `wps-lakes train --raster DEM.tif --vector HYDRO`)")
    return found


def default_init_checkpoint(config):
    """The bundled model as the starting point of ``config``'s training, or None: none bundled, the
    config says ``trainer.from_scratch``, or its model type or input scaling differs from the bundled one."""
    from .checkpoints import checkpoint_input
    from .zoo import checkpoint_model, resolve_model

    if bundled_checkpoint() is None or config.trainer.get("from_scratch"):
        return None
    ckpt = load_checkpoint(BUNDLED)
    scalings = {entry["params"]["scaling"] for entry in config.datasets.values()}
    if checkpoint_model(ckpt)[0] != resolve_model(config.model["type"]) or \
            scalings - {checkpoint_input(ckpt)["scaling"]}:
        return None
    return BUNDLED


def slim(ckpt, provenance):
    """The shipped form of a checkpoint: model weights in float16, no optimizer or resume state."""
    out = {key: ckpt[key] for key in KEEP_KEYS if key in ckpt}
    out["model"] = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    out["outputs"] = {}
    out["provenance"] = {k: v for k, v in provenance.items() if k != "config"}
    return out


def session_config(scenes, epochs=EPOCHS):
    """The default config (``lakes_default.json``) over several scenes: train, valid and test datasets."""
    data = default_config()
    template = data["datasets"]["train_scene"]
    data["datasets"], data["loaders"]["train_split"], data["loaders"]["valid_split"] = {}, {}, {}
    data["loaders"]["test_split"] = {}
    for split, entries in scenes.items():
        for name, paths in entries.items():
            data["datasets"][name] = {"type": template["type"], "params": {
                **template["params"], "raster_path": str(paths["dem"]), "vector_path": str(paths["hydro"])}}
            data["loaders"][f"{split}_split"][name] = 1.0
    data["name"] = NAME
    data["trainer"]["epochs"] = epochs
    data["trainer"]["optimization"]["scheduler"]["params"]["T_max"] = epochs
    data["overwrite"] = True
    return load_config(data)


def build(workdir, epochs=EPOCHS, install=True, log=print):
    """Make the scenes, train, score the test scenes, and write the bundled model and its provenance."""
    from .training import train_session

    workdir = Path(workdir)
    scenes = {}
    for split, seeds in (("train", TRAIN_SEEDS), ("valid", VALID_SEEDS), ("test", TEST_SEEDS)):
        scenes[split] = {f"{style}-{seed}": make_styled_scene(style, workdir / "scenes" / f"{style}-{seed}", seed)
                         for style, numbers in seeds.items() for seed in numbers}
    config = session_config(scenes, epochs)
    started = time.time()
    result = train_session(config, workdir / "sessions", log=log)
    minutes = (time.time() - started) / 60
    best = load_checkpoint(result.best_checkpoint)
    provenance = {
        "name": NAME, "model_type": best["model_type"], "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "torch": str(torch.__version__), "threads": torch.get_num_threads(),
        "scenes": {split: {name: {"style": name.split("-")[0], "seed": int(name.split("-")[1])} for name in entries}
                   for split, entries in scenes.items()},
        "style_note": "style a: wps_lakes.geodata.make_scene (EPSG:2959, 3 m); a2: the same generator at 2 m, "
                      "relief x2.5, +800 m, EPSG:32618; b: wps_lakes.geodata.make_scene_b, an independent "
                      "generator (ridged terrain, braided river, lobed lakes), never trained on",
        "seed": config.loaders["seed"], "epochs": result.epochs_done, "best_epoch": best.get("epoch"),
        "training_minutes": round(minutes, 1),
        "metrics": {"valid_mAP": result.best_value, "score_threshold": best.get("score_threshold"),
                    "valid_best_f1": (best.get("calibration") or {}).get("f1"), "test": result.test},
        "config": config.to_dict(),
    }
    if install:
        FOLDER.mkdir(exist_ok=True)
        save_checkpoint(BUNDLED, slim(best, provenance))
        PROVENANCE.write_text(json.dumps(provenance, indent=2) + "\n")
    return provenance


def main(argv=None):
    parser = argparse.ArgumentParser(description="rebuild the bundled lake detector (make pretrained)")
    parser.add_argument("-d", "--workdir", default="build/pretrained", help="scenes and the training session")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--no-install", action="store_true", help="do not overwrite the bundled model")
    args = parser.parse_args(argv)
    provenance = build(args.workdir, args.epochs, install=not args.no_install)
    print(json.dumps(provenance["metrics"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
