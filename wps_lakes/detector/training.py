"""The trainer: a thelper-style session from a config, with resume, progress and stop requests.

Session folder ``<outdir>/<name>/`` (thelper's layout)::

    checkpoints/ckpt.NNNN.<host>-<YYYYmmdd-HHMMSS>.pth   every save_freq epochs, the last one, and on stop
    checkpoints/ckpt.best.pth                            best epoch on the monitored metric
    logs/trainer.log                                     the session log (config warnings included)
    logs/metrics.jsonl                                   one JSON object per epoch
    logs/curves.png                                      training loss and validation scores per epoch
    output/<name>/train/, output/<name>/valid/           TensorBoard event files
    config.latest.json                                   the validated config, defaults filled

Determinism: the model is initialised from the seed, each epoch reseeds torch with seed + epoch
(as thelper does) and draws its sample order and augmentations from (seed, epoch), and a checkpoint
written mid-epoch keeps the RNG state and its position in the epoch; so a resumed session follows
the same path as an uninterrupted one.
"""
import io
import json
import math
import platform
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..__version__ import __version__
from ..errors import LakesError
from ..files import write_atomic
from ..limits import DEFAULT_LIMITS
from .checkpoints import (
    TASK,
    checkpoint_filename,
    checkpoint_score_threshold,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    state_dict_of,
)
from .config import METRICS, SessionConfig, load_config
from .datasets import build_datasets, collate
from .metrics import DetectionScores
from .zoo import build_model, load_weights, qualified_name, resolve_model


@dataclass
class TrainProgress:
    """What progress() receives, each iteration and at the end of each epoch."""

    epoch: int                   # current epoch, 0-based
    epochs: int
    iteration: int               # iterations done in the whole session
    fraction: float              # 0..1 of the whole training
    loss: float | None           # last iteration's training loss
    metrics: dict                # the latest finished epoch's record ({} before the first)
    latest_checkpoint: str | None  # newest checkpoint written
    best_checkpoint: str | None
    message: str


@dataclass
class TrainResult:
    session_dir: Path
    best_checkpoint: Path | None
    last_checkpoint: Path | None
    metrics_path: Path           # logs/metrics.jsonl
    curves_path: Path | None     # logs/curves.png
    log_path: Path               # logs/trainer.log
    tensorboard_dir: Path
    epochs_done: int             # epochs completed in the session (resumed ones included)
    stopped: bool                # ended early by should_stop() or the time limit
    monitor: str
    best_value: float | None
    history: list = field(default_factory=list)   # the epoch records of metrics.jsonl
    stop_reason: str | None = None   # why it ended early ("stop requested", the time limit), None if it did not
    test: dict = field(default_factory=dict)   # {dataset: whole-region scores} of the test_split datasets

    def summary(self):
        """One line: epochs, best validation score, and the whole-region test scores."""
        text = f"{self.epochs_done} epoch(s), best {self.monitor} {self.best_value or 0:.4f}"
        for name, scores in self.test.items():
            text += (f"; test {name}: AP@0.5 {scores['ap']:.3f}, F1 {scores['f1']:.3f} at score threshold "
                     f"{scores['score_threshold']:g} ({scores['tp']}/{scores['n_gt']} lakes, {scores['fp']} false)")
        return text


def resolve_device(spec):
    """torch.device for ``auto|cpu|cuda|cuda:N``; LakesError when CUDA is asked for and absent."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise LakesError(f"device {spec!r} asked for, but this machine has no usable CUDA GPU; use auto or cpu")
    index = int(spec.split(":")[1]) if ":" in spec else 0
    if index >= torch.cuda.device_count():
        raise LakesError(f"device {spec!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    return torch.device("cuda", index)


class _Log:
    """Lines to logs/trainer.log and to the caller's ``log`` callable."""

    def __init__(self, path, sink):
        self.path, self.sink = path, sink

    def __call__(self, message):
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
        with open(self.path, "a") as f:
            f.write(line + "\n")
        if self.sink is not None:
            self.sink(message)


