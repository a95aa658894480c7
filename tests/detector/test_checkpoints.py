"""Model zoo and checkpoints: allow-listed models, local weights only, safe loading, thelper layout."""
import os
import pathlib

import numpy as np
import pytest
import torch
import torchvision
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor

from wps_lakes.detector.checkpoints import (
    TASK,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from wps_lakes.detector.zoo import MODELS, build_model, load_weights, model_from_checkpoint, model_names
from wps_lakes.errors import LakesError

LIGHT = "fcos_mobilenet_v3_large_fpn"


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


class RunsCode:
    """A pickle payload that would create a file when unpickled by an unsafe loader."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


@pytest.mark.parametrize("name", model_names())
def test_every_model_has_a_two_class_head_and_detects(name):
    torch.manual_seed(0)
    model = build_model(name, {"image_scale": 0.25}).eval()
    with torch.no_grad():
        out = model([torch.rand(3, 96, 128)])[0]
    assert set(out) == {"boxes", "scores", "labels"}
    # label 1 is a lake; FCOS and RetinaNet also score the background class 0 (trained to stay below threshold)
    assert out["boxes"].shape[1] == 4 and set(out["labels"].tolist()) <= {0, 1}
    # the full torchvision names (thelper's spelling included) reach the same model
    assert {short for full, short in MODELS.items() if full.endswith(name)} == {name}


def test_pretrained_needs_a_local_file_and_never_downloads(tmp_path, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    with pytest.raises(LakesError, match="nothing is downloaded.*'weights'"):
        build_model("fasterrcnn_mobilenet_v3_large_320_fpn", {"pretrained": True})
    with pytest.raises(LakesError, match="not found"):
        build_model(LIGHT, {"pretrained": True, "weights": str(tmp_path / "COCO_V1")})
    # a COCO-like torchvision state dict (91 classes): everything but the class head is loaded
    coco = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None,
                                                                             num_classes=91)
    torch.save(coco.state_dict(), tmp_path / "coco.pth")
    model = build_model("fasterrcnn_mobilenet_v3_large_320_fpn", {"pretrained": True,
                                                                  "weights": str(tmp_path / "coco.pth")})
    ours, theirs = model.state_dict(), coco.state_dict()
    assert torch.equal(ours["backbone.body.0.0.weight"], theirs["backbone.body.0.0.weight"])
    assert ours["roi_heads.box_predictor.cls_score.weight"].shape[0] == 2
    # pretrained freezes batch-norm statistics, as torchvision does for pretrained models
    assert isinstance(model.backbone.body["1"].block[0][1], torchvision.ops.misc.FrozenBatchNorm2d)


def test_weights_of_another_architecture_are_refused(tmp_path):
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(LakesError, match="does not fit"):
        load_weights(build_model(LIGHT), tmp_path / "resnet18.pth")


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "code-ran"
    torch.save({"model": RunsCode(marker)}, tmp_path / "evil.pth")
    with pytest.raises(LakesError, match="could run code") as refused:
        load_checkpoint(tmp_path / "evil.pth")
    assert not marker.exists()
    assert str(tmp_path) not in str(refused.value)


def test_files_that_are_not_checkpoints(tmp_path):
    (tmp_path / "notes.pth").write_text("hello")
    with pytest.raises(LakesError, match="not a PyTorch checkpoint"):
        load_checkpoint(tmp_path / "notes.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(LakesError, match="not a checkpoint"):
        load_checkpoint(tmp_path / "list.pth")
    torch.save({"epoch": 3, "model_type": LIGHT}, tmp_path / "empty.pth")
    with pytest.raises(LakesError, match="no model weights"):
        model_from_checkpoint(load_checkpoint(tmp_path / "empty.pth"))


def thelper_checkpoint(model, model_type):
    """The dict thelper's Trainer._save writes for a torchvision detector (save_raw=True)."""
    return {
        "name": "testbed15-train-splitroi", "epoch": 41, "iter": 12345, "source": "visi-gpu-20191015-101010",
        "git_sha1": "unknown", "version": "0.4.7",
        "task": TASK,
        "outputs": {41: {"valid/metrics": {"mAP": np.float64(0.61)}}},
        "model": model.state_dict(), "model_type": model_type, "model_params": {"pretrained": True},
        "optimizer": None, "scheduler": None, "monitor_best": np.float64(0.61), "monitor_best_epoch": 41,
        "config": {"model": {"type": "torchvision.models.detection.fasterrcnn_resnet50_fpn",
                             "params": {"pretrained": True}},
                   "datasets": {"testbed15": {"params": {"srs_target": "2959", "px_size": 3}}}},
    }


def test_thelper_checkpoint_loads_and_predicts_the_same(tmp_path):
    torch.manual_seed(1)
    # thelper built the COCO model, then replaced the box predictor with a 2-class one (frozen BN)
    resnet = torchvision.models.resnet50(weights=None, norm_layer=torchvision.ops.misc.FrozenBatchNorm2d)
    original = torchvision.models.detection.FasterRCNN(_resnet_fpn_extractor(resnet, 3), num_classes=91,
                                                       min_size=128, max_size=128)
    original.roi_heads.box_predictor = torchvision.models.detection.faster_rcnn.FastRCNNPredictor(1024, 2)
    original.roi_heads.score_thresh = 0.0
    path = tmp_path / "ckpt.best.pth"
    torch.save(thelper_checkpoint(original, "torchvision.models.detection.faster_rcnn.fasterrcnn_resnet50_fpn"),
               path)
    model, info = model_from_checkpoint(load_checkpoint(path))
    assert info["model_type"] == "fasterrcnn_resnet50_fpn" and info["epoch"] == 41
    assert info["monitor_best"] == pytest.approx(0.61) and isinstance(info["monitor_best"], float)
    assert info["input"] == {"scaling": "minmax", "px_size": 3.0, "srs": "EPSG:2959"}
    model.transform, model.roi_heads.score_thresh = original.transform, 0.0
    image = torch.rand(3, 128, 128)
    with torch.no_grad():
        expected, got = original.eval()([image])[0], model([image])[0]
    assert torch.allclose(expected["boxes"], got["boxes"]) and torch.allclose(expected["scores"], got["scores"])


def test_a_checkpoint_for_more_classes_is_refused(tmp_path):
    coco = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None,
                                                                             num_classes=91)
    ckpt = thelper_checkpoint(coco, "torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn")
    with pytest.raises(LakesError, match="predicts 91 classes"):
        model_from_checkpoint(ckpt)


def test_saving_is_atomic_and_the_latest_checkpoint_is_found(tmp_path):
    model = build_model(LIGHT)
    folder = tmp_path / "session" / "checkpoints"
    for epoch in (0, 2, 1):
        save_checkpoint(folder / f"ckpt.{epoch:04d}.host-20260101-00000{epoch}.pth",
                        {"model": model.state_dict(), "model_type": LIGHT, "epoch": epoch})
    save_checkpoint(folder / "ckpt.best.pth", {"model": model.state_dict(), "model_type": LIGHT, "epoch": 1})
    assert sorted(os.listdir(folder)) == ["ckpt.0000.host-20260101-000000.pth", "ckpt.0001.host-20260101-000001.pth",
                                          "ckpt.0002.host-20260101-000002.pth", "ckpt.best.pth"]
    assert latest_checkpoint(tmp_path / "session").name.startswith("ckpt.0002.")
    rebuilt, info = model_from_checkpoint(latest_checkpoint(folder))
    assert same_weights(rebuilt, model) and info["epoch"] == 2
    with pytest.raises(LakesError, match="no checkpoint"):
        latest_checkpoint(tmp_path)
