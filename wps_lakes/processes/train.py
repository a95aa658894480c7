"""WPS process ``train``: session config + DEM + hydro -> a trained lake detector.

Always asynchronous. While it runs, each status document lists the newest and the best checkpoint
so far as output references, so a user can take a partly trained model at any time.
"""
import json
import time

from pywps import ComplexInput, LiteralInput
from pywps.inout.literaltypes import AllowedValue
from pywps.response.status import WPS_STATUS

from ..errors import LakesError
from .base import PROGRESS_INTERVAL, LakesProcess
from .io import CHECKPOINT, JSON, METADATA, PNG, TEXT, checkpoint_input, file_output, raster_inputs, vector_input

MAX_CONFIG_BYTES = 1 << 20
WRAP_UP_S = 600  # after max_train_seconds: the final checkpoint, evaluation and plots


class Train(LakesProcess):
    always_async = True
    uses_gpu = True

    def __init__(self):
        from ..detector.names import DEVICE_CHOICES, MODEL_NAMES

        inputs = [
            ComplexInput(
                "config", "Session configuration (JSON)",
                abstract="A thelper-style session config (datasets, loaders, model, trainer). Optional: the "
                         "defaults train the CPU-friendly detector. Its dataset file paths are replaced by the "
                         "raster and vector inputs.",
                supported_formats=[JSON], min_occurs=0, max_occurs=1),
            *raster_inputs(),
            vector_input("Hydrography with lake/river labels",
                         "Waterbody polygons with TYPECE (\"21\" lake, \"10\" river) and OBJECTID: GeoJSON, zipped "
                         "Shapefile or GeoPackage, any CRS."),
            checkpoint_input("A checkpoint to start from: its weights are fine-tuned, or with resume=true its "
                             "whole training state (epoch, optimizer) is continued."),
            LiteralInput("resume", "Resume the checkpoint's session", data_type="boolean", default=False,
                         min_occurs=0, abstract="true: continue the checkpoint's training where it stopped; "
                                                "false: start a new session from its weights."),
            LiteralInput("model", "Detector architecture", data_type="string", min_occurs=0,
                         allowed_values=list(MODEL_NAMES),
                         abstract="Overrides the config's model type."),
            LiteralInput("epochs", "Epochs", data_type="integer", min_occurs=0,
                         allowed_values=[AllowedValue(minval=1, maxval=10000)],
                         abstract="Overrides the config's trainer epochs."),
            LiteralInput("batch_size", "Batch size", data_type="integer", min_occurs=0,
                         allowed_values=[AllowedValue(minval=1, maxval=256)],
                         abstract="Overrides the config's loader batch size."),
            LiteralInput("learning_rate", "Learning rate", data_type="float", min_occurs=0,
                         allowed_values=[AllowedValue(minval=1e-8, maxval=10.0)],
                         abstract="Overrides the optimizer's learning rate."),
            LiteralInput("device", "Device", data_type="string", min_occurs=0, allowed_values=list(DEVICE_CHOICES),
                         abstract="auto (a GPU when the worker has one), cpu, cuda or cuda:N."),
        ]
        outputs = [
            file_output("best_checkpoint", "Best checkpoint",
                        "Checkpoint with the best validation mAP so far (listed while training runs).", CHECKPOINT),
            file_output("latest_checkpoint", "Latest checkpoint",
                        "The newest checkpoint (listed while training runs).", CHECKPOINT),
            file_output("metrics", "Metrics", "Per-epoch losses and validation metrics (JSON).", JSON),
            file_output("curves", "Training curves", "Loss and validation mAP per epoch (PNG).", PNG),
            file_output("log", "Session log", "The training session's log.", TEXT),
            file_output("output", "Trained detector", "The main result (the best checkpoint), for portals that "
                        "take one output named output.", CHECKPOINT),
        ]
        super().__init__(
            identifier="train", title="Train a lake detector",
            abstract="Trains a lake detector (Faster R-CNN and lighter variants) on DEM + hydrography windows "
                     "around lakes, from a thelper-style session config. Runs asynchronously; each status "
                     "document lists the newest and best checkpoints, usable with detect while training goes on.",
            keywords=["machine learning", "training", "lakes", "Faster R-CNN", "thelper"], metadata=METADATA,
            version="1.0", inputs=inputs, outputs=outputs)

    def wall_time_limit(self):
        # The session stops itself at max_train_seconds and then saves and evaluates; a job still
        # running WRAP_UP_S later is stuck.
        limit = self.limits().max_train_seconds
        return limit + WRAP_UP_S, f"the limit max_train_seconds = {limit:,} s, and {WRAP_UP_S} s to wrap up"

    def handle(self, request, response):
        from ..detector.checkpoints import load_checkpoint
        from ..detector.config import load_config
        from ..detector.training import train_session

        response.update_status("Fetching the inputs", 1)
        checkpoint = self.input_files(request, "checkpoint")
        resume = bool(self.literal(request, "resume", False))
        if resume and not checkpoint:
            raise LakesError("resume=true needs a checkpoint input to resume from")
        config_source = self.config_source(request)
        if resume and not request.inputs.get("config"):
            # Resuming continues the checkpoint's own session config (its model, its trainer).
            config_source = load_checkpoint(checkpoint[0]).get("config") or {}
        overrides = {key: self.literal(request, key) for key in ("model", "epochs", "batch_size", "learning_rate",
                                                                  "device")}
        config = load_config(config_source, overrides={k: v for k, v in overrides.items() if v is not None},
                             limits=self.limits())
        config = config.with_data(rasters=self.rasters(request),
                                  vector=self.input_file(request.inputs["vector"][0]))
        outdir = self.output_dir()
        # A redelivered job (its worker died) continues from the newest checkpoint it wrote.
        previous = find_session(outdir)
        init = checkpoint[0] if checkpoint and not resume and not previous else None
        if init is None and not resume and not previous:
            from ..detector.pretrained import default_init_checkpoint

            init = default_init_checkpoint(config)  # fine-tune the bundled model (trainer.from_scratch: not)
        result = train_session(
            config, outdir,
            resume=previous or (checkpoint[0] if resume and checkpoint else None),
            init_checkpoint=init,
            progress=self.training_progress(response), should_stop=self.stop_requested,
            limits=self.limits())
        if result.stopped:
            self.check_stop()
        done = result.summary()
        if result.stop_reason:  # the server's time limit ended it: say so in the final status
            done += f"; ended early: {result.stop_reason}"
        for identifier, path in (("best_checkpoint", result.best_checkpoint),
                                 ("latest_checkpoint", result.last_checkpoint), ("metrics", result.metrics_path),
                                 ("curves", result.curves_path), ("log", result.log_path),
                                 ("output", result.best_checkpoint)):
            response.publish(identifier, path)
        response._update_status(WPS_STATUS.SUCCEEDED, f"Training done: {done}", 100)  # PyWPS's own says nothing

    def config_source(self, request):
        inputs = request.inputs.get("config")
        if not inputs:
            from ..detector.config import default_config

            return default_config()
        path = self.input_file(inputs[0])
        with open(path, "rb") as handle:
            text = handle.read(MAX_CONFIG_BYTES + 1)
        if len(text) > MAX_CONFIG_BYTES:
            raise LakesError(f"the config is larger than {MAX_CONFIG_BYTES // 1024} KiB; a session config is a "
                             "few KiB of JSON")
        try:
            return json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LakesError(f"the config is not valid JSON: {exc}") from None

    def training_progress(self, response):
        """Status updates from the trainer: percent, a message, and the checkpoints so far."""
        last = [0.0]
        shown = {}

        def progress(state):
            for identifier, path in (("latest_checkpoint", state.latest_checkpoint),
                                     ("best_checkpoint", state.best_checkpoint)):
                if path and shown.get(identifier) != str(path):
                    response.publish(identifier, path)
                    shown[identifier] = str(path)
                    last[0] = 0.0  # show a new checkpoint at once
            now = time.monotonic()
            if now - last[0] >= PROGRESS_INTERVAL:
                last[0] = now
                response.update_status(state.message, min(99, 2 + int(97 * state.fraction)))
        return progress


def find_session(outdir):
    """The session folder a previous delivery of this job left, if it saved any checkpoint."""
    checkpoints = sorted(outdir.glob("*/checkpoints/ckpt.*.pth"))
    return checkpoints[0].parent.parent if checkpoints else None