class _EpochSampler(torch.utils.data.Sampler):
    """Sample order of one epoch from (seed, epoch), starting after the ``start`` first batches' samples."""

    def __init__(self, size, seed, shuffle):
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch, start=0):
        self.epoch, self.start = epoch, start

    def __iter__(self):
        order = np.random.default_rng((self.seed, self.epoch)).permutation(self.size) if self.shuffle \
            else np.arange(self.size)
        return iter(order[self.start:].tolist())

    def __len__(self):
        return self.size - self.start


def _seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state():
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state):
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _plot_curves(history, monitor, path):
    """PNG of the training loss and validation scores per epoch (written atomically)."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(10, 4))
    ax_loss, ax_score = fig.subplots(1, 2)
    ax_loss.plot(epochs, [h["train_loss"] for h in history], marker=".")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss")
    for key in dict.fromkeys([monitor, "precision", "recall"]):
        if key != "loss" and all(key in h for h in history):
            ax_score.plot(epochs, [h[key] for h in history], marker=".", label=key)
    ax_score.set(xlabel="epoch", ylabel="validation", ylim=(0, 1.02), title="validation scores")
    ax_score.legend(loc="lower right")
    for ax in (ax_loss, ax_score):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=80)
    write_atomic(path, png.getvalue())


def _make_optimizer(config, model):
    optimization = config.trainer["optimization"]
    spec = optimization["optimizer"]
    params = [p for p in model.parameters() if p.requires_grad]
    kwargs = dict(spec["params"])
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    optimizer_class = getattr(torch.optim, spec["type"].rsplit(".", 1)[1])
    try:
        optimizer = optimizer_class(params, **kwargs)
    except (TypeError, ValueError) as exc:
        raise LakesError(f"trainer.optimization.optimizer: {exc}") from None
    scheduler = None
    if optimization["scheduler"]:
        sched = optimization["scheduler"]
        scheduler_class = getattr(torch.optim.lr_scheduler, sched["type"].rsplit(".", 1)[1])
        kwargs = dict(sched["params"])
        if scheduler_class is torch.optim.lr_scheduler.ReduceLROnPlateau:
            kwargs["mode"] = "min" if config.trainer["monitor"] == "loss" else "max"
        try:
            scheduler = scheduler_class(optimizer, **kwargs)
        except (TypeError, ValueError) as exc:
            raise LakesError(f"trainer.optimization.scheduler: {exc}") from None
    return optimizer, scheduler


@torch.no_grad()
def evaluate(model, loader, metrics, device, amp=False, calibration=None):
    """Validation scores of ``model`` on ``loader`` for the config's metrics: {name: value}.

    ``calibration``: a dict that receives the score threshold of best F1 at IoU 0.5 (``best_f1``)."""
    model.eval()
    scorers = {name: DetectionScores(m["params"]["iou_threshold"], m["params"].get("score_threshold", 0.5),
                                     m["params"].get("method", "all-points")) for name, m in metrics.items()}
    if calibration is not None:
        scorers[_CALIBRATION] = DetectionScores(0.5)
    for images, targets in loader:
        with torch.autocast(device.type, enabled=amp):
            outputs = model([image.to(device) for image in images])
        for output, target in zip(outputs, targets, strict=True):
            lake = output["labels"] == 1
            boxes, scores = output["boxes"][lake].float().cpu().numpy(), output["scores"][lake].float().cpu().numpy()
            for scorer in scorers.values():
                scorer.add(boxes, scores, target["boxes"].numpy())
    out = {}
    for name, metric in metrics.items():
        scores = scorers[name].compute()
        out[name] = scores[METRICS[metric["type"]]]
    if calibration is not None:
        calibration.update(scorers[_CALIBRATION].best_f1())
    return out


_CALIBRATION = object()   # the scorer key of the threshold calibration (no config metric can name it)


def _new_epoch_stats():
    return {"loss_sum": 0.0, "loss_count": 0, "parts": {}, "wait_s": 0.0, "step_s": 0.0, "images": 0}


class _Session:
    """The state a checkpoint saves and a resume restores, and the session's files."""

    def __init__(self, config, session_dir, log):
        self.config, self.log = config, log
        self.trainer = config.trainer
        self.monitor = self.trainer["monitor"]
        self.maximize = self.monitor != "loss"
        self.ckpt_dir = session_dir / "checkpoints"
        self.metrics_file = session_dir / "logs" / "metrics.jsonl"
        self.curves_png = session_dir / "logs" / "curves.png"
        self.tb_dir = session_dir / "output" / config.name
        self.epoch, self.iteration, self.epoch_iter = 0, 0, 0
        self.epoch_stats = _new_epoch_stats()
        self.outputs, self.history = {}, []
        self.monitor_best, self.monitor_best_epoch = (-math.inf if self.maximize else math.inf), -1
        self.last_ckpt, self.best_ckpt = None, None
        self.calibration = None   # best-F1 threshold on the latest validation (the checkpoint's default)
        self.started = time.monotonic()
        self.elapsed_before = 0.0

    def checkpoint(self, model, optimizer, scheduler, scaler, complete):
        """Write ckpt.NNNN.<host>-<stamp>.pth; ``complete``: written after the epoch's validation."""
        data = next(iter(self.config.datasets.values()))["params"]
        ckpt = {
            "name": self.config.name, "epoch": self.epoch, "iter": self.iteration,
            "source": f"{platform.node() or 'host'}-{time.strftime('%Y%m%d-%H%M%S')}",
            "version": f"wps_lakes-{__version__}", "task": TASK, "outputs": self.outputs,
            "model": model.state_dict(), "model_type": qualified_name(resolve_model(self.config.model["type"])),
            "model_params": self.config.model["params"],
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict() if scheduler else None,
            "monitor_best": self.monitor_best, "monitor_best_epoch": self.monitor_best_epoch,
            "config": self.config.to_dict(),
            "input": {"scaling": data["scaling"], "px_size": data["px_size"], "srs": data["srs_target"]},
            **({"score_threshold": self.calibration["score_threshold"], "calibration": dict(self.calibration)}
               if self.calibration else {}),
            "resume": {"complete": complete, "epoch_iter": self.epoch_iter, "rng": _rng_state(),
                       "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                       "epoch_stats": self.epoch_stats, "history": self.history,
                       "elapsed_s": self.elapsed()},
        }
        path = save_checkpoint(self.ckpt_dir / checkpoint_filename(self.epoch), ckpt)
        self.last_ckpt = path
        return path, ckpt

    def elapsed(self):
        return self.elapsed_before + time.monotonic() - self.started

    def restore(self, ckpt, model, optimizer, scheduler, scaler):
        model.load_state_dict(state_dict_of(ckpt))
        if ckpt.get("optimizer"):
            optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None and ckpt.get("scheduler"):
            scheduler.load_state_dict(ckpt["scheduler"])
        self.outputs = ckpt.get("outputs") or {}
        self.calibration = ckpt.get("calibration") if isinstance(ckpt.get("calibration"), dict) else None
        if ckpt.get("monitor_best") is not None:
            self.monitor_best = float(ckpt["monitor_best"])
            self.monitor_best_epoch = int(ckpt.get("monitor_best_epoch", -1))
        self.iteration = int(ckpt.get("iter") or 0)
        state = ckpt.get("resume") or {"complete": True}
        self.history = list(state.get("history") or [])
        self.elapsed_before = float(state.get("elapsed_s") or 0.0)
        if scaler.is_enabled() and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        if state["complete"]:
            self.epoch = int(ckpt.get("epoch") or 0) + 1
            return None
        self.epoch, self.epoch_iter = int(ckpt["epoch"]), int(state["epoch_iter"])
        self.epoch_stats = state["epoch_stats"]
        return state["rng"]


