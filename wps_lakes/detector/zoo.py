"""Allow-listed torchvision detectors with a 2-class head (background, lake).

A model is named by a short name (``fasterrcnn_mobilenet_v3_large_320_fpn``) or by the full
torchvision path a thelper config or checkpoint uses (``torchvision.models.detection.
fasterrcnn_resnet50_fpn``, ``torchvision.models.detection.faster_rcnn.fasterrcnn_resnet50_fpn``).
Nothing is ever downloaded: ``pretrained: true`` means "start from the local file in ``weights``"
(a torchvision state dict, a backbone state dict, or a checkpoint) and, as torchvision does for
pretrained models, freezes batch-norm statistics and the first backbone layers.
"""
import inspect
from dataclasses import dataclass
from pathlib import Path

from torch import nn
from torchvision.models import mobilenet_v3_large, resnet50
from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN, _mobilenet_extractor, _resnet_fpn_extractor
from torchvision.models.detection.fcos import FCOSHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7
from torchvision.ops.misc import FrozenBatchNorm2d

from ..errors import LakesError
from .checkpoints import checkpoint_input, checkpoint_score_threshold, load_checkpoint, state_dict_of

NUM_CLASSES = 2  # background, lake
CLASS_NAMES = {"background": 0, "lake": 1}

# Constructor arguments that take objects, not values: a config cannot set them.
_OBJECT_ARGS = {"self", "backbone", "num_classes", "rpn_anchor_generator", "rpn_head", "box_roi_pool", "box_head",
                "box_predictor", "anchor_generator", "head", "proposal_matcher", "kwargs"}
# Our parameters, handled here rather than passed to torchvision, and the kind of value each takes.
_OWN_PARAMS = {"pretrained": "flag", "pretrained_backbone": "flag", "weights": "text", "num_classes": "number",
               "trainable_backbone_layers": "number", "anchor_sizes": "list", "image_scale": "number or null"}
# Default detector settings of torchvision's 320 variant (low resolution, fewer proposals).
_LOW_RES = {"min_size": 320, "max_size": 640, "rpn_pre_nms_top_n_test": 150, "rpn_post_nms_top_n_test": 150,
            "rpn_score_thresh": 0.05}


class FixedScaleTransform(GeneralizedRCNNTransform):
    """Resizes every image by one factor instead of to min_size/max_size, so that a lake keeps the
    same size in pixels whatever the size of the window (training) or tile (inference) it is in."""

    def __init__(self, scale, image_mean, image_std):
        super().__init__(min_size=1, max_size=1, image_mean=image_mean, image_std=image_std)
        self.scale = float(scale)

    def resize(self, image, target=None):
        height, width = image.shape[-2:]
        if self.scale != 1.0:
            image = nn.functional.interpolate(image[None], scale_factor=self.scale, mode="bilinear",
                                              recompute_scale_factor=True, antialias=self.scale < 1)[0]
        if target is not None:
            target["boxes"] = resize_boxes(target["boxes"], (height, width), image.shape[-2:])
        return image, target


@dataclass(frozen=True)
class ModelSpec:
    detector: type          # FasterRCNN, RetinaNet or FCOS
    backbone: str           # resnet50, mobilenet_v3_large, or mobilenet_v3_large_light (ours)
    defaults: dict          # detector arguments this variant changes
    module: str             # torchvision module that defines the builder (thelper names it)
    image_scale: float | None = None   # default image_scale, unless params set it, min_size or max_size


_SPECS = {
    "fasterrcnn_resnet50_fpn": ModelSpec(FasterRCNN, "resnet50", {}, "faster_rcnn"),
    "fasterrcnn_mobilenet_v3_large_fpn": ModelSpec(
        FasterRCNN, "mobilenet_v3_large", {"rpn_score_thresh": 0.05}, "faster_rcnn"),
    "fasterrcnn_mobilenet_v3_large_320_fpn": ModelSpec(FasterRCNN, "mobilenet_v3_large", _LOW_RES, "faster_rcnn"),
    "retinanet_resnet50_fpn": ModelSpec(RetinaNet, "resnet50", {}, "retinanet"),
    "fcos_resnet50_fpn": ModelSpec(FCOS, "resnet50", {}, "fcos"),
    # ours: FCOS on MobileNet-v3 with a narrow FPN from stride 4 and a 2-conv head, trainable on a CPU
    "fcos_mobilenet_v3_large_fpn": ModelSpec(FCOS, "mobilenet_v3_large_light", {"score_thresh": 0.05}, "zoo",
                                             image_scale=0.5),
}
# MobileNet-v3 blocks ending the stride 4, 8, 16 and 32 stages, their channels, and the light FPN's width
_LIGHT_LAYERS = {"3": "0", "6": "1", "12": "2", "15": "3"}
_LIGHT_CHANNELS = [24, 40, 112, 160]
_LIGHT_WIDTH = 64


