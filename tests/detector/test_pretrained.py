"""Issue 18, item 4: the bundled model, its shipped form, and where it is the default."""
import json

import pytest
import torch

from wps_lakes.cli import main
from wps_lakes.detector import pretrained
from wps_lakes.detector.checkpoints import load_checkpoint, save_checkpoint
from wps_lakes.detector.config import default_config, load_config
from wps_lakes.detector.zoo import model_from_checkpoint
from wps_lakes.errors import LakesError

from .test_inference import fresh_checkpoint


@pytest.fixture
def bundled(tmp_path, monkeypatch):
    """A slim checkpoint of an untrained model in place of the bundled one."""
    full = load_checkpoint(fresh_checkpoint(tmp_path / "full.pth", score_threshold=0.3))
    path = save_checkpoint(tmp_path / "bundled.pth", pretrained.slim(full, {"date": "today", "metrics": {}}))
    (tmp_path / "bundled.json").write_text(json.dumps({"model_type": "fcos", "date": "today", "metrics": {}}))
    monkeypatch.setattr(pretrained, "BUNDLED", path)
    monkeypatch.setattr(pretrained, "PROVENANCE", tmp_path / "bundled.json")
    return path


def test_the_shipped_form_is_half_precision_and_loads_like_any_checkpoint(bundled):
    ckpt = torch.load(bundled, map_location="cpu", weights_only=True)
    assert all(v.dtype == torch.float16 for v in ckpt["model"].values() if v.is_floating_point())
    assert "optimizer" not in ckpt and "resume" not in ckpt and ckpt["score_threshold"] == 0.3
    model, info = model_from_checkpoint(load_checkpoint(bundled))
    assert next(model.parameters()).dtype == torch.float32 and info["score_threshold"] == 0.3
    assert bundled.stat().st_size < 10 * 2**20


def test_no_checkpoint_means_the_bundled_one(bundled, tmp_path, monkeypatch):
    assert pretrained.resolve_checkpoint(None) == bundled
    assert pretrained.resolve_checkpoint("mine.pth") == "mine.pth"
    monkeypatch.setattr(pretrained, "BUNDLED", tmp_path / "absent.pth")
    with pytest.raises(LakesError, match="no bundled model"):
        pretrained.resolve_checkpoint(None)


def test_training_starts_from_the_bundled_model_when_it_fits(bundled):
    config = load_config(default_config())
    assert pretrained.default_init_checkpoint(config) == bundled
    scratch = default_config()
    scratch["trainer"]["from_scratch"] = True
    assert pretrained.default_init_checkpoint(load_config(scratch)) is None
    other = load_config(default_config(), overrides={"model": "fasterrcnn_mobilenet_v3_large_fpn"})
    assert pretrained.default_init_checkpoint(other) is None


def test_models_command_lists_bundled_and_zoo(bundled, capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert pretrained.NAME in out and "fcos_mobilenet_v3_large_fpn" in out and "fasterrcnn_resnet50_fpn" in out


@pytest.mark.skipif(not pretrained.BUNDLED.is_file(), reason="no bundled model in this checkout")
def test_the_real_bundled_model_and_its_provenance():
    ckpt = torch.load(pretrained.BUNDLED, map_location="cpu", weights_only=True)
    assert ckpt["model_type"].endswith("fcos_mobilenet_v3_large_fpn") and 0 < ckpt["score_threshold"] < 1
    assert pretrained.BUNDLED.stat().st_size < 10 * 2**20
    provenance = json.loads(pretrained.PROVENANCE.read_text())
    assert {"config", "scenes", "seed", "metrics", "date", "training_minutes"} <= set(provenance)
    model_from_checkpoint(load_checkpoint(pretrained.BUNDLED))


@pytest.mark.skipif(not pretrained.BUNDLED.is_file(), reason="no bundled model in this checkout")
@pytest.mark.parametrize("seed", [501, 502])
def test_the_bundled_model_finds_the_lakes_of_a_generator_it_never_saw(tmp_path, seed):
    """Zero-shot on geodata.make_scene_b (ridged terrain, lobed lakes, EPSG:32618 at 2 m): whole-region
    detect at the default (calibrated) threshold, as users run it."""
    from wps_lakes.detector.training import test_scene_scores
    from wps_lakes.geodata import read_vector
    from wps_lakes.geodata.scene_b import SCENE_B_CRS, make_scene_b

    paths = make_scene_b(tmp_path, seed=seed, size_m=3000)
    scores = test_scene_scores(pretrained.BUNDLED, [paths["dem"]],
                               read_vector(paths["hydro"], SCENE_B_CRS, require_typece=True))
    assert scores["n_gt"] >= 9
    assert scores["ap"] >= 0.8 and scores["f1"] >= 0.8, scores
