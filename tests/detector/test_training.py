"""Training sessions on real synthetic scenes: layout, checkpoints, resume, stop requests, data, CLI."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from wps_lakes.detector.checkpoints import load_checkpoint
from wps_lakes.detector.config import load_config
from wps_lakes.detector.datasets import augment, build_datasets, collate
from wps_lakes.detector.training import train_session
from wps_lakes.detector.zoo import model_from_checkpoint
from wps_lakes.errors import LakesError, LimitExceeded
from wps_lakes.geodata import make_scene
from wps_lakes.limits import Limits

from .test_config import SEED_CONFIG

THELPER_KEYS = {"name", "epoch", "iter", "source", "version", "task", "outputs", "model", "model_type",
                "model_params", "optimizer", "scheduler", "monitor_best", "monitor_best_epoch", "config"}
CKPT_NAME = re.compile(r"^ckpt\.\d{4}\.[^/]+-\d{8}-\d{6}\.pth$")
CLI = [sys.executable, "-m", "wps_lakes.cli"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    return [make_scene(root / f"s{seed}", seed=seed, size_m=1500) for seed in (0, 1)]


def tiny_config(scenes, name="tiny", epochs=2, **trainer):
    """The lightest real session: small scenes, the CPU model on quarter-size images, 2 iterations an epoch."""
    return {
        "name": name,
        "datasets": {f"scene{i}": {"params": {"raster_path": str(s["dem"]), "vector_path": str(s["hydro"])}}
                     for i, s in enumerate(scenes)},
        "loaders": {"batch_size": 2, "train_split": {"scene0": 1}, "valid_split": {"scene1": 1},
                    "train_augments": [{"operation": "RandomHorizontalFlip"}, {"operation": "RandomRot90"}]},
        "model": {"type": "fcos_mobilenet_v3_large_fpn", "params": {"image_scale": 0.25}},
        "trainer": {"epochs": epochs, "max_iters_per_epoch": 2, "warmup_iters": 2, "threads": 1,
                    "optimization": {"optimizer": {"type": "torch.optim.AdamW", "params": {"lr": 0.001}},
                                     "scheduler": {"type": "torch.optim.lr_scheduler.StepLR",
                                                   "params": {"step_size": 1, "gamma": 0.5}}},
                    **trainer},
    }


def final_weights(result):
    return load_checkpoint(result.last_checkpoint)["model"]


def test_session_folder_checkpoints_metrics_and_progress(scenes, tmp_path):
    calls = []
    result = train_session(tiny_config(scenes), tmp_path, progress=calls.append)
    session = tmp_path / "tiny"
    assert result.session_dir == session and result.epochs_done == 2 and not result.stopped
    checkpoints = sorted(p.name for p in (session / "checkpoints").iterdir())
    assert "ckpt.best.pth" in checkpoints
    assert [name[:9] for name in checkpoints if CKPT_NAME.match(name)] == ["ckpt.0000", "ckpt.0001"]
    assert (session / "logs" / "trainer.log").read_text().count("done: loss") == 2
    assert (session / "logs" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for split in ("train", "valid"):
        assert list((session / "output" / "tiny" / split).glob("events.out.tfevents.*"))
    assert json.loads((session / "config.latest.json").read_text()) == load_config(tiny_config(scenes)).to_dict()
    records = [json.loads(line) for line in result.metrics_path.read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1] and records == result.history
    for key in ("train_loss", "mAP", "precision", "recall", "data_wait_fraction", "train_images_per_s", "lr"):
        assert all(key in r for r in records), key
    assert records[1]["lr"] == pytest.approx(records[0]["lr"] / 2)   # StepLR stepped once per epoch

    ckpt = load_checkpoint(result.best_checkpoint)
    assert THELPER_KEYS <= set(ckpt)
    best_epoch = max(records, key=lambda r: r["mAP"])["epoch"]
    assert ckpt["monitor_best_epoch"] == best_epoch and ckpt["monitor_best"] == pytest.approx(result.best_value)
    assert ckpt["outputs"][best_epoch]["valid/metrics"]["mAP"] == pytest.approx(result.best_value)
    model, info = model_from_checkpoint(ckpt)
    assert info["input"] == {"scaling": "minmax", "px_size": 3.0, "srs": "EPSG:2959"}

    # progress: every iteration, then each epoch's end, with the newest checkpoint once there is one
    iterations = [c for c in calls if "iteration" in c.message]
    assert len(iterations) == 4 and [c.iteration for c in iterations] == [1, 2, 3, 4]
    fractions = [c.fraction for c in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert calls[-1].latest_checkpoint == str(result.last_checkpoint) and calls[-1].metrics == records[-1]
    assert all(c.loss is not None and c.loss > 0 for c in iterations)


@pytest.fixture(scope="module")
def straight(scenes, tmp_path_factory):
    """An uninterrupted 2-epoch session."""
    return train_session(tiny_config(scenes, "straight"), tmp_path_factory.mktemp("straight"))


@pytest.mark.parametrize("stop_after", [3, 2], ids=["mid-epoch", "epoch-end"])
def test_stop_then_resume_equals_an_uninterrupted_run(scenes, straight, tmp_path, stop_after):
    polls = []
    stopped = train_session(tiny_config(scenes, "stopped"), tmp_path,
                            should_stop=lambda: polls.append(1) or len(polls) >= stop_after)
    assert stopped.stopped and stopped.last_checkpoint.is_file()
    ckpt = load_checkpoint(stopped.last_checkpoint)
    assert ckpt["iter"] == stop_after and ckpt["resume"]["complete"] == (stop_after % 2 == 0)
    resumed = train_session(None, None, resume=stopped.session_dir)
    assert resumed.session_dir == stopped.session_dir and not resumed.stopped and resumed.epochs_done == 2
    expected, got = final_weights(straight), final_weights(resumed)
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    strip = ("time_s", "valid_s", "data_wait_fraction", "train_images_per_s")
    assert [{k: v for k, v in r.items() if k not in strip} for r in resumed.history] == \
           [{k: v for k, v in r.items() if k not in strip} for r in straight.history]


def test_existing_sessions_limits_and_devices(scenes, tmp_path):
    train_session(tiny_config(scenes, epochs=1), tmp_path)
    with pytest.raises(LakesError, match="already holds checkpoints"):
        train_session(tiny_config(scenes, epochs=1), tmp_path)
    with pytest.raises(LimitExceeded, match="max_epochs"):
        train_session(tiny_config(scenes, "other", epochs=3), tmp_path, limits=Limits(max_epochs=2))
    if not torch.cuda.is_available():
        with pytest.raises(LakesError, match="no usable CUDA"):
            train_session(tiny_config(scenes, "gpu", epochs=1, device="cuda:0"), tmp_path)
    # fine-tuning from another session's weights
    lines = []
    result = train_session(tiny_config(scenes, "tuned", epochs=1), tmp_path,
                           init_checkpoint=tmp_path / "tiny" / "checkpoints" / "ckpt.best.pth", log=lines.append)
    assert any("model weights from ckpt.best.pth" in line for line in lines)
    assert result.epochs_done == 1
    # "overwrite": true replaces the old session
    config = tiny_config(scenes, "tuned", epochs=1)
    config["overwrite"] = True
    assert len(list(train_session(config, tmp_path).metrics_path.read_text().splitlines())) == 1


def test_resume_into_a_new_folder_carries_the_best_checkpoint(scenes, straight, tmp_path):
    # the service resumes another job's checkpoint into the new job's own folder
    source = straight.session_dir / "checkpoints"
    first = sorted(p for p in source.iterdir() if CKPT_NAME.match(p.name))[0]
    resumed = train_session(None, tmp_path, resume=first)
    assert resumed.session_dir == tmp_path / "straight" and resumed.epochs_done == 2
    assert resumed.best_checkpoint.is_file() and resumed.best_checkpoint.parent == tmp_path / "straight" / "checkpoints"
    assert load_checkpoint(resumed.best_checkpoint)["monitor_best"] == pytest.approx(resumed.best_value)


def test_a_small_area_still_gets_train_and_valid_windows(scenes):
    # one 1.5 km scene for both splits: its windows all overlap, so no spatial split keeps them apart
    config = tiny_config(scenes[:1])
    config["loaders"].update(train_split={"scene0": 0.9}, valid_split={"scene0": 0.1})
    lines = []
    sets = build_datasets(load_config(config), log=lines.append)
    assert len(sets["train"]) >= 1 and len(sets["valid"]) >= 1
    assert any("validation scores are optimistic" in line for line in lines)


def test_samples_are_deterministic_and_augments_move_boxes_with_pixels(scenes):
    config = load_config(tiny_config(scenes))
    train = build_datasets(config, log=lambda m: None)["train"]
    train.set_epoch(3)
    by_index = [train[i] for i in range(len(train))]
    loader = torch.utils.data.DataLoader(train, batch_size=2, num_workers=2, collate_fn=collate,
                                         multiprocessing_context="fork")
    from_workers = [sample for images, targets in loader for sample in zip(images, targets, strict=True)]
    for (image, target), (w_image, w_target) in zip(by_index, from_workers, strict=True):
        assert torch.equal(image, w_image) and torch.equal(target["boxes"], w_target["boxes"])
    # a marked box stays on its marked pixels through every flip and rotation
    image = torch.zeros(3, 40, 60)
    image[:, 5:12, 30:50] = 1.0
    boxes = torch.tensor([[30.0, 5.0, 50.0, 12.0]])
    ops = [{"operation": name, "params": {"p": 1.0}} for name in
           ("RandomHorizontalFlip", "RandomVerticalFlip", "RandomRot90")]
    rng = np.random.default_rng(0)
    for chosen in ([ops[0]], [ops[1]], [ops[2]], ops):
        out, moved = augment(image, boxes, chosen, rng)
        x0, y0, x1, y1 = moved[0].int().tolist()
        assert out[0, y0:y1, x0:x1].sum() == out[0].sum() == image[0].sum()


def run_cli(*args, cwd):
    return subprocess.run([*CLI, "train", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_cli_trains_resumes_and_refuses(scenes, tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(tiny_config(scenes, epochs=1)))
    done = run_cli("-c", config, "-d", tmp_path / "out", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "best checkpoint:" in done.stdout and "epoch 1/1 done" in done.stdout
    more = run_cli("--resume", tmp_path / "out" / "tiny", "--epochs", "2", cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    assert "resumed from ckpt.0000" in more.stdout and "epoch 2/2 done" in more.stdout
    hostile = json.loads(config.read_text())
    hostile["model"]["type"] = "os.system"
    config.write_text(json.dumps(hostile))
    refused = run_cli("-c", config, "-d", tmp_path / "out2", cwd=tmp_path)
    assert refused.returncode == 2 and "os.system" in refused.stderr and "Traceback" not in refused.stderr


def seed_config_with_paths(tmp_path, scene):
    """The seed talk's config with only its file paths changed."""
    config = json.loads(SEED_CONFIG.read_text())
    params = config["datasets"]["testbed15"]["params"]
    params["raster_path"], params["vector_path"] = str(scene["dem"]), str(scene["hydro"])
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(config))
    return path


