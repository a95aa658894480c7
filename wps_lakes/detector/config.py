"""thelper-style session configs: validation, defaults and allow-lists.

A config has thelper's top-level keys: ``name``, ``datasets``, ``loaders``, ``model``, ``trainer``
and ``overwrite``. Every ``type`` (dataset, model, optimizer, scheduler, metric, transform, collate
function, trainer) is looked up in an allow-list below; nothing a config names is ever imported.
Unknown keys, and thelper options that have no effect here, are reported in
``SessionConfig.warnings``; values of the wrong kind and types outside the lists raise LakesError.

The smallest config is the data only::

    {"datasets": {"lakes": {"params": {"raster_path": "dem.tif", "vector_path": "hydro.geojson"}}}}

(or ``load_config({}).with_data(rasters=[...], vector=...)``); everything else has a default.
"""
import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LakesError
from ..geodata.tensors import SCALINGS
from ..limits import DEFAULT_LIMITS
from .zoo import check_model_params, model_names, model_parameters, resolve_model

TB15_DATASET = "thelper.data.geo.ogc.TB15D104Dataset"
TB15_TILE_DATASET = "thelper.data.geo.ogc.TB15D104TileDataset"
DATASET_TYPES = {TB15_DATASET: TB15_DATASET, "TB15D104Dataset": TB15_DATASET,
                 TB15_TILE_DATASET: TB15_TILE_DATASET, "TB15D104TileDataset": TB15_TILE_DATASET}
OPTIMIZERS = {f"torch.optim.{n}": n for n in ("SGD", "Adam", "AdamW")} | {n: n for n in ("SGD", "Adam", "AdamW")}
SCHEDULERS = {f"torch.optim.lr_scheduler.{n}": n for n in
              ("StepLR", "MultiStepLR", "CosineAnnealingLR", "ExponentialLR", "ReduceLROnPlateau")}
SCHEDULERS |= {n: n for n in SCHEDULERS.values()}
# metric type -> kind; a detection logger is a thelper test-time output, not a score.
METRICS = {"thelper.optim.metrics.AveragePrecision": "ap", "AveragePrecision": "ap",
           "Precision": "precision", "Recall": "recall",
           "thelper.data.geo.ogc.TB15D104DetectLogger": "logger"}
# transform operation -> kind (our box-aware implementations; ToTensor is a no-op since samples are tensors)
TRANSFORMS = {"torchvision.transforms.ToTensor": "to_tensor", "ToTensor": "to_tensor",
              "torchvision.transforms.RandomHorizontalFlip": "hflip", "RandomHorizontalFlip": "hflip",
              "torchvision.transforms.RandomVerticalFlip": "vflip", "RandomVerticalFlip": "vflip",
              "RandomRot90": "rot90", "RandomScale": "scale", "RandomResample": "resample",
              "RandomRelief": "relief", "RandomDemNoise": "noise", "RandomFlatten": "flatten"}
# what each augmentation takes besides p, with its defaults (see datasets.augment)
TRANSFORM_PARAMS = {"scale": {"min": 0.7, "max": 1.4},            # zoom of the window, boxes with it
                    "resample": {"px_min": 1.0, "px_max": 10.0},  # the DEM as if from a source of that pixel size
                    "relief": {"min": 0.3, "max": 3.0, "offset": 0.05},  # DEM relief scaled around the water level
                    "noise": {"max": 0.03},                       # DEM noise (std, in the channel's [0, 1] units)
                    "flatten": {"min": 0.05, "max": 0.3}}         # relief nearly flattened (with the noise: flat land)
COLLATE_FUNCTIONS = ("thelper.data.loaders.default_collate", "wps_lakes.detector.datasets.collate")
TRAINERS = ("thelper.train.ObjDetectTrainer", "thelper.train.detect.ObjDetectTrainer")
DEVICES = "auto, cpu, cuda or cuda:N"

