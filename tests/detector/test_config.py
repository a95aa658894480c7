"""Session configs: thelper keys, allow-lists, unknown keys, defaults, overrides, data substitution."""
import copy
import json
from pathlib import Path

import pytest

from wps_lakes.detector.config import DATASET_TYPES, METRICS, OPTIMIZERS, SCHEDULERS, TRANSFORMS, load_config
from wps_lakes.detector.names import MODEL_NAMES
from wps_lakes.detector.zoo import model_names
from wps_lakes.errors import LakesError

SEED_CONFIG = Path(__file__).parents[1] / "data" / "seed_config.json"
HOSTILE_TYPES = ["os.system", "builtins.eval", "subprocess.Popen", "torch.hub.load",
                 "torchvision.models.detection.maskrcnn_resnet50_fpn"]


def seed():
    return json.loads(SEED_CONFIG.read_text())


def minimal(**extra):
    return {"datasets": {"lakes": {"params": {"raster_path": "dem.tif", "vector_path": "hydro.geojson"}}}, **extra}


def test_seed_config_loads_with_thelper_keys():
    config = load_config(SEED_CONFIG)
    assert config.name == "testbed15-seed"
    params = config.datasets["testbed15"]["params"]
    assert params["raster_path"] == "data/testbed15/roi_hrdem.tif"
    assert params["srs_target"] == "EPSG:2959" and params["roi_buffer"] == 1000
    assert config.loaders["train_split"] == {"testbed15": 0.9} and config.loaders["batch_size"] == 1
    assert config.model["params"] == {"pretrained": True}
    optimizer = config.trainer["optimization"]["optimizer"]
    assert optimizer == {"type": "torch.optim.SGD", "params": {"lr": 0.005, "momentum": 0.9, "weight_decay": 0.0005}}
    assert config.trainer["monitor"] == "mAP"
    assert config.trainer["metrics"]["mAP"]["type"] == "thelper.optim.metrics.AveragePrecision"
    # precision and recall are always scored, and thelper-only options are reported, not silently dropped
    assert {"precision", "recall"} <= set(config.trainer["metrics"])
    for option in ("display_debug", "reproj_rasters", "parallel", "use_tbx"):
        assert any(option in w and "no effect" in w for w in config.warnings), option


def test_feature_buffer_is_roi_buffer():
    config = seed()
    params = config["datasets"]["testbed15"]["params"]
    params["feature_buffer"] = params.pop("roi_buffer") + 500
    assert load_config(config).datasets["testbed15"]["params"]["roi_buffer"] == 1500


@pytest.mark.parametrize("hostile", HOSTILE_TYPES)
@pytest.mark.parametrize("where,allowed", [
    (("datasets", "testbed15", "type"), DATASET_TYPES),
    (("model", "type"), model_names()),
    (("trainer", "optimization", "optimizer", "type"), OPTIMIZERS),
    (("trainer", "optimization", "scheduler"), SCHEDULERS),
    (("trainer", "valid_metrics", "mAP", "type"), METRICS),
    (("trainer", "test_metrics", "log", "type"), METRICS),
    (("loaders", "collate_fn", "type"), ["thelper.data.loaders.default_collate"]),
    (("loaders", "base_transforms"), TRANSFORMS),
    (("loaders", "train_augments"), TRANSFORMS),
    (("trainer", "type"), ["thelper.train.ObjDetectTrainer"]),
])
def test_types_outside_the_allow_lists_are_refused(hostile, where, allowed):
    config = seed()
    node = config
    for key in where[:-1]:
        node = node.setdefault(key, {})
    if where[-1] == "scheduler":
        node["scheduler"] = {"type": hostile, "params": {}}
    elif where[-1] in ("base_transforms", "train_augments"):
        node[where[-1]] = [{"operation": hostile, "params": {}}]
    else:
        node[where[-1]] = hostile
    with pytest.raises(LakesError) as refused:
        load_config(config)
    message = str(refused.value)
    assert hostile in message and "allowed" in message
    assert all(name in message for name in list(allowed)[:3])


def test_unknown_keys_are_reported_with_their_path():
    config = seed()
    config["extra"] = 1
    config["loaders"]["prefetch"] = 4
    config["trainer"]["optimization"]["optimizer"]["type"] = "torch.optim.Adam"
    config["datasets"]["testbed15"]["params"]["colour"] = "blue"
    warnings = load_config(config).warnings
    for path in ("config.extra", "loaders.prefetch", "datasets.testbed15.params.colour"):
        assert any(w.startswith(path) and "unknown" in w for w in warnings), path


def test_unknown_parameters_of_allowed_types_are_refused():
    config = seed()
    config["trainer"]["optimization"]["optimizer"]["params"]["foreach_hook"] = "x"
    with pytest.raises(LakesError, match="foreach_hook.*allowed parameters: lr"):
        load_config(config)
    config = seed()
    config["model"]["params"]["backbone"] = "os.system"
    with pytest.raises(LakesError, match="no parameter 'backbone'"):
        load_config(config)


