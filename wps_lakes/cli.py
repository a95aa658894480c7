"""The ``wps-lakes`` command: run the service, and run the library without a server.

Service:  start, stop, status, restart, jobs, worker
Library:  scene, train, detect, split, evaluate  (the role of thelper's command line)
"""
import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

from .__version__ import __version__

# ---------------------------------------------------------------------------------------------
# service commands


def service_home():
    home = Path(os.environ.get("WPS_LAKES_HOME") or Path.home() / ".local/share/wps-lakes")
    os.environ["WPS_LAKES_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    return home


def pid_file():
    return service_home() / "gunicorn.pid"


def running_pid():
    """The pid of the running server, or None (a stale pid file is removed)."""
    path = pid_file()
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError):
        path.unlink(missing_ok=True)
        return None
    except PermissionError:
        return pid


def write_cli_config(args):
    """The config generated from command-line options (between default.cfg and -c files)."""
    host = args.hostname or ("localhost" if args.bind_host in ("0.0.0.0", "127.0.0.1", "::") else args.bind_host)
    base = f"http://{host}:{args.port}"
    lines = ["[server]", f"url = {base}/wps", f"outputurl = {args.outputurl or base + '/outputs'}"]
    for option in ("outputpath", "workdir", "parallelprocesses", "maxprocesses"):
        value = getattr(args, option)
        if value is not None:
            lines.append(f"{option} = {value}")
    lines.append("[logging]")
    if args.log_level:
        lines.append(f"level = {args.log_level}")
    if args.database:
        lines.append(f"database = {args.database}")
    path = service_home() / "cli.cfg"
    path.write_text("\n".join(lines) + "\n")
    return path


def capabilities_url(args):
    host = "127.0.0.1" if args.bind_host in ("0.0.0.0", "::") else args.bind_host
    return f"http://{host}:{args.port}/wps?service=WPS&request=GetCapabilities"


def wait_until_up(url, timeout, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.3)
    return False


def cmd_start(args):
    pid = running_pid()
    if pid:
        print(f"wps-lakes is already running (pid {pid}); `wps-lakes stop` first.", file=sys.stderr)
        return 1
    cfgfiles = [str(write_cli_config(args))] + [str(Path(c).resolve()) for c in args.config]
    for cfg in cfgfiles:
        if not Path(cfg).is_file():
            print(f"config file not found: {cfg}", file=sys.stderr)
            return 2
    home = service_home()
    command = [
        sys.executable, "-m", "gunicorn",
        "--bind", f"{args.bind_host}:{args.port}",
        "--workers", str(args.workers), "--threads", str(args.threads),
        "--worker-class", "gthread", "--timeout", "120", "--graceful-timeout", "30",
        "--pid", str(pid_file()),
        "--access-logfile", str(home / "access.log"), "--error-logfile", str(home / "gunicorn.log"),
        # No request line (%(r)s) nor referer: the query string is logged (%(q)s) only after the
        # token middleware has cut api_key out of it.
        "--access-logformat", '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s?%(q)s %(H)s" %(s)s %(b)s "%(a)s" %(L)ss',
        f"wps_lakes.wsgi:create_app({cfgfiles!r})",
    ]
    if not args.daemon:
        print(f"wps-lakes {__version__} on http://{args.bind_host}:{args.port}/wps (logs in {home})")
        os.execv(sys.executable, command)
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    if not wait_until_up(capabilities_url(args), timeout=120, proc=proc):
        proc.terminate()
        print(f"wps-lakes did not start; see {home / 'gunicorn.log'}", file=sys.stderr)
        return 1
    print(f"wps-lakes {__version__} started (pid {proc.pid}) on http://{args.bind_host}:{args.port}/wps")
    print(f"state and logs: {home}")
    host = args.hostname or ("localhost" if args.bind_host in ("0.0.0.0", "127.0.0.1", "::") else args.bind_host)
    print(f"jobs in a browser: http://{host}:{args.port}/jobs?f=html")
    inbox = started_inbox(args.config)
    if inbox:
        print(f"inbox: {inbox} (files put there may be given as file:// references)")
    return 0


