"""The one checkpoint reader and writer.

A checkpoint is a dict with thelper's keys (name, epoch, iter, source, version, task, outputs,
model, model_type, model_params, optimizer, scheduler, monitor_best, monitor_best_epoch, config),
so thelper's ``ckpt.best.pth`` loads here and ours read the same way there. Ours add ``input``
(how tensors were built: scaling, pixel size, SRS), ``resume`` (where training stopped, RNG states) and
``score_threshold`` with ``calibration`` (the threshold of best F1 on validation, the default of detect).
Files are read with ``torch.load(weights_only=True)``: a file holding anything but tensors and plain
data (a pickle that would run code) is refused. Writes are atomic (temporary file + rename), so a
reader never sees half a checkpoint while training runs.
"""
import os
import pickle
import platform
import re
import time
from pathlib import Path

import numpy as np
import torch

from ..errors import LakesError

# thelper's repr of the task, so thelper reads our checkpoints as detection of background/lake.
TASK = ("thelper.tasks.detect.Detection(class_names={'background': 0, 'lake': 1}, input_key='input', "
        "bboxes_key='bboxes', meta_keys=[], input_shape=None, target_shape=None, target_min=None, "
        "target_max=None, background=0, color_map={'lake': [255, 0, 0]})")
DEFAULT_INPUT = {"scaling": "minmax", "px_size": 3.0, "srs": "EPSG:2959"}
DEFAULT_SCORE_THRESHOLD = 0.5   # for checkpoints without a calibrated one (thelper's, older ones)
_CKPT_NAME = re.compile(r"^ckpt\.(\d+)\..*\.pth$")
# numpy scalars in thelper checkpoints (its metrics are numpy floats): data only, safe to rebuild.
_NUMPY_GLOBALS = [np.dtype, (np._core.multiarray.scalar, "numpy.core.multiarray.scalar"),
                  np._core.multiarray.scalar, np.dtypes.Float64DType, np.dtypes.Float32DType,
                  np.dtypes.Int64DType,
                  # torch.__version__ (a str subclass) as the bundled model records it: data only.
                  torch.torch_version.TorchVersion]


def checkpoint_filename(epoch):
    """thelper's name: ``ckpt.NNNN.<host>-<YYYYmmdd-HHMMSS>.pth``."""
    return f"ckpt.{epoch:04d}.{platform.node() or 'host'}-{time.strftime('%Y%m%d-%H%M%S')}.pth"


def _plain(value):
    """numpy scalars -> Python numbers, recursively (thelper's metrics were numpy floats)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def load_checkpoint(path):
    """Read a checkpoint (or a state dict) file safely; LakesError if it is not one."""
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise LakesError(f"checkpoint {name!r} not found")
    try:
        with torch.serialization.safe_globals(_NUMPY_GLOBALS):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" in str(exc) or "global" in str(exc):
            raise LakesError(f"{name!r} holds Python objects besides tensors and plain data; loading it could run "
                             "code, so it is refused. Save the model's state_dict() (or a checkpoint from "
                             "wps-lakes or thelper) instead") from None
        raise LakesError(f"{name!r} is not a PyTorch checkpoint (.pth saved by torch.save)") from None
    except Exception:  # torch raises many types on a file that is not a torch.save archive
        raise LakesError(f"{name!r} is not a PyTorch checkpoint (.pth saved by torch.save)") from None
    if not isinstance(ckpt, dict):
        raise LakesError(f"{name!r} is not a checkpoint: it holds a {type(ckpt).__name__}, not a dict")
    return _plain(ckpt)


def state_dict_of(ckpt):
    """The model weights of a checkpoint dict, or the dict itself when it is a bare state dict."""
    state = ckpt.get("model", ckpt) if isinstance(ckpt.get("model"), dict) else ckpt
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors or len(tensors) < len(state):
        raise LakesError("the file holds no model weights: expected a checkpoint with a 'model' state dict "
                         "or a torchvision state dict")
    return tensors


def save_checkpoint(path, ckpt):
    """Write ``ckpt`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(ckpt, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def checkpoint_epoch(path):
    match = _CKPT_NAME.match(Path(path).name)
    return int(match.group(1)) if match else None


def latest_checkpoint(path):
    """The checkpoint to resume from: ``path`` itself if a file, else the newest ``ckpt.NNNN.*.pth``
    of a session folder (or of its ``checkpoints/`` folder): highest epoch, then most recent."""
    path = Path(path)
    if path.is_file():
        return path
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    found = [p for p in folder.glob("ckpt.*.pth") if checkpoint_epoch(p) is not None]
    if not found:
        raise LakesError(f"no checkpoint (ckpt.NNNN.*.pth) in session folder {path.name!r}")
    return max(found, key=lambda p: (checkpoint_epoch(p), p.stat().st_mtime_ns))


def checkpoint_input(ckpt):
    """How the checkpoint's tensors were built: scaling, px_size and srs (defaults: thelper's)."""
    if isinstance(ckpt.get("input"), dict):
        return {**DEFAULT_INPUT, **ckpt["input"]}
    datasets = (ckpt.get("config") or {}).get("datasets") or {}
    params = next((d.get("params") or {} for d in datasets.values() if isinstance(d, dict)), {})
    srs = str(params.get("srs_target", DEFAULT_INPUT["srs"]))
    return {"scaling": params.get("scaling", "minmax"),
            "px_size": float(params.get("px_size", DEFAULT_INPUT["px_size"])),
            "srs": srs if ":" in srs else f"EPSG:{srs}"}


def checkpoint_score_threshold(ckpt):
    """The score threshold a checkpoint was calibrated with (best F1 on its validation windows), or
    ``DEFAULT_SCORE_THRESHOLD`` when it holds none (thelper's, older ones)."""
    value = ckpt.get("score_threshold") if isinstance(ckpt, dict) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    return DEFAULT_SCORE_THRESHOLD


def resolve_score_threshold(score_threshold, ckpt):
    """The user's ``score_threshold`` when given (not None), else the checkpoint's calibrated one."""
    return checkpoint_score_threshold(ckpt) if score_threshold is None else score_threshold