OPTIMIZER_PARAMS = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "betas", "eps", "amsgrad", "maximize")
SCHEDULER_PARAMS = {"StepLR": ("step_size", "gamma"), "MultiStepLR": ("milestones", "gamma"),
                    "CosineAnnealingLR": ("T_max", "eta_min"), "ExponentialLR": ("gamma",),
                    "ReduceLROnPlateau": ("factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr",
                                          "eps")}
# the name a normalised config uses for each kind
METRIC_NAMES = {"ap": "thelper.optim.metrics.AveragePrecision", "precision": "Precision", "recall": "Recall"}
TRANSFORM_NAMES = {"hflip": "torchvision.transforms.RandomHorizontalFlip",
                   "vflip": "torchvision.transforms.RandomVerticalFlip", "rot90": "RandomRot90",
                   "scale": "RandomScale", "resample": "RandomResample", "relief": "RandomRelief",
                   "noise": "RandomDemNoise", "flatten": "RandomFlatten"}
SAMPLINGS = ("focal", "scene")
METRIC_PARAMS = {"ap": ("target_class", "iou_threshold", "method", "max_win_size"),
                 "precision": ("iou_threshold", "score_threshold"), "recall": ("iou_threshold", "score_threshold"),
                 "logger": ()}

DEFAULT_MODEL = "fcos_mobilenet_v3_large_fpn"   # the CPU model of the shipped config
DEFAULT_DATASET_PARAMS = {"px_size": 3.0, "lake_area_min": 100.0, "lake_area_max": 200_000.0,
                          "lake_river_max_dist": 300.0, "roi_buffer": 1000.0, "srs_target": "EPSG:2959",
                          "scaling": "minmax", "master_roi": None, "sampling": "focal"}
DEFAULT_TILE_PARAMS = {"tile_size": 500, "tile_overlap": 100}
# thelper dataset options that do nothing here: reprojection is automatic, no debug display, no joblib.
INERT_DATASET_PARAMS = ("reproj_rasters", "display_debug", "parallel", "force_parse", "focus_lakes",
                        "clip_outlying_vectors", "keep_rasters_open")
INERT_LOADER_KEYS = ("pin_memory", "drop_last", "skip_verif", "skip_split_norm", "skip_class_balancing",
                     "sampler", "train_sampler", "valid_sampler", "test_sampler", "train_scale", "valid_scale",
                     "test_scale", "numpy_seed", "random_seed", "valid_seed", "test_seed", "valid_augments",
                     "test_augments", "test_batch_size")
INERT_TRAINER_KEYS = ("use_tbx", "tbx", "use_tb", "tb", "tensorboard", "unique_output_dir", "save_raw",
                      "skip_tbx_histograms", "tbx_histogram_freq", "display", "display_predictions",
                      "display_train_predictions", "display_valid_predictions", "skip_eval_iter", "output_dir",
                      "train_metrics", "test_metrics", "train_iter_callback", "valid_iter_callback")
OVERRIDES = ("model", "epochs", "batch_size", "learning_rate", "device")


def _quote(value):
    return repr(str(value)[:200])


def _allowed(kind, names):
    return f"allowed {kind}: {', '.join(names)}"


