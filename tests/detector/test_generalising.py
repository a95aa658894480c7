"""Issue 18, items 1-2: samples from the whole scene, the generalising augmentations, the default config,
and the whole-region test scores at the end of training."""
import json

import numpy as np
import pytest
import torch

from wps_lakes.detector.config import default_config, load_config
from wps_lakes.detector.datasets import augment, build_datasets
from wps_lakes.detector.training import train_session
from wps_lakes.errors import LakesError
from wps_lakes.geodata import make_scene

from .test_training import tiny_config

OPS = ["RandomScale", "RandomResample", "RandomRelief", "RandomDemNoise", "RandomFlatten"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("general")
    return [make_scene(root / f"s{seed}", seed=seed, size_m=2000) for seed in (5, 6)]


def test_new_augmentations_are_validated_with_defaults():
    config = load_config({"loaders": {"train_augments": [{"operation": op} for op in OPS]}})
    params = {a["operation"]: a["params"] for a in config.loaders["train_augments"]}
    assert params["RandomResample"] == {"px_min": 1.0, "px_max": 10.0}
    with pytest.raises(LakesError, match="min must be positive"):
        load_config({"loaders": {"train_augments": [{"operation": "RandomScale", "params": {"min": 2, "max": 1}}]}})
    with pytest.raises(LakesError, match="unknown parameter"):
        load_config({"loaders": {"train_augments": [{"operation": "RandomRelief", "params": {"gamma": 2}}]}})
    with pytest.raises(LakesError, match="sampling"):
        load_config({"datasets": {"a": {"params": {"sampling": "everything"}}}})


def test_augmentations_keep_the_range_and_move_boxes_with_the_pixels():
    image = torch.zeros(3, 100, 120)
    image[0] = torch.linspace(0, 1, 120)
    image[1, 20:40, 30:60] = 1
    boxes = torch.tensor([[30.0, 20.0, 60.0, 40.0]])
    ops = load_config({"loaders": {"train_augments": [{"operation": op, "params": {"p": 1.0}} for op in OPS]}})
    out, moved = augment(image, boxes, ops.loaders["train_augments"], np.random.default_rng(1))
    assert out.min() >= 0 and out.max() <= 1
    # the water mask stays binary, and the box still frames it
    assert set(out[1].unique().tolist()) <= {0.0, 1.0}
    rows, cols = torch.nonzero(out[1], as_tuple=True)
    assert moved.shape == (1, 4)
    assert abs(float(cols.min()) - float(moved[0, 0])) <= 2 and abs(float(rows.max()) + 1 - float(moved[0, 3])) <= 2
    # same generator, same result
    again, _ = augment(image, boxes, ops.loaders["train_augments"], np.random.default_rng(1))
    assert torch.equal(out, again)


def test_scene_sampling_adds_isolated_lakes_and_windows_without_lakes(scenes):
    data = tiny_config(scenes[:1])
    data["loaders"].update(train_split={"scene0": 1.0}, valid_split={})
    data["datasets"]["scene1"] = {"params": {"raster_path": str(scenes[1]["dem"]),
                                             "vector_path": str(scenes[1]["hydro"])}}
    data["loaders"]["valid_split"] = {"scene1": 1.0}
    focal = build_datasets(load_config(data), log=lambda line: None)
    for entry in data["datasets"].values():
        entry["params"]["sampling"] = "scene"
    whole = build_datasets(load_config(data), log=lambda line: None)
    assert len(whole["train"]) > len(focal["train"])
    assert any(len(w.boxes) == 0 for _, w in whole["train"].items)       # windows without lakes
    assert any(w.focal_id == -1 for _, w in whole["train"].items)        # tiles over the whole scene


def test_the_default_config_is_clean_and_validates_apart():
    config = load_config(default_config())
    assert config.warnings == []
    assert {d["params"]["sampling"] for d in config.datasets.values()} == {"scene"}
    assert {a["operation"] for a in config.loaders["train_augments"]} >= set(OPS)


def test_test_datasets_are_scored_with_whole_region_detect(scenes, tmp_path):
    data = tiny_config(scenes, epochs=1)
    data["datasets"]["held_out"] = {"params": {"raster_path": str(scenes[1]["dem"]),
                                               "vector_path": str(scenes[1]["hydro"])}}
    data["loaders"]["test_split"] = {"held_out": 1.0}
    config = load_config(data)
    assert config.warnings == []
    result = train_session(config, tmp_path)
    scores = result.test["held_out"]
    assert {"ap", "f1", "precision", "recall", "score_threshold", "n_gt"} <= set(scores) and scores["n_gt"] > 0
    last = json.loads(result.metrics_path.read_text().splitlines()[-1])
    assert last["test"]["held_out"]["ap"] == scores["ap"]
    assert "test held_out: AP@0.5" in result.summary()
    assert "whole-region detect" in result.log_path.read_text()


def test_a_partial_test_share_is_reported():
    config = load_config({"datasets": {"a": {}}, "loaders": {"train_split": {"a": 0.8}, "test_split": {"a": 0.2}}})
    assert any("only a whole dataset" in w for w in config.warnings)
