"""torch side of the library: session configs, the model zoo, checkpoints, metrics, training, inference.

The names below are imported on first use, so that ``wps_lakes.detector.names`` (what the web
server needs) can be read without importing torch.
"""
import importlib

_EXPORTS = {
    "load_checkpoint": "checkpoints", "model_from_checkpoint": "zoo", "save_checkpoint": "checkpoints",
    "SessionConfig": "config", "load_config": "config",
    "detection_scores": "metrics", "voc_ap": "metrics",
    "TrainProgress": "training", "TrainResult": "training", "train_session": "training",
    "MODELS": "zoo", "build_model": "zoo",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