class _Checker:
    """Reads one config, collecting warnings; refusals raise LakesError with the key's path."""

    def __init__(self):
        self.warnings = []

    def warn(self, message):
        self.warnings.append(message)

    def section(self, value, where):
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise LakesError(f"{where} must be an object ({{...}}), not {type(value).__name__}")
        return value

    def keys(self, section, where, known, inert=()):
        for key in section:
            if key in inert:
                self.warn(f"{where}.{key}: thelper option with no effect here (ignored)")
            elif key not in known:
                self.warn(f"{where}.{key}: unknown key (ignored); known keys: {', '.join(known)}")

    def number(self, value, where, minimum=None, integer=False, maximum=None):
        kind = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise LakesError(f"{where} must be {'an integer' if integer else 'a number'}, not {_quote(value)}")
        if minimum is not None and value < minimum:
            raise LakesError(f"{where} must be at least {minimum}, not {value}")
        if maximum is not None and value > maximum:
            raise LakesError(f"{where} must be at most {maximum}, not {value}")
        return value

    def flag(self, value, where):
        if not isinstance(value, bool):
            raise LakesError(f"{where} must be true or false, not {_quote(value)}")
        return value

    def text(self, value, where):
        if not isinstance(value, str) or not value.strip():
            raise LakesError(f"{where} must be a non-empty string, not {_quote(value)}")
        return value

    def lookup(self, value, table, where, kind):
        if isinstance(value, str) and value in table:
            return table[value]
        names = sorted(set(table) if isinstance(table, dict) else table)
        raise LakesError(f"{where} {_quote(value)} is not allowed; {_allowed(kind, names)}")

    def params(self, value, where, allowed, plain_lists=True):
        value = self.section(value, where)
        for key, item in value.items():
            if key not in allowed:
                raise LakesError(f"{where}: unknown parameter {_quote(key)}; {_allowed('parameters', allowed)}")
            items = item if isinstance(item, list) and plain_lists else [item]
            if not all(v is None or isinstance(v, (bool, int, float, str)) for v in items):
                raise LakesError(f"{where}.{key} must be a number, string, boolean or a list of them")
        return dict(value)


def _srs(value, where):
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        return f"EPSG:{int(value)}"
    if isinstance(value, str) and value.strip():
        return value
    raise LakesError(f"{where} must be an EPSG code such as \"2959\" or \"EPSG:2959\", not {_quote(value)}")


def _dataset(check, name, entry):
    where = f"datasets.{name}"
    entry = check.section(entry, where)
    check.keys(entry, where, ("type", "params"))
    dtype = check.lookup(entry.get("type", TB15_DATASET), DATASET_TYPES, f"{where}.type", "dataset types")
    raw = check.section(entry.get("params"), f"{where}.params")
    defaults = DEFAULT_DATASET_PARAMS | (DEFAULT_TILE_PARAMS if dtype == TB15_TILE_DATASET else {})
    known = ("raster_path", "vector_path", "feature_buffer", *defaults)
    check.keys(raw, f"{where}.params", known, INERT_DATASET_PARAMS)
    params = dict(defaults)
    params.update({k: v for k, v in raw.items() if k in known})
    if "feature_buffer" in params:  # thelper's later name for roi_buffer
        params["roi_buffer"] = params.pop("feature_buffer")
    rasters = params.get("raster_path")
    if isinstance(rasters, list):
        if not rasters:
            raise LakesError(f"{where}.params.raster_path is an empty list; give one or more GeoTIFF paths")
        for i, path in enumerate(rasters):
            check.text(path, f"{where}.params.raster_path[{i}]")
    elif rasters is not None:
        check.text(rasters, f"{where}.params.raster_path")
    if params.get("vector_path") is not None:
        check.text(params["vector_path"], f"{where}.params.vector_path")
    if params["master_roi"] is not None:
        check.text(params["master_roi"], f"{where}.params.master_roi")
    for key in ("px_size", "lake_area_min", "lake_area_max", "lake_river_max_dist", "roi_buffer"):
        params[key] = float(check.number(params[key], f"{where}.params.{key}", minimum=0))
    if params["px_size"] <= 0:
        raise LakesError(f"{where}.params.px_size must be positive")
    if params["lake_area_max"] < params["lake_area_min"]:
        raise LakesError(f"{where}.params.lake_area_max must not be below lake_area_min")
    params["srs_target"] = _srs(params["srs_target"], f"{where}.params.srs_target")
    params["scaling"] = check.lookup(params["scaling"], {s: s for s in SCALINGS}, f"{where}.params.scaling",
                                     "scalings")
    params["sampling"] = check.lookup(params["sampling"], {s: s for s in SAMPLINGS}, f"{where}.params.sampling",
                                      "samplings (focal: thelper's focal-lake windows; scene: those, isolated "
                                      "lakes and the inference tiles over the whole scene)")
    if dtype == TB15_TILE_DATASET:
        size = params["tile_size"]
        size = size[0] if isinstance(size, list) and len(size) == 2 and size[0] == size[1] else size
        params["tile_size"] = check.number(size, f"{where}.params.tile_size (square tiles)", minimum=32, integer=True)
        params["tile_overlap"] = check.number(params["tile_overlap"], f"{where}.params.tile_overlap", minimum=0,
                                              maximum=params["tile_size"] - 1, integer=True)
    return {"type": dtype, "params": params}