@pytest.mark.parametrize("path,value,expected", [
    (("trainer", "epochs"), "ten", "epochs must be an integer"),
    (("trainer", "epochs"), 0, "at least 1"),
    (("loaders", "batch_size"), 2.5, "batch_size must be an integer"),
    (("trainer", "device"), "tpu", "auto, cpu, cuda or cuda:N"),
    (("trainer", "monitor"), "accuracy", "names no metric"),
    (("trainer", "monitor"), [], "trainer.monitor must be a non-empty string"),   # found by hypothesis
    (("loaders", "train_split"), {"elsewhere": 1}, "not in datasets"),
    (("loaders", "valid_split"), {"testbed15": 0.5}, "add up to 1.4"),
    (("model", "params"), {"num_classes": 91}, "num_classes must be 2"),
    (("model", "params"), {"min_size": "800"}, "must be a number or a list of numbers"),
    (("model", "type"), "torchvision.models.detection.fcos_mobilenet_v3_large_fpn", "not allowed"),
    (("name",), "../escape", "plain folder name"),
    (("datasets", "testbed15", "params", "px_size"), 0, "must be positive"),
    (("datasets", "other"), {"params": {"raster_path": "b.tif", "vector_path": "b.json", "px_size": 1}},
     "must share px_size"),
])
def test_wrong_values_are_refused_with_what_to_change(path, value, expected):
    config = seed()
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(LakesError, match=expected):
        load_config(config)


def test_minimal_config_gets_every_default():
    config = load_config(minimal())
    assert config.warnings == []
    assert config.datasets["lakes"]["type"] == "thelper.data.geo.ogc.TB15D104Dataset"
    assert config.loaders["train_split"] == {"lakes": 0.9} and config.loaders["valid_split"] == {"lakes": 0.1}
    assert config.model["type"] in model_names()
    assert config.trainer["monitor"] == "mAP" and config.trainer["device"] == "auto"
    optimization = config.trainer["optimization"]   # the shipped CPU recipe
    assert optimization["optimizer"]["type"] == "torch.optim.AdamW"
    assert optimization["scheduler"]["params"]["T_max"] == config.trainer["epochs"]
    # the normalised config is a fixed point and JSON-ready
    assert load_config(json.loads(json.dumps(config.to_dict()))).to_dict() == config.to_dict()


def test_with_data_replaces_every_path_and_drops_server_side_files():
    config = seed()
    config["datasets"]["other"] = copy.deepcopy(config["datasets"]["testbed15"])
    config["datasets"]["other"]["params"]["master_roi"] = "/etc/roi.shp"
    config["model"]["params"]["weights"] = "/srv/secret/weights.pth"
    config["loaders"]["valid_split"] = {"other": 0.1}
    replaced = load_config(config).with_data(rasters=["a.tif", "b.tif"], vector="up.geojson")
    assert sorted(replaced.data_paths()) == sorted(["a.tif", "b.tif", "up.geojson"] * 2)
    assert replaced.datasets["testbed15"]["params"]["raster_path"] == ["a.tif", "b.tif"]
    # the empty default config plus data is the minimal config
    assert load_config({}).with_data("dem.tif", "hydro.geojson").to_dict() == load_config(minimal()).to_dict()


def test_overrides_from_the_web_form():
    config = load_config(seed(), overrides={"model": "fcos_mobilenet_v3_large_fpn", "epochs": 3, "batch_size": 4,
                                            "learning_rate": 0.01, "device": "cpu", "epochs_hint": None})
    assert config.model["type"] == "fcos_mobilenet_v3_large_fpn"
    assert config.trainer["epochs"] == 3 and config.loaders["batch_size"] == 4
    assert config.trainer["optimization"]["optimizer"]["params"]["lr"] == 0.01
    assert config.trainer["device"] == "cpu"
    with pytest.raises(LakesError, match="unknown override"):
        load_config(seed(), overrides={"raster_path": "/etc/passwd"})
    with pytest.raises(LakesError, match="not allowed"):
        load_config(seed(), overrides={"model": "os.system"})


def test_config_files_that_are_not_json(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(LakesError, match="not valid JSON"):
        load_config(bad)
    with pytest.raises(LakesError, match="not found"):
        load_config(tmp_path / "missing.json")
    for unreadable in (tmp_path, "bad\x00name.json"):   # a folder; a NUL byte (found by hypothesis)
        with pytest.raises(LakesError, match="could not be read"):
            load_config(unreadable)
    with pytest.raises(LakesError, match="must be an object"):
        load_config([1, 2])


@pytest.mark.parametrize("shipped", sorted((Path(__file__).parents[2] / "wps_lakes" / "configs").glob("*.json")),
                         ids=lambda p: p.name)
def test_shipped_configs_are_clean(shipped):
    config = load_config(shipped)
    assert config.warnings == []
    assert config.loaders["train_split"] and config.loaders["valid_split"]
    assert set(config.loaders["train_split"]).isdisjoint(config.loaders["valid_split"])


def test_the_web_form_lists_the_zoo_models():
    # the service builds its forms from names.py without importing torch
    assert sorted(MODEL_NAMES) == sorted(model_names())