def started_inbox(extra=()):
    """The first folder of the started service's ``[server] allowedinputpaths`` (by default
    ``$WPS_LAKES_HOME/inbox``), or None when file:// references are off."""
    from .runtime import settings

    try:
        load_started_service_config([str(Path(c).resolve()) for c in extra])
    except SystemExit:
        return None
    folders = settings.inbox_folders()
    return folders[0] if folders else None


def cmd_stop(args):
    pid = running_pid()
    if not pid:
        print("wps-lakes is not running.")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
    pid_file().unlink(missing_ok=True)
    print(f"wps-lakes stopped (pid {pid}).")
    return 0


def cmd_status(args):
    pid = running_pid()
    if not pid:
        print("wps-lakes is not running.")
        return 1
    cfg = service_home() / "cli.cfg"
    url = next((line.split("=", 1)[1].strip() for line in cfg.read_text().splitlines()
                if line.startswith("url")), "?") if cfg.exists() else "?"
    print(f"wps-lakes is running (pid {pid}) at {url}; state in {service_home()}")
    return 0


def cmd_restart(args):
    cmd_stop(args)
    args.daemon = True
    return cmd_start(args)


def add_start_options(parser):
    parser.add_argument("-d", "--daemon", action="store_true", help="run in the background")
    parser.add_argument("--bind-host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    parser.add_argument("--hostname", help="host name in the URLs the service advertises (default localhost)")
    parser.add_argument("-c", "--config", action="append", default=[], metavar="CFG",
                        help="extra PyWPS config file, may repeat (overrides the generated one)")
    parser.add_argument("--outputurl", help="public URL of the outputs (default http://HOST:PORT/outputs)")
    parser.add_argument("--outputpath", help="folder for outputs and status documents")
    parser.add_argument("--workdir", help="folder for job working directories")
    parser.add_argument("--database", help="job database URL (default: sqlite file in WPS_LAKES_HOME)")
    parser.add_argument("--parallelprocesses", type=int, help="jobs running at once (GPU slots)")
    parser.add_argument("--maxprocesses", type=int, help="jobs allowed to wait in the queue")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log level")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker (default 8)")


def load_started_service_config(extra):
    """The configuration the started service uses (default.cfg, cli.cfg, then -c files)."""
    from .runtime import settings
    from .wsgi import config_files

    generated = service_home() / "cli.cfg"
    settings.load_service_config(config_files(([str(generated)] if generated.exists() else []) + list(extra)))


def cmd_jobs(args):
    load_started_service_config(args.config)
    from .jobs import records, store

    if args.action == "list":
        rows = store.list_jobs(limit=args.limit, owner=args.user)
        print(f"{'job id':36}  {'process':8}  {'owner':12}  {'status':9}  {'%':>3}  message")
        for job in rows:
            print(f"{job.uuid:36}  {job.process or '':8}  {job.owner[:12]:12}  {job.status:9}  "
                  f"{int(job.percent):3d}  {job.message[:80]}")
        return 0
    if not args.job:
        print(f"wps-lakes jobs {args.action} needs a job id", file=sys.stderr)
        return 2
    job = store.dismiss(args.job, grace_seconds=args.grace) if args.action == "dismiss" else store.get_job(args.job)
    if job is None:
        print(f"no such job: {args.job}", file=sys.stderr)
        return 1
    record = records.get(job.uuid) or {}
    for field in ("uuid", "process", "owner", "status", "percent", "message", "created", "updated", "pid"):
        print(f"{field:8} {getattr(job, field)}")
    print(f"{'address':8} {record.get('address') or 'unknown'}")
    print(f"{'started':8} {record.get('started') or '-'}")
    for identifier, values in (record.get("inputs") or {}).items():
        for value in values:
            print(f"{'input':8} {identifier} = {value}")
    return 0