def _transforms(check, value, where):
    if isinstance(value, dict):  # thelper's {"append": bool, "transforms": [...]}
        check.keys(value, where, ("append", "transforms"))
        value = value.get("transforms", [])
    if value is None:
        return []
    if not isinstance(value, list):
        raise LakesError(f"{where} must be a list of {{\"operation\": ..., \"params\": ...}} entries")
    out = []
    for i, entry in enumerate(value):
        at = f"{where}[{i}]"
        entry = check.section(entry, at)
        check.keys(entry, at, ("operation", "params", "target_key", "linked_fate"))
        kind = check.lookup(entry.get("operation"), TRANSFORMS, f"{at}.operation", "transform operations")
        allowed = () if kind == "to_tensor" else ("p", *TRANSFORM_PARAMS.get(kind, {}))
        params = check.params(entry.get("params"), f"{at}.params", allowed)
        if "p" in params:
            check.number(params["p"], f"{at}.params.p", minimum=0, maximum=1)
        if kind in TRANSFORM_PARAMS:
            params = TRANSFORM_PARAMS[kind] | params
            for key in TRANSFORM_PARAMS[kind]:
                params[key] = float(check.number(params[key], f"{at}.params.{key}", minimum=0))
            if kind != "noise":
                low, high = list(TRANSFORM_PARAMS[kind])[:2]
                if not 0 < params[low] <= params[high]:
                    raise LakesError(f"{at}.params: {low} must be positive and not above {high}")
        if kind != "to_tensor":
            out.append({"operation": TRANSFORM_NAMES[kind], "params": params})
    return out