def qualified_name(short):
    """The full name a checkpoint records (thelper writes the builder's module.qualname)."""
    module = _SPECS[short].module
    return f"wps_lakes.detector.zoo.{short}" if module == "zoo" else f"torchvision.models.detection.{module}.{short}"


# The allow-list: every accepted spelling -> short name.
MODELS = {}
for _short, _spec in _SPECS.items():
    _names = (_short, qualified_name(_short)) if _spec.module == "zoo" else \
        (_short, f"torchvision.models.detection.{_short}", qualified_name(_short))
    for _name in _names:
        MODELS[_name] = _short


def model_names():
    """The short model names, for messages and forms."""
    return list(_SPECS)


def resolve_model(type_name):
    """Short name of an allow-listed model type, or LakesError listing the allowed names."""
    if isinstance(type_name, str) and type_name in MODELS:
        return MODELS[type_name]
    raise LakesError(f"model type {str(type_name)[:200]!r} is not allowed; use one of {', '.join(_SPECS)} "
                     f"(or their torchvision.models.detection.* names)")


def _parameter_kinds(short):
    """{parameter: kind of value} for a model (the keys of _KIND_CHECKS)."""
    kinds = {}
    for name, parameter in inspect.signature(_SPECS[short].detector.__init__).parameters.items():
        if name in _OBJECT_ARGS:
            continue
        default = parameter.default
        kinds[name] = "flag" if isinstance(default, bool) else "number" if isinstance(default, (int, float)) \
            else "list"
    kinds["min_size"] = "numbers"  # torchvision picks one of several at random when training
    return kinds | _OWN_PARAMS


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_KIND_CHECKS = {
    "flag": lambda v: isinstance(v, bool),
    "number": _is_number,
    "number or null": lambda v: v is None or _is_number(v),
    "list": lambda v: isinstance(v, list) and all(_is_number(x) for x in v),
    "numbers": lambda v: _is_number(v) or (isinstance(v, list) and all(_is_number(x) for x in v)),
    "text": lambda v: v is None or isinstance(v, str),
}
_KIND_NAMES = {"flag": "true or false", "number": "a number", "number or null": "a number or null",
               "list": "a list of numbers", "numbers": "a number or a list of numbers",
               "text": "a string (a file path)"}


def model_parameters(type_name):
    """Names of the parameters a config may give the model ``type_name``."""
    return sorted(_parameter_kinds(resolve_model(type_name)))


def check_model_params(type_name, params):
    """Refuse unknown parameters and values of the wrong kind; return the params as a plain dict."""
    kinds = _parameter_kinds(resolve_model(type_name))
    if not isinstance(params, dict):
        raise LakesError("model 'params' must be an object of parameter names and values")
    for key, value in params.items():
        if key not in kinds:
            raise LakesError(f"model {type_name} has no parameter {str(key)[:100]!r}; "
                             f"allowed: {', '.join(sorted(kinds))}")
        if not _KIND_CHECKS[kinds[key]](value):
            raise LakesError(f"model parameter {key!r} must be {_KIND_NAMES[kinds[key]]}, not {str(value)[:100]!r}")
    if params.get("num_classes", NUM_CLASSES) != NUM_CLASSES:
        raise LakesError(f"num_classes must be {NUM_CLASSES} (background and lake); leave it out")
    return dict(params)