def cmd_worker(args):
    """Celery workers: one process per GPU (each sees only its GPU), or one CPU worker."""
    from .wsgi import config_files

    generated = service_home() / "cli.cfg"
    cfgfiles = config_files(([str(generated)] if generated.exists() else []) +
                            [str(Path(c).resolve()) for c in args.config])
    base = [sys.executable, "-m", "wps_lakes.jobs.celery_worker", "--queues", args.queue,
            "--loglevel", args.loglevel] + [arg for cfg in cfgfiles for arg in ("--cfg", cfg)]
    if not args.gpus:
        os.execv(sys.executable, base + ["--concurrency", str(args.concurrency),
                                         "--name", args.name or f"wps-lakes-{args.queue.replace(',', '-')}@%h"])
    procs = []
    for gpu in args.gpus.split(","):
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=gpu.strip())
        name = f"{args.name.split('@')[0]}-gpu{gpu.strip()}@%h" if args.name else f"wps-lakes-gpu{gpu.strip()}@%h"
        procs.append(subprocess.Popen(base + ["--concurrency", "1", "--name", name], env=env))

    def forward(signum, _frame):
        for proc in procs:
            proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return max(proc.wait() for proc in procs)


# ---------------------------------------------------------------------------------------------
# library commands: each handler imports the library lazily, so `wps-lakes --help` stays fast.


def cmd_scene(args):
    from .geodata.synthetic import make_scene

    paths = make_scene(args.outdir, seed=args.seed, size_m=args.size_m, px_size=args.px_size)
    for name, path in paths.items():
        print(f"{name:12} {path}")
    return 0


def cmd_train(args):
    """Train a detector from a session config (thelper new), or resume a session (thelper resume)."""
    from .detector.checkpoints import latest_checkpoint, load_checkpoint
    from .detector.config import default_config, load_config
    from .detector.training import train_session
    from .errors import LakesError

    stop = []

    def request_stop(signum, frame):
        if stop:
            raise KeyboardInterrupt
        stop.append(signum)
        print("stop requested: saving a checkpoint after this iteration (Ctrl-C again to abort)", file=sys.stderr)

    overrides = {"model": args.model, "epochs": args.epochs, "batch_size": args.batch_size,
                 "learning_rate": args.lr, "device": args.device}
    if args.config is None and args.resume is None and not args.raster:
        raise LakesError("give a session config (-c CONFIG), a DEM and hydro layer (--raster, --vector: the default "
                         "config) or a session to resume (--resume CKPT_OR_DIR)")
    config = None
    if args.config is not None:
        config = load_config(args.config, overrides)
    elif args.resume is None:
        config = load_config(default_config(), overrides)
    elif any(v is not None for v in overrides.values()) or args.raster:
        config = load_config(load_checkpoint(latest_checkpoint(args.resume)).get("config") or {}, overrides)
    if args.raster or args.vector:
        if not (args.raster and args.vector):
            raise LakesError("--raster and --vector go together: give both")
        config = config.with_data(args.raster, args.vector)
    if args.outdir is None and args.resume is None:
        raise LakesError("give the output folder (-d OUTDIR)")
    init = args.init_checkpoint
    if init is None and args.resume is None and not args.from_scratch:
        from .detector.pretrained import default_init_checkpoint

        init = default_init_checkpoint(config)
        if init is not None:
            print(f"fine-tuning the bundled model {init.name} (--from-scratch to start from scratch)")
    previous = signal.signal(signal.SIGINT, request_stop)
    try:
        result = train_session(config, args.outdir, resume=args.resume, init_checkpoint=init,
                               should_stop=lambda: bool(stop), log=print)
    finally:
        signal.signal(signal.SIGINT, previous)
    print(f"session:         {result.session_dir}")
    print(f"best checkpoint: {result.best_checkpoint} ({result.monitor} = {result.best_value})")
    print(f"last checkpoint: {result.last_checkpoint}")
    print(f"metrics:         {result.metrics_path}")
    print(f"curves:          {result.curves_path}")
    print(f"summary:         {result.summary()}")
    if result.stopped:
        print(f"stopped early; continue with: wps-lakes train --resume {result.session_dir}")
    return 0