def _loaders(check, section, dataset_names):
    where = "loaders"
    section = check.section(section, where)
    known = ("batch_size", "train_batch_size", "valid_batch_size", "workers", "shuffle", "collate_fn",
             "base_transforms", "train_augments", "train_split", "valid_split", "test_split", "seed", "seeds",
             "torch_seed", "cache", "split_block_size")
    check.keys(section, where, known, INERT_LOADER_KEYS)
    batch = section.get("train_batch_size", section.get("batch_size", 8))
    out = {
        "batch_size": check.number(batch, f"{where}.batch_size", minimum=1, integer=True),
        "valid_batch_size": check.number(section.get("valid_batch_size", section.get("batch_size", batch)),
                                         f"{where}.valid_batch_size", minimum=1, integer=True),
        "workers": check.number(section.get("workers", 0), f"{where}.workers", minimum=0, maximum=64, integer=True),
        "shuffle": check.flag(section.get("shuffle", True), f"{where}.shuffle"),
        "cache": check.flag(section.get("cache", True), f"{where}.cache"),
        "split_block_size": None,
    }
    if section.get("split_block_size") is not None:
        out["split_block_size"] = float(check.number(section["split_block_size"], f"{where}.split_block_size",
                                                     minimum=1))
    seeds = check.section(section.get("seeds"), f"{where}.seeds")
    seed = section.get("torch_seed", seeds.get("torch", section.get("seed", 0)))
    out["seed"] = check.number(seed, f"{where}.seed", minimum=0, integer=True)
    collate = check.section(section.get("collate_fn"), f"{where}.collate_fn") if isinstance(
        section.get("collate_fn"), dict) else {"type": section.get("collate_fn", COLLATE_FUNCTIONS[0])}
    check.lookup(collate.get("type"), {c: c for c in COLLATE_FUNCTIONS}, f"{where}.collate_fn.type",
                 "collate functions")
    check.params(collate.get("params"), f"{where}.collate_fn.params", ("force_tensor",))
    out["collate_fn"] = {"type": collate["type"], "params": dict(collate.get("params") or {})}
    base = _transforms(check, section.get("base_transforms"), f"{where}.base_transforms")
    if base:
        raise LakesError(f"{where}.base_transforms apply to validation too; put random flips and rotations in "
                         f"{where}.train_augments")
    out["base_transforms"] = section.get("base_transforms") or []
    out["train_augments"] = _transforms(check, section.get("train_augments"), f"{where}.train_augments")
    splits = {}
    for split in ("train_split", "valid_split", "test_split"):
        ratios = check.section(section.get(split), f"{where}.{split}")
        for name, ratio in ratios.items():
            if name not in dataset_names:
                raise LakesError(f"{where}.{split} names dataset {_quote(name)}, which is not in datasets "
                                 f"({', '.join(dataset_names) or 'none'})")
            check.number(ratio, f"{where}.{split}.{name}", minimum=0, maximum=1)
        splits[split] = {k: float(v) for k, v in ratios.items()}
    if not any(splits.values()):
        splits["train_split"] = {name: 0.9 for name in dataset_names}
        splits["valid_split"] = {name: 0.1 for name in dataset_names}
    for name in dataset_names:
        total = sum(splits[s].get(name, 0.0) for s in splits)
        if total > 1 + 1e-9:
            raise LakesError(f"{where}: the split ratios of dataset {_quote(name)} add up to {total:g}, over 1")
        if total == 0:
            check.warn(f"datasets.{name} is in no split (train_split/valid_split) and is not used")
    for name, ratio in splits["test_split"].items():
        if ratio and (ratio < 1 or splits["train_split"].get(name) or splits["valid_split"].get(name)):
            check.warn(f"{where}.test_split.{name}: only a whole dataset (ratio 1, in no other split) is scored "
                       "at the end of training (whole-region detect); give the test scene a dataset of its own")
    out.update(splits)
    return out


def _optimization(check, section, epochs):
    where = "trainer.optimization"
    if section is None:  # the shipped CPU recipe
        return {"optimizer": {"type": "torch.optim.AdamW", "params": {"lr": 0.002, "weight_decay": 1e-4}},
                "scheduler": {"type": "torch.optim.lr_scheduler.CosineAnnealingLR", "params": {"T_max": epochs}}}
    section = check.section(section, where)
    check.keys(section, where, ("optimizer", "scheduler"), ("loss",))
    opt = check.section(section.get("optimizer"), f"{where}.optimizer")
    check.keys(opt, f"{where}.optimizer", ("type", "params"))
    opt_type = check.lookup(opt.get("type", "torch.optim.SGD"), OPTIMIZERS, f"{where}.optimizer.type", "optimizers")
    params = check.params(opt.get("params"), f"{where}.optimizer.params", OPTIMIZER_PARAMS)
    if opt_type == "SGD":
        params = {"lr": 0.005, "momentum": 0.9, "weight_decay": 5e-4} | params
    params.setdefault("lr", 0.001)
    check.number(params["lr"], f"{where}.optimizer.params.lr", minimum=0)
    out = {"optimizer": {"type": f"torch.optim.{opt_type}", "params": params}, "scheduler": None}
    sched = section.get("scheduler")
    if sched is not None:
        sched = check.section(sched, f"{where}.scheduler")
        check.keys(sched, f"{where}.scheduler", ("type", "params"), ("step_metric",))
        stype = check.lookup(sched.get("type"), SCHEDULERS, f"{where}.scheduler.type", "schedulers")
        sparams = check.params(sched.get("params"), f"{where}.scheduler.params", SCHEDULER_PARAMS[stype])
        out["scheduler"] = {"type": f"torch.optim.lr_scheduler.{stype}", "params": sparams}
    return out