def test_seed_config_without_local_weights_says_what_to_do(scenes, tmp_path):
    refused = run_cli("-c", seed_config_with_paths(tmp_path, scenes[0]), "-d", tmp_path / "out", cwd=tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "nothing is downloaded" in refused.stderr and "'weights'" in refused.stderr


@pytest.mark.slow
def test_seed_config_runs_with_local_weights(tmp_path):
    """thelper's Faster R-CNN ResNet-50 session, paths changed, COCO-shaped weights from a local file."""
    import torchvision

    scene = make_scene(tmp_path / "scene", seed=5, size_m=3000)  # big enough for a 0.9/0.1 spatial split
    coco_like = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    torch.save(coco_like.state_dict(), tmp_path / "coco_like.pth")
    done = run_cli("-c", seed_config_with_paths(tmp_path, scene), "-d", tmp_path / "out", "--epochs", "1",
                   "--init-checkpoint", tmp_path / "coco_like.pth", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    ckpt = load_checkpoint(tmp_path / "out" / "testbed15-seed" / "checkpoints" / "ckpt.best.pth")
    assert ckpt["model_type"] == "torchvision.models.detection.faster_rcnn.fasterrcnn_resnet50_fpn"
    backbone = "backbone.body.layer1.0.conv1.weight"   # frozen layer: still the local file's weights
    assert torch.equal(ckpt["model"][backbone], coco_like.state_dict()[backbone])
    assert ckpt["config"]["datasets"]["testbed15"]["params"]["raster_path"] == str(scene["dem"])


def test_master_roi_keeps_the_windows_centred_inside(scenes, tmp_path):
    """thelper's master_roi (its train/eval areas): only windows whose centre is in the polygon."""
    import geopandas as gpd
    import shapely

    from wps_lakes.geodata import write_geojson

    config = tiny_config(scenes)
    everything = build_datasets(load_config(config), log=lambda m: None)["train"]
    centres = [shapely.box(*w.grid.bounds).centroid for _, w in everything.items]
    south = min(centres, key=lambda c: c.y)
    gap = min(c.y - south.y for c in centres if c.y > south.y)
    roi = shapely.box(south.x - 1, south.y - 1, south.x + 1, south.y + gap / 2)   # holds the southmost centre(s)
    write_geojson(gpd.GeoDataFrame(geometry=[roi], crs="EPSG:2959"), tmp_path / "roi.geojson", crs="EPSG:2959")
    config["datasets"]["scene0"]["params"]["master_roi"] = str(tmp_path / "roi.geojson")
    inside = build_datasets(load_config(config), log=lambda m: None)["train"]
    assert 1 <= len(inside) == sum(roi.contains(c) for c in centres) < len(everything)