def _session_dir(config, outdir, resume_path):
    if outdir is None:
        if resume_path is None:
            raise LakesError("give an output folder for the session")
        folder = resume_path.parent
        return folder.parent if folder.name == "checkpoints" else folder
    return Path(outdir) / config.name


def train_session(config, outdir, resume=None, init_checkpoint=None, progress=None, should_stop=None, log=None,
                  limits=DEFAULT_LIMITS):
    """Train a detector as the session ``config`` says; checkpoints go to ``<outdir>/<name>/checkpoints``.

    ``config``: SessionConfig, dict or JSON path (None with ``resume``: the checkpoint's config).
    ``resume``: a checkpoint file or session folder to continue (full state; ``outdir`` None = its
    session folder). ``init_checkpoint``: start from a checkpoint's model weights only (fine-tuning).
    ``progress(TrainProgress)`` is called every iteration; ``should_stop()`` is polled every iteration
    and, when true, a checkpoint is saved and the session returns with ``stopped=True``.
    ``log``: a callable receiving each log line (they also go to logs/trainer.log).
    """
    resume_ckpt = resume_path = None
    if resume is not None:
        resume_path = latest_checkpoint(resume)
        resume_ckpt = load_checkpoint(resume_path)
        if config is None:
            if not isinstance(resume_ckpt.get("config"), dict):
                raise LakesError("the checkpoint holds no session config; give one to resume with")
            config = resume_ckpt["config"]
    if not isinstance(config, SessionConfig):
        config = load_config(config)
    trainer = config.trainer
    limits.check("max_epochs", trainer["epochs"], "the number of epochs")
    session_dir = _session_dir(config, outdir, resume_path)
    if resume is None and (session_dir / "checkpoints").is_dir() and any((session_dir / "checkpoints").iterdir()):
        if not config.data["overwrite"]:
            raise LakesError(f"session folder {config.name!r} already holds checkpoints; resume it, choose "
                             "another name or output folder, or set \"overwrite\": true")
        for sub in ("checkpoints", "logs", "output"):
            shutil.rmtree(session_dir / sub, ignore_errors=True)
    for sub in ("checkpoints", "logs"):
        (session_dir / sub).mkdir(parents=True, exist_ok=True)
    say = _Log(session_dir / "logs" / "trainer.log", log)
    write_atomic(session_dir / "config.latest.json", json.dumps(config.to_dict(), indent=2))
    for warning in config.warnings:
        say(f"config: {warning}")

    previous_threads = torch.get_num_threads()
    if trainer["threads"]:
        torch.set_num_threads(trainer["threads"])
    try:
        return _train(config, session_dir, say, resume_path, resume_ckpt, init_checkpoint, progress, should_stop,
                      limits)
    finally:
        torch.set_num_threads(previous_threads)