def _metrics(check, trainer):
    metrics = {}
    for key in ("metrics", "valid_metrics", "test_metrics", "train_metrics"):
        section = check.section(trainer.get(key), f"trainer.{key}")
        for name, entry in section.items():
            where = f"trainer.{key}.{name}"
            entry = check.section(entry, where)
            check.keys(entry, where, ("type", "params"))
            kind = check.lookup(entry.get("type"), METRICS, f"{where}.type", "metric types")
            params = check.params(entry.get("params"), f"{where}.params", METRIC_PARAMS[kind])
            if key not in ("metrics", "valid_metrics") or kind == "logger":
                continue  # train/test metrics and loggers are reported as inert by the trainer key check
            if params.get("target_class") not in (None, "lake", 1):
                raise LakesError(f"{where}.params.target_class must be \"lake\" (the only class)")
            if params.get("method", "all-points") not in ("all-points", "11-points"):
                raise LakesError(f"{where}.params.method must be \"all-points\" or \"11-points\"")
            if "max_win_size" in params:
                check.warn(f"{where}.params.max_win_size has no effect here (scores use the whole validation set)")
            clean = {"iou_threshold": float(check.number(params.get("iou_threshold", 0.5),
                                                         f"{where}.params.iou_threshold", minimum=0, maximum=1))}
            if kind == "ap":
                clean["method"] = params.get("method", "all-points")
            else:
                clean["score_threshold"] = float(check.number(params.get("score_threshold", 0.5),
                                                              f"{where}.params.score_threshold", minimum=0,
                                                              maximum=1))
            metrics[name] = {"type": METRIC_NAMES[kind], "params": clean}
    defaults = {"mAP": {"type": METRIC_NAMES["ap"], "params": {"iou_threshold": 0.5, "method": "all-points"}},
                "precision": {"type": "Precision", "params": {"iou_threshold": 0.5, "score_threshold": 0.5}},
                "recall": {"type": "Recall", "params": {"iou_threshold": 0.5, "score_threshold": 0.5}}}
    for name, entry in defaults.items():
        if not any(m["type"] == entry["type"] for m in metrics.values()) and name not in metrics:
            metrics[name] = entry
    return metrics


def check_device(value, where="trainer.device"):
    if isinstance(value, str) and (value in ("auto", "cpu", "cuda") or
                                   (value.startswith("cuda:") and value[5:].isdigit())):
        return value
    raise LakesError(f"{where} {_quote(value)} is not a device; use {DEVICES}")


def _trainer(check, section):
    where = "trainer"
    section = check.section(section, where)
    known = ("type", "epochs", "optimization", "monitor", "save_freq", "device", "devices", "train_device",
             "metrics", "valid_metrics", "amp", "warmup_iters", "max_iters_per_epoch", "threads", "from_scratch")
    check.keys(section, where, known, INERT_TRAINER_KEYS)
    if "type" in section:
        check.lookup(section["type"], {t: t for t in TRAINERS}, f"{where}.type", "trainers")
    device = section.get("device", section.get("devices", section.get("train_device", "auto")))
    out = {
        "epochs": check.number(section.get("epochs", 40), f"{where}.epochs", minimum=1, integer=True),
        "save_freq": check.number(section.get("save_freq", 1), f"{where}.save_freq", minimum=1, integer=True),
        "device": check_device(device),
        "amp": section.get("amp", "auto"),
        "warmup_iters": check.number(section.get("warmup_iters", 0), f"{where}.warmup_iters", minimum=0,
                                     integer=True),
        "max_iters_per_epoch": None,
        "threads": None,
        "from_scratch": check.flag(section.get("from_scratch", False), f"{where}.from_scratch"),
        "optimization": None,
        "metrics": _metrics(check, section),
    }
    out["optimization"] = _optimization(check, section.get("optimization"), out["epochs"])
    if section.get("threads") is not None:
        out["threads"] = check.number(section["threads"], f"{where}.threads", minimum=1, maximum=256, integer=True)
    if out["amp"] != "auto":
        check.flag(out["amp"], f"{where}.amp")
    if section.get("max_iters_per_epoch") is not None:
        out["max_iters_per_epoch"] = check.number(section["max_iters_per_epoch"], f"{where}.max_iters_per_epoch",
                                                  minimum=1, integer=True)
    monitor = section.get("monitor", next(n for n, m in out["metrics"].items() if METRICS[m["type"]] == "ap"))
    check.text(monitor, f"{where}.monitor")
    if monitor != "loss" and monitor not in out["metrics"]:
        raise LakesError(f"{where}.monitor {_quote(monitor)} names no metric; use \"loss\" or one of "
                         f"{', '.join(out['metrics'])}")
    out["monitor"] = monitor
    return out