def _backbone(spec, pretrained, trainable_layers):
    norm_layer = FrozenBatchNorm2d if pretrained else nn.BatchNorm2d
    if spec.backbone == "resnet50":
        layers = trainable_layers if pretrained and trainable_layers is not None else (3 if pretrained else 5)
        if not 0 <= layers <= 5:
            raise LakesError("trainable_backbone_layers must be between 0 and 5 for a ResNet-50 backbone")
        if spec.detector is FasterRCNN:
            return _resnet_fpn_extractor(resnet50(weights=None, norm_layer=norm_layer), layers)
        return _resnet_fpn_extractor(resnet50(weights=None, norm_layer=norm_layer), layers,
                                     returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))
    layers = trainable_layers if pretrained and trainable_layers is not None else (3 if pretrained else 6)
    if not 0 <= layers <= 6:
        raise LakesError("trainable_backbone_layers must be between 0 and 6 for a MobileNet-v3 backbone")
    if spec.backbone == "mobilenet_v3_large_light":
        features = mobilenet_v3_large(weights=None, norm_layer=norm_layer).features
        stages = [0] + [i for i, block in enumerate(features) if getattr(block, "_is_cn", False)] + [len(features) - 1]
        freeze_before = len(features) if layers == 0 else stages[len(stages) - layers]
        for block in list(features)[:freeze_before]:
            block.requires_grad_(False)
        return BackboneWithFPN(features, _LIGHT_LAYERS, _LIGHT_CHANNELS, _LIGHT_WIDTH,
                               extra_blocks=LastLevelMaxPool())
    return _mobilenet_extractor(mobilenet_v3_large(weights=None, norm_layer=norm_layer), True, layers)


def _anchor_generator(spec, anchor_sizes):
    """Anchors of the given sizes (pixels of the resized image) for the detector family."""
    sizes = [int(s) for s in anchor_sizes]
    if spec.detector is FCOS:
        raise LakesError("anchor_sizes does not apply to FCOS (it is anchor-free); leave it out")
    if spec.detector is RetinaNet:
        per_level = tuple((s, int(s * 2 ** (1 / 3)), int(s * 2 ** (2 / 3))) for s in sizes)
        levels = 5
    elif spec.backbone == "resnet50":
        per_level = tuple((s,) for s in sizes)
        levels = 5
    else:  # MobileNet FPN: 3 levels, every size on each, as torchvision does
        per_level = (tuple(sizes),) * 3
        levels = 3
    if len(per_level) != levels:
        raise LakesError(f"anchor_sizes needs {levels} sizes for this model (one per feature level), got {len(sizes)}")
    return AnchorGenerator(per_level, ((0.5, 1.0, 2.0),) * levels)


def build_model(type_name, params=None, *, with_weights=True):
    """A detector of an allow-listed type with a 2-class head; weights from a local file if ``params`` name one.

    ``params``: torchvision detector arguments (min_size, max_size, rpn_*, box_*, ...) and ours:
    ``pretrained`` (bool), ``weights`` (path of a local .pth), ``trainable_backbone_layers``,
    ``anchor_sizes`` (list of ints), ``image_scale`` (resize every image by this factor rather than
    to min_size/max_size). ``with_weights=False`` builds the same structure without
    reading ``weights`` (the caller loads a checkpoint into it).
    """
    short = resolve_model(type_name)
    spec = _SPECS[short]
    params = check_model_params(short, params or {})
    weights = params.pop("weights", None)
    pretrained = bool(params.pop("pretrained", False))
    if not with_weights:
        weights = None
    elif params.pop("pretrained_backbone", False) and weights is None:
        raise LakesError("pretrained_backbone needs a local weights file: set model param 'weights' to the path of "
                         "the backbone's state dict (nothing is downloaded), or leave pretrained_backbone out")
    if pretrained and weights is None and with_weights:
        raise LakesError(f"model {short}: 'pretrained': true needs local weights (nothing is downloaded); set model "
                         "param 'weights' to a torchvision state dict or checkpoint file, start from a checkpoint "
                         "(init checkpoint), or set 'pretrained': false to train from scratch")
    params.pop("num_classes", None)
    params.pop("pretrained_backbone", None)
    trainable_layers = params.pop("trainable_backbone_layers", None)
    sized = any(key in params for key in ("image_scale", "min_size", "max_size"))
    image_scale = params.pop("image_scale", None) if sized else spec.image_scale
    anchor_sizes = params.pop("anchor_sizes", None)
    backbone = _backbone(spec, pretrained, trainable_layers)
    kwargs = {**spec.defaults, **params}
    if spec.backbone == "mobilenet_v3_large_light":
        # one anchor point per location, its size the level's stride (4 ... 64), as FCOS expects
        kwargs.setdefault("anchor_generator", AnchorGenerator(((4,), (8,), (16,), (32,), (64,)), ((1.0,),) * 5))
        kwargs["head"] = FCOSHead(_LIGHT_WIDTH, 1, NUM_CLASSES, num_convs=2)
    if anchor_sizes is not None:
        key = "rpn_anchor_generator" if spec.detector is FasterRCNN else "anchor_generator"
        kwargs[key] = _anchor_generator(spec, anchor_sizes)
    elif spec.detector is FasterRCNN and spec.backbone != "resnet50":
        kwargs["rpn_anchor_generator"] = AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)
    try:
        model = spec.detector(backbone, num_classes=NUM_CLASSES, **kwargs)
    except (TypeError, ValueError) as exc:
        raise LakesError(f"model {short}: invalid parameters ({exc})") from None
    if image_scale is not None:
        if not 0.1 <= image_scale <= 4:
            raise LakesError("image_scale must be between 0.1 and 4 (the factor every image is resized by)")
        model.transform = FixedScaleTransform(image_scale, model.transform.image_mean, model.transform.image_std)
    if weights is not None:
        load_weights(model, weights)
    return model