def cmd_detect(args):
    """Lake boxes over a whole region from a checkpoint: GeoJSON and a PNG quicklook."""
    from .detector.inference import detect, write_detections
    from .geodata import read_vector

    water = read_vector(args.vector)  # once, for the tiles and for the quicklook

    def progress(done, total):
        print(f"\rtiles {done}/{total}", end="", file=sys.stderr, flush=True)

    try:
        found = detect(args.checkpoint, args.raster, water, score_threshold=args.score_threshold,
                       tile_size=args.tile_size, tile_overlap=args.tile_overlap, batch_size=args.batch_size,
                       device=args.device, progress=progress)
    finally:
        print(file=sys.stderr)  # end the progress line, also before an error message
    paths = write_detections(found, args.output, rasters=args.raster, vector=water, crs=args.crs)
    stats = found.attrs["stats"]
    print(f"{len(found)} lake(s) from {stats['tiles']} tile(s) in {stats['total_s']:.1f} s "
          f"(model {stats['forward_s']:.1f} s on {stats['device']}; score threshold {stats['score_threshold']:g}"
          f"{'' if args.score_threshold is not None else ', the checkpoint default'})")
    for name, path in paths.items():
        print(f"{name:11} {path}")
    return 0


def cmd_split(args):
    """Split waterbodies into lakes and rivers, from detections or from a checkpoint (detect first)."""
    from .hydro import split_to_files

    results = []
    paths = split_to_files(args.vector, args.outdir, detections=args.detections, checkpoint=args.checkpoint,
                           rasters=args.raster, method=args.method, score_threshold=args.score_threshold,
                           crs=args.crs, device=args.device, on_result=results.append)
    print(f"split: {results[0].summary()}")
    for name, path in paths.items():
        print(f"{name:20} {path}")
    return 0


def cmd_models(args):
    """The bundled model(s) (the default checkpoint) and the zoo's model types."""
    from .detector.pretrained import bundled_models
    from .detector.zoo import model_names

    print("bundled (the default of detect, and the start of train):")
    for model in bundled_models():
        test = (model["metrics"] or {}).get("test") or {}
        scores = ", ".join(f"{name} AP@0.5 {s['ap']:.3f} F1 {s['f1']:.3f}" for name, s in test.items())
        print(f"  {model['name']:28} {model['model_type']} ({model['size_mb']} MB, trained {model['trained']})")
        print(f"  {'':28} {model['path']}")
        if scores:
            print(f"  {'':28} test scenes: {scores}")
    if not bundled_models():
        print("  (none in this installation)")
    print("zoo (model types for train):")
    for name in model_names():
        print(f"  {name}")
    return 0