def _model(check, section):
    section = check.section(section, "model")
    check.keys(section, "model", ("type", "params"), ("ckptdata", "map_location", "state", "state_dict", "task"))
    short = resolve_model(section.get("type", DEFAULT_MODEL))
    try:
        params = check_model_params(short, check.section(section.get("params"), "model.params"))
    except LakesError as exc:
        raise LakesError(f"model.params: {exc}") from None
    type_name = section.get("type", short)
    return {"type": type_name, "params": params}


@dataclass
class SessionConfig:
    """A validated session config: ``data`` is the full config (JSON-ready, defaults filled)."""

    data: dict
    warnings: list = field(default_factory=list)

    @property
    def name(self):
        return self.data["name"]

    @property
    def datasets(self):
        return self.data["datasets"]

    @property
    def loaders(self):
        return self.data["loaders"]

    @property
    def model(self):
        return self.data["model"]

    @property
    def trainer(self):
        return self.data["trainer"]

    def to_dict(self):
        return copy.deepcopy(self.data)

    def with_data(self, rasters, vector):
        """This config reading only the given files: every dataset's raster and vector paths replaced,
        ``master_roi`` and model ``weights`` dropped (the service passes weights as an init checkpoint).
        With no dataset, one called ``lakes`` is added. The result is validated again."""
        rasters = [str(p) for p in ([rasters] if isinstance(rasters, (str, Path)) else rasters)]
        data = self.to_dict()
        datasets = data["datasets"] or {"lakes": {"type": TB15_DATASET, "params": {}}}
        for entry in datasets.values():
            entry["params"].update(raster_path=rasters if len(rasters) > 1 else rasters[0], vector_path=str(vector),
                                   master_roi=None)
        data["datasets"] = datasets
        if not data["loaders"]["train_split"]:
            data["loaders"].pop("train_split")
            data["loaders"].pop("valid_split")
        data["model"]["params"].pop("weights", None)
        return load_config(data)

    def data_paths(self):
        """Every file path the config reads (rasters, vectors, ROIs, model weights)."""
        paths = []
        for entry in self.datasets.values():
            rasters = entry["params"].get("raster_path")
            paths += rasters if isinstance(rasters, list) else [rasters]
            paths += [entry["params"].get("vector_path"), entry["params"].get("master_roi")]
        paths.append(self.model["params"].get("weights"))
        return [p for p in paths if p]