def load_weights(model, path):
    """Load a local weights file into ``model``: a full detector, a checkpoint, or a backbone state dict.

    Tensors whose shapes differ (a 91-class COCO head) are left as initialised. Returns the number
    of tensors loaded; refuses a file that fits less than half of the model.
    """
    path = Path(str(path))
    if not path.is_file():
        raise LakesError(f"weights file {path.name!r} not found; give the path of a local .pth file "
                         "(nothing is downloaded)")
    source = state_dict_of(load_checkpoint(path))
    target = model.state_dict()
    best = {}
    for rename in (lambda k: k, lambda k: "backbone.body." + k,
                   lambda k: "backbone.body." + k.removeprefix("features.")):
        fitted = {rename(k): v for k, v in source.items()
                  if rename(k) in target and target[rename(k)].shape == v.shape}
        if len(fitted) > len(best):
            best = fitted
    if len(best) < len(target) // 2 and len(best) < len(source) // 2:
        raise LakesError(f"weights file {path.name!r} does not fit this model ({len(best)} of {len(target)} "
                         "tensors match); use weights of the same architecture")
    model.load_state_dict(best, strict=False)
    return len(best)


def count_parameters(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def checkpoint_model(ckpt):
    """(short model name, params) of a checkpoint, from its own keys or its config (thelper layout)."""
    model_cfg = (ckpt.get("config") or {}).get("model") or {}
    type_name = ckpt.get("model_type") or model_cfg.get("type")
    params = ckpt.get("model_params") or model_cfg.get("params") or {}
    if not type_name:
        raise LakesError("the checkpoint does not say which model it holds (no model_type nor config.model)")
    return resolve_model(type_name), dict(params)


def model_from_checkpoint(ckpt, device="cpu"):
    """Rebuild the model a checkpoint holds, in eval mode on ``device``.

    ``ckpt``: a dict from load_checkpoint or a path. Works on our checkpoints (final or written
    mid-training) and on thelper's. Returns ``(model, info)``; info has name, epoch, iter,
    model_type, model_params, outputs, monitor_best, monitor_best_epoch, input and score_threshold.
    """
    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt)
    short, params = checkpoint_model(ckpt)
    state = state_dict_of(ckpt)
    model = build_model(short, params, with_weights=False)
    expected = model.state_dict()
    for key, tensor in state.items():
        if key in expected and expected[key].shape != tensor.shape:
            if "cls" in key and expected[key].shape[1:] == tensor.shape[1:]:
                classes = tensor.shape[0] * NUM_CLASSES // expected[key].shape[0]
                raise LakesError(f"the checkpoint's model predicts {classes} classes; a lake detector has "
                                 f"{NUM_CLASSES} (background, lake). Use a checkpoint trained for lakes")
            raise LakesError(f"the checkpoint's weights do not fit model {short} (tensor {key} differs)")
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise LakesError(f"the checkpoint's weights do not fit model {short} "
                         f"({len(missing)} missing, {len(unexpected)} unexpected tensors)")
    model.load_state_dict(state, strict=False)
    model.to(device).eval()
    info = {key: ckpt.get(key) for key in ("name", "epoch", "iter", "source", "version", "outputs",
                                           "monitor_best", "monitor_best_epoch")}
    info.update(model_type=short, model_params=params, input=checkpoint_input(ckpt),
                score_threshold=checkpoint_score_threshold(ckpt))
    return model, info