def _train(config, session_dir, say, resume_path, resume_ckpt, init_checkpoint, progress, should_stop, limits):
    """The session proper: model, data, loop; returns the TrainResult."""
    trainer = config.trainer
    seed = config.loaders["seed"]
    _seed_everything(seed)
    device = resolve_device(trainer["device"])
    amp = device.type == "cuda" if trainer["amp"] == "auto" else bool(trainer["amp"] and device.type == "cuda")
    torch.backends.cudnn.benchmark = False
    say(f"session {config.name} in {session_dir}; device {device}{' with mixed precision' if amp else ''}; "
        f"seed {seed}")

    model_spec = config.model
    params = dict(model_spec["params"])
    if init_checkpoint is not None or resume_ckpt is not None:
        model = build_model(model_spec["type"], params, with_weights=False)
    else:
        model = build_model(model_spec["type"], params)
    if init_checkpoint is not None and resume_ckpt is None:
        loaded = load_weights(model, init_checkpoint)
        say(f"model weights from {Path(init_checkpoint).name}: {loaded} tensors")
    model.to(device)
    optimizer, scheduler = _make_optimizer(config, model)
    datasets = build_datasets(config, say, limits)  # after the model: config mistakes show before data work
    scaler = torch.amp.GradScaler("cuda", enabled=amp)

    session = _Session(config, session_dir, say)
    rng_state = None
    if resume_ckpt is not None:
        rng_state = session.restore(resume_ckpt, model, optimizer, scheduler, scaler)
        say(f"resumed from {resume_path.name}: epoch {session.epoch}, iteration {session.iteration}")
        if session.history:
            write_atomic(session.metrics_file, "".join(json.dumps(h) + "\n" for h in session.history))
        best, source_best = session.ckpt_dir / "ckpt.best.pth", resume_path.parent / "ckpt.best.pth"
        if not best.is_file() and source_best.is_file():
            shutil.copy2(source_best, best)  # resumed into a new folder: the best so far comes along
        session.best_ckpt = best if best.is_file() else None
        if session.best_ckpt is None:  # none to carry: the next validation sets one in this folder
            session.monitor_best, session.monitor_best_epoch = (-math.inf if session.maximize else math.inf), -1
        session.last_ckpt = resume_path

    loaders = config.loaders
    workers = loaders["workers"]
    train_set, valid_set = datasets["train"], datasets["valid"]
    sampler = _EpochSampler(len(train_set), seed, loaders["shuffle"])
    loader_args = {"num_workers": workers, "collate_fn": collate, "pin_memory": device.type == "cuda"}
    if workers:
        loader_args["multiprocessing_context"] = "fork" if "fork" in torch.multiprocessing.get_all_start_methods() \
            else None
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=loaders["batch_size"], sampler=sampler,
                                               **loader_args)
    valid_loader = torch.utils.data.DataLoader(valid_set, batch_size=loaders["valid_batch_size"], shuffle=False,
                                               **loader_args)
    batches_per_epoch = math.ceil(len(train_set) / loaders["batch_size"])
    if trainer["max_iters_per_epoch"]:
        batches_per_epoch = min(batches_per_epoch, trainer["max_iters_per_epoch"])
    epochs = trainer["epochs"]
    total_iters = epochs * batches_per_epoch

    from torch.utils.tensorboard import SummaryWriter
    writers = {split: SummaryWriter(str(session.tb_dir / split)) for split in ("train", "valid")}
    stop_reason = None
    last_loss = None

    def report(message):
        if progress is not None:
            done = session.epoch * batches_per_epoch + session.epoch_iter
            progress(TrainProgress(session.epoch, epochs, session.iteration, min(1.0, done / total_iters),
                                   last_loss, session.history[-1] if session.history else {},
                                   str(session.last_ckpt) if session.last_ckpt else None,
                                   str(session.best_ckpt) if session.best_ckpt else None, message))

    try:
        while session.epoch < epochs and stop_reason is None:
            epoch = session.epoch
            if rng_state is None:
                torch.manual_seed(seed + epoch)
                session.epoch_stats = _new_epoch_stats()
            else:  # resuming mid-epoch: continue exactly where the checkpoint left off
                _set_rng_state(rng_state)
                rng_state = None
            stats = session.epoch_stats
            train_set.set_epoch(epoch)
            sampler.set_epoch(epoch, session.epoch_iter * loaders["batch_size"])
            model.train()
            batches = iter(train_loader)
            while session.epoch_iter < batches_per_epoch and stop_reason is None:
                tick = time.perf_counter()
                images, targets = next(batches)
                fetched = time.perf_counter()
                images = [image.to(device, non_blocking=True) for image in images]
                targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
                # warmup scales the scheduled learning rate for this step only
                scheduled = [group["lr"] for group in optimizer.param_groups]
                if session.iteration < trainer["warmup_iters"]:
                    factor = 0.001 + 0.999 * session.iteration / trainer["warmup_iters"]
                    for group, lr in zip(optimizer.param_groups, scheduled, strict=True):
                        group["lr"] = lr * factor
                with torch.autocast(device.type, enabled=amp):
                    losses = model(images, targets)
                    loss = sum(losses.values())
                if not torch.isfinite(loss):
                    raise LakesError(f"training diverged (loss {loss.item()}) at epoch {epoch}, iteration "
                                     f"{session.iteration}; lower the learning rate or set trainer.warmup_iters")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                for group, lr in zip(optimizer.param_groups, scheduled, strict=True):
                    group["lr"] = lr
                last_loss = float(loss.item())
                stats["loss_sum"] += last_loss
                stats["loss_count"] += 1
                for key, value in losses.items():
                    stats["parts"][key] = stats["parts"].get(key, 0.0) + float(value.item())
                stats["wait_s"] += fetched - tick
                stats["step_s"] += time.perf_counter() - tick
                stats["images"] += len(images)
                writers["train"].add_scalar("iter/loss", last_loss, session.iteration)
                session.iteration += 1
                session.epoch_iter += 1
                report(f"epoch {epoch + 1}/{epochs}, iteration {session.epoch_iter}/{batches_per_epoch}, "
                       f"loss {last_loss:.4f}")
                if should_stop is not None and should_stop():
                    stop_reason = "stop requested"
                elif session.elapsed() > limits.max_train_seconds:
                    stop_reason = f"time limit max_train_seconds = {limits.max_train_seconds:,} s reached"
            del batches  # ends the workers of an unfinished epoch
            if session.epoch_iter < batches_per_epoch:  # stopped mid-epoch
                path, _ = session.checkpoint(model, optimizer, scheduler, scaler, complete=False)
                say(f"{stop_reason}: checkpoint {path.name} at epoch {epoch}, iteration {session.iteration}")
                report(f"{stop_reason}; checkpoint {path.name} saved")
                break
            _finish_epoch(session, model, optimizer, scheduler, scaler, valid_loader, device, amp, writers,
                          force_save=stop_reason is not None)
            report(_epoch_message(session))
            session.epoch += 1
            session.epoch_iter = 0
    finally:
        for writer in writers.values():
            writer.close()
    say(f"training ended: {len(session.history)} epoch(s) recorded, best {session.monitor} = "
        f"{session.monitor_best if session.monitor_best_epoch >= 0 else 'n/a'} at epoch {session.monitor_best_epoch}")
    test = {}
    final = session.best_ckpt or session.last_ckpt
    if stop_reason is None and final is not None and config.loaders["test_split"]:
        report("scoring the test datasets (whole-region detect)")
        test = score_test_datasets(config, final, device, say, limits)
        with open(session.metrics_file, "a") as f:
            f.write(json.dumps({"test": test, "checkpoint": Path(final).name}) + "\n")
    return TrainResult(session_dir, session.best_ckpt, session.last_ckpt, session.metrics_file,
                       session.curves_png if session.curves_png.is_file() else None,
                       session_dir / "logs" / "trainer.log", session.tb_dir, session.epoch, stop_reason is not None,
                       session.monitor, session.monitor_best if session.monitor_best_epoch >= 0 else None,
                       list(session.history), stop_reason, test)