def _apply_overrides(data, overrides, check):
    unknown = set(overrides) - set(OVERRIDES)
    if unknown:
        raise LakesError(f"unknown override(s) {', '.join(sorted(unknown))}; {_allowed('overrides', OVERRIDES)}")
    model = data.setdefault("model", {})
    if overrides.get("model") is not None:
        short = resolve_model(overrides["model"])
        params = model.get("params") if isinstance(model.get("params"), dict) else {}
        allowed = model_parameters(short)
        dropped = sorted(k for k in params if k not in allowed)
        if dropped:
            check.warn(f"model params {', '.join(dropped)} do not apply to {short} (dropped)")
        data["model"] = {"type": short, "params": {k: v for k, v in params.items() if k in allowed}}
    trainer = data.setdefault("trainer", {})
    if overrides.get("epochs") is not None:
        trainer["epochs"] = overrides["epochs"]
    if overrides.get("device") is not None:
        trainer["device"] = overrides["device"]
    if overrides.get("batch_size") is not None:
        loaders = data.setdefault("loaders", {})
        loaders.pop("train_batch_size", None)
        loaders["batch_size"] = overrides["batch_size"]
    if overrides.get("learning_rate") is not None:
        optimization = trainer.setdefault("optimization", {})
        optimizer = optimization.setdefault("optimizer", {})
        optimizer.setdefault("params", {})["lr"] = overrides["learning_rate"]


DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "lakes_default.json"


def default_config():
    """The session config used when none is given (``wps-lakes train --raster --vector``, the WPS train
    process without a config): the light detector trained on samples from the whole scene with the
    generalising augmentations, validated on a spatially separate 20 % of the scene."""
    return json.loads(DEFAULT_CONFIG.read_text())


def load_config(path_or_dict, overrides=None, limits=DEFAULT_LIMITS):
    """Validate a session config (a dict, a JSON file path, or a SessionConfig) and fill defaults.

    ``overrides``: a flat dict of model, epochs, batch_size, learning_rate, device (None values are
    skipped). Raises LakesError on anything refused, listing what is allowed, and LimitExceeded
    when epochs go over ``limits.max_epochs``.
    """
    if isinstance(path_or_dict, SessionConfig):
        path_or_dict = path_or_dict.to_dict()
    if isinstance(path_or_dict, (str, Path)):
        path = Path(path_or_dict)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise LakesError(f"config file {path.name!r} not found") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LakesError(f"config file {path.name!r} is not valid JSON ({exc})") from None
        except (OSError, ValueError):  # a folder, no permission, a NUL byte in the name
            raise LakesError(f"config file {path.name!r} could not be read; give the path of a JSON file") from None
    else:
        data = copy.deepcopy(path_or_dict if path_or_dict is not None else {})
    check = _Checker()
    data = check.section(data, "the config")
    if overrides:
        _apply_overrides(data, {k: v for k, v in overrides.items() if v is not None}, check)
    check.keys(data, "config", ("name", "datasets", "loaders", "model", "trainer", "overwrite"))
    name = check.text(data.get("name", "lakes"), "name")
    if any(c in name for c in "/\\\0") or name in (".", ".."):
        raise LakesError("name must be a plain folder name (no slashes)")
    datasets = {str(k): _dataset(check, k, v) for k, v in check.section(data.get("datasets"), "datasets").items()}
    inputs = {(d["params"]["px_size"], d["params"]["srs_target"], d["params"]["scaling"]) for d in datasets.values()}
    if len(inputs) > 1:
        raise LakesError("all datasets must share px_size, srs_target and scaling: the model learns one kind of input")
    out = {
        "name": name,
        "datasets": datasets,
        "loaders": _loaders(check, data.get("loaders"), list(datasets)),
        "model": _model(check, data.get("model")),
        "trainer": _trainer(check, data.get("trainer")),
        "overwrite": check.flag(data.get("overwrite", False), "overwrite"),
    }
    limits.check("max_epochs", out["trainer"]["epochs"], "the number of epochs")
    return SessionConfig(out, check.warnings)


__all__ = ["SessionConfig", "load_config", "default_config", "check_device", "DATASET_TYPES", "OPTIMIZERS",
           "SCHEDULERS", "METRICS", "TRANSFORMS", "COLLATE_FUNCTIONS", "TRAINERS", "DEFAULT_MODEL", "model_names"]