def cmd_evaluate(args):
    """Score detections and/or a split against a hydro layer with true TYPECE; table and JSON."""
    import json

    from .errors import LakesError
    from .geodata import read_vector
    from .hydro import evaluate_detections, evaluate_split, format_table

    figures = {}
    if args.detections is None and args.split is None:
        raise LakesError("give something to evaluate: --detections DETECTIONS.geojson and/or --split OUTDIR")
    truth = read_vector(args.truth, require_typece=True)
    if args.detections is not None:
        figures["detections"] = evaluate_detections(read_vector(args.detections, srs=truth.crs), truth,
                                                    iou_threshold=args.iou_threshold,
                                                    score_threshold=args.score_threshold)
    if args.split is not None:
        split = Path(args.split)
        hydro = read_vector(split / "hydro.geojson" if split.is_dir() else split, srs=truth.crs)
        figures["split"] = evaluate_split(hydro, truth)
    for section, values in figures.items():
        print(format_table(values, title=section))
    if args.output:
        Path(args.output).write_text(json.dumps(figures, indent=2))
        print(f"figures written to {args.output}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="wps-lakes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"wps-lakes {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    start = commands.add_parser("start", help="start the WPS service under gunicorn")
    add_start_options(start)
    start.set_defaults(func=cmd_start)
    commands.add_parser("stop", help="stop the background service").set_defaults(func=cmd_stop)
    commands.add_parser("status", help="is the background service running").set_defaults(func=cmd_status)
    restart = commands.add_parser("restart", help="stop, then start in the background")
    add_start_options(restart)
    restart.set_defaults(func=cmd_restart)

    jobs = commands.add_parser("jobs", help="list, show (with the audit record) or dismiss the service's jobs "
                                            "(operators: every user's)")
    jobs.add_argument("action", choices=["list", "show", "dismiss"])
    jobs.add_argument("job", nargs="?", help="job id (show, dismiss)")
    jobs.add_argument("-c", "--config", action="append", default=[], metavar="CFG",
                      help="the service's extra config files, as given to start")
    jobs.add_argument("--limit", type=int, default=50, help="newest jobs listed (default 50)")
    jobs.add_argument("--user", help="list only this user's jobs (default: every user's)")
    jobs.add_argument("--grace", type=float, default=10.0,
                      help="seconds a running job has to stop by itself before it is ended (default 10)")
    jobs.set_defaults(func=cmd_jobs)

    worker = commands.add_parser("worker", help="start Celery workers for [processing] mode = celery")
    worker.add_argument("--queue", default="gpu", help="queue(s) to serve, comma-separated (default gpu)")
    worker.add_argument("--gpus", help="GPU indices, one worker process per GPU, e.g. 0,1")
    worker.add_argument("--concurrency", type=int, default=1, help="jobs at once without --gpus (default 1)")
    worker.add_argument("-c", "--config", action="append", default=[], metavar="CFG",
                        help="config file with [celery], the shared paths and the job database")
    worker.add_argument("--name", help="Celery node name, e.g. gpu-node-7@%%h (default from the queues)")
    worker.add_argument("--loglevel", default="INFO")
    worker.set_defaults(func=cmd_worker)

    scene = commands.add_parser("scene", help="write a synthetic scene: dem.tif, hydro.geojson, "
                                              "waterbodies.geojson, truth.json")
    scene.add_argument("outdir", help="folder to write into (created if needed)")
    scene.add_argument("--seed", type=int, default=0, help="random seed; a seed always gives the same scene")
    scene.add_argument("--size-m", type=float, default=6000.0, help="side of the square scene in metres")
    scene.add_argument("--px-size", type=float, default=3.0, help="DEM pixel size in metres (default 3)")
    scene.set_defaults(func=cmd_scene)
    train = commands.add_parser("train", help="train a lake detector from a thelper-style session config")
    train.add_argument("-c", "--config", help="session config (JSON; default with --raster/--vector: "
                       "wps_lakes/configs/lakes_default.json); with --resume, replaces the session's own")
    train.add_argument("-d", "--outdir", help="folder for the session (its folder is OUTDIR/<config name>)")
    train.add_argument("--resume", metavar="CKPT_OR_DIR", help="continue a session from a checkpoint or its folder")
    train.add_argument("--init-checkpoint", metavar="CKPT", help="start from this checkpoint's model weights "
                       "(default: the bundled model when the config's model and input fit it)")
    train.add_argument("--from-scratch", action="store_true", help="do not start from the bundled model")
    train.add_argument("--raster", action="append", metavar="TIF", help="DEM GeoTIFF replacing every dataset's "
                       "raster_path (repeat for adjacent tiles; needs --vector)")
    train.add_argument("--vector", metavar="PATH", help="hydro layer replacing every dataset's vector_path")
    train.add_argument("--model", help="model type, e.g. fcos_mobilenet_v3_large_fpn")
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--lr", type=float, help="learning rate")
    train.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    train.set_defaults(func=cmd_train)

    detect = commands.add_parser("detect", help="find the lakes of a region with a trained detector")
    detect.add_argument("--checkpoint", metavar="CKPT", help="checkpoint (ours or thelper's; default: the bundled "
                        "model, see `wps-lakes models`)")
    detect.add_argument("--raster", action="append", required=True, metavar="DEM.tif",
                        help="DEM GeoTIFF (repeat for adjacent tiles)")
    detect.add_argument("--vector", required=True, metavar="HYDRO", help="hydro layer (waterbody polygons)")
    detect.add_argument("-o", "--output", required=True, metavar="DETECTIONS.geojson",
                        help="GeoJSON to write; the PNG quicklook goes beside it")
    detect.add_argument("--score-threshold", type=float, help="lowest confidence kept (default: the checkpoint's "
                        "calibrated threshold, best F1 on its validation; 0.5 when it has none)")
    detect.add_argument("--tile-size", type=int, default=500, help="tile side in pixels (default 500)")
    detect.add_argument("--tile-overlap", type=int, default=100, help="tile overlap in pixels (default 100)")
    detect.add_argument("--batch-size", type=int, help="tiles per model call (default: 1 on CPU, 8 on GPU)")
    detect.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    detect.add_argument("--crs", default="EPSG:4326", help="CRS of the GeoJSON (default EPSG:4326, RFC 7946; "
                        "another one is written with a crs member)")
    detect.set_defaults(func=cmd_detect)

    split = commands.add_parser("split", help="split waterbodies into lakes and rivers")
    split.add_argument("--vector", required=True, metavar="WATERBODIES", help="waterbody polygons to split")
    split.add_argument("--detections", metavar="DETECTIONS.geojson", help="lake boxes from `wps-lakes detect`")
    split.add_argument("--checkpoint", metavar="CKPT", help="detect the lakes first with this checkpoint")
    split.add_argument("--raster", action="append", metavar="DEM.tif",
                       help="DEM GeoTIFF: level water surfaces for the refined method (repeat for adjacent tiles)")
    split.add_argument("--method", choices=["refined", "boxes"], default="refined",
                       help="refined (default) or boxes (the original cut, for comparison)")
    split.add_argument("-o", "--outdir", required=True, help="folder for lakes/rivers/hydro.geojson and split.png")
    split.add_argument("--score-threshold", type=float, help="with --checkpoint (default: the checkpoint's "
                       "calibrated threshold; 0.5 when it has none)")
    split.add_argument("--device", default="auto", help="with --checkpoint: auto, cpu, cuda or cuda:N")
    split.add_argument("--crs", default="EPSG:4326", help="CRS of the GeoJSON files (default EPSG:4326)")
    split.set_defaults(func=cmd_split)

    models = commands.add_parser("models", help="list the bundled model and the model types training can use")
    models.set_defaults(func=cmd_models)

    evaluate = commands.add_parser("evaluate", help="score detections and splits against true lakes and rivers")
    evaluate.add_argument("--truth", required=True, metavar="HYDRO", help="hydro layer with the true TYPECE")
    evaluate.add_argument("--detections", metavar="DETECTIONS.geojson", help="boxes to score (VOC AP, P, R)")
    evaluate.add_argument("--split", metavar="OUTDIR", help="a split's folder (or its hydro.geojson) to score")
    evaluate.add_argument("--iou-threshold", type=float, default=0.5, help="box match IoU (default 0.5)")
    evaluate.add_argument("--score-threshold", type=float, default=0.5,
                          help="confidence for precision and recall (default 0.5)")
    evaluate.add_argument("-o", "--output", metavar="FIGURES.json", help="write the figures as JSON")
    evaluate.set_defaults(func=cmd_evaluate)
    return parser


def main(argv=None):
    from .errors import LakesError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except LakesError as exc:  # the library's message says what to fix: no traceback
        print(f"wps-lakes {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