def test_scene_scores(checkpoint, rasters, hydro, device="cpu", score_threshold=None, limits=DEFAULT_LIMITS):
    """Whole-region scores of ``checkpoint`` on one scene, as users run it: ``detect`` over the whole DEM,
    boxes against the true lakes of ``hydro`` (one box per lake part). AP@0.5 over every box; F1,
    precision and recall at the checkpoint's threshold (or ``score_threshold``)."""
    import shapely

    from ..geodata.vectors import LAKE, TYPECE
    from .inference import detect

    ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    threshold = checkpoint_score_threshold(ckpt) if score_threshold is None else score_threshold
    found = detect(ckpt, rasters, hydro, score_threshold=0.0, device=str(device), limits=limits)
    truth = hydro.to_crs(found.crs) if found.crs is not None else hydro
    lakes = shapely.get_parts(truth.geometry[truth[TYPECE] == LAKE].values)
    scorer = DetectionScores(0.5, threshold)
    scorer.add(shapely.bounds(found.geometry.values).reshape(-1, 4), found["confidence"].to_numpy(),
               shapely.bounds(lakes).reshape(-1, 4))
    scores = scorer.compute()
    kept = scores["tp"] + scores["fp"]
    scores["f1"] = 2 * scores["tp"] / (kept + scores["n_gt"]) if kept + scores["n_gt"] else 0.0
    scores["score_threshold"] = threshold
    scores["detect_s"] = round(found.attrs["stats"]["total_s"], 2)
    scores["forward_s"] = round(found.attrs["stats"]["forward_s"], 2)
    return scores


