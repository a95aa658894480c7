"""Names the web service lists without importing torch (zoo.py checks it agrees with its specs)."""

MODEL_NAMES = (
    "fasterrcnn_mobilenet_v3_large_320_fpn",
    "fasterrcnn_mobilenet_v3_large_fpn",
    "fasterrcnn_resnet50_fpn",
    "retinanet_resnet50_fpn",
    "fcos_resnet50_fpn",
    "fcos_mobilenet_v3_large_fpn",
)
DEVICE_CHOICES = ("auto", "cpu", "cuda") + tuple(f"cuda:{index}" for index in range(8))