def score_test_datasets(config, checkpoint, device, say, limits=DEFAULT_LIMITS):
    """``{dataset: scores}`` of ``test_scene_scores`` for each whole dataset of ``loaders.test_split``."""
    from ..geodata import read_vector

    loaders, out = config.loaders, {}
    for name, ratio in loaders["test_split"].items():
        if ratio < 1 or loaders["train_split"].get(name) or loaders["valid_split"].get(name):
            continue
        params = config.datasets[name]["params"]
        rasters = params["raster_path"] if isinstance(params["raster_path"], list) else [params["raster_path"]]
        hydro = read_vector(params["vector_path"], params["srs_target"], require_typece=True, limits=limits)
        out[name] = test_scene_scores(checkpoint, rasters, hydro, device, limits=limits)
        scores = out[name]
        say(f"test {name} (whole-region detect): AP@0.5 {scores['ap']:.4f}, F1 {scores['f1']:.4f}, precision "
            f"{scores['precision']:.4f}, recall {scores['recall']:.4f} at score threshold "
            f"{scores['score_threshold']:g} ({scores['n_gt']} lakes, {scores['n_pred']} boxes)")
    return out


def _epoch_message(session):
    record = session.history[-1]
    scores = ", ".join(f"{k} {record[k]:.4f}" for k in session.config.trainer["metrics"])
    if "best_f1" in record:
        scores += f", best F1 {record['best_f1']:.4f} at score threshold {record['score_threshold']:g}"
    return f"epoch {record['epoch'] + 1}/{session.config.trainer['epochs']} done: loss {record['train_loss']:.4f}, " \
           f"{scores}"


def _finish_epoch(session, model, optimizer, scheduler, scaler, valid_loader, device, amp, writers, force_save):
    """Validate, record, checkpoint and step the scheduler at the end of an epoch."""
    trainer = session.trainer
    epoch = session.epoch
    lr = optimizer.param_groups[0]["lr"]
    stats = session.epoch_stats
    valid_start = time.perf_counter()
    calibration = {}
    scores = evaluate(model, valid_loader, trainer["metrics"], device, amp, calibration)
    session.calibration = {**calibration, "epoch": epoch, "on": "validation windows", "iou_threshold": 0.5}
    count = max(stats["loss_count"], 1)
    record = {"epoch": epoch, "iter": session.iteration, "time_s": round(session.elapsed(), 2), "lr": lr,
              "train_loss": stats["loss_sum"] / count,
              **{f"train_{k}": v / count for k, v in stats["parts"].items()},
              **scores,
              "best_f1": calibration["f1"], "score_threshold": calibration["score_threshold"],
              "data_wait_fraction": stats["wait_s"] / stats["step_s"] if stats["step_s"] else 0.0,
              "train_images_per_s": stats["images"] / stats["step_s"] if stats["step_s"] else 0.0,
              "valid_s": round(time.perf_counter() - valid_start, 2)}
    session.history.append(record)
    session.outputs[epoch] = {"train/loss": record["train_loss"], "train/metrics": {"loss": record["train_loss"]},
                              "valid/metrics": scores}
    value = record["train_loss"] if session.monitor == "loss" else scores[session.monitor]
    improved = value > session.monitor_best if session.maximize else value < session.monitor_best
    if improved:
        session.monitor_best, session.monitor_best_epoch = value, epoch
    if scheduler is not None:
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(value)
        else:
            scheduler.step()
    for key in ("train_loss", *(k for k in record if k.startswith("train_loss_"))):
        writers["train"].add_scalar(f"epoch/{key.removeprefix('train_')}", record[key], epoch)
    for key, val in scores.items():
        writers["valid"].add_scalar(f"epoch/{key}", val, epoch)
    writers["train"].add_scalar("epoch/lr", lr, epoch)
    with open(session.metrics_file, "a") as f:
        f.write(json.dumps(record) + "\n")
    if improved or force_save or epoch % trainer["save_freq"] == 0 or epoch == trainer["epochs"] - 1:
        path, ckpt = session.checkpoint(model, optimizer, scheduler, scaler, complete=True)
        if improved:
            session.best_ckpt = save_checkpoint(session.ckpt_dir / "ckpt.best.pth", ckpt)
    _plot_curves(session.history, session.monitor, session.curves_png)
    session.log(_epoch_message(session) + f" ({record['time_s']:.0f} s, data wait "
                                          f"{100 * record['data_wait_fraction']:.1f}% of a step)")

