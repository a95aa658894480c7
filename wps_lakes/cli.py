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
    return 0


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


def load_service_config(extra):
    """The configuration the started service uses (default.cfg, cli.cfg, then -c files)."""
    from .service.app import load_config
    from .wsgi import config_files

    generated = service_home() / "cli.cfg"
    load_config(config_files(([str(generated)] if generated.exists() else []) + list(extra)))


def cmd_jobs(args):
    load_service_config(args.config)
    from .service import jobs

    if args.action == "list":
        rows = jobs.list_jobs(limit=args.limit)
        print(f"{'job id':36}  {'process':8}  {'status':9}  {'%':>3}  message")
        for job in rows:
            print(f"{job.uuid:36}  {job.process or '':8}  {job.status:9}  {int(job.percent):3d}  {job.message[:80]}")
        return 0
    if not args.job:
        print(f"wps-lakes jobs {args.action} needs a job id", file=sys.stderr)
        return 2
    job = jobs.dismiss(args.job, grace_seconds=args.grace) if args.action == "dismiss" else jobs.get_job(args.job)
    if job is None:
        print(f"no such job: {args.job}", file=sys.stderr)
        return 1
    for field in ("uuid", "process", "status", "percent", "message", "created", "updated", "pid"):
        print(f"{field:8} {getattr(job, field)}")
    return 0


def cmd_worker(args):
    """Celery workers: one process per GPU (each sees only its GPU), or one CPU worker."""
    from .wsgi import config_files

    generated = service_home() / "cli.cfg"
    cfgfiles = config_files(([str(generated)] if generated.exists() else []) +
                            [str(Path(c).resolve()) for c in args.config])
    base = [sys.executable, "-m", "wps_lakes.service.celery_worker", "--queues", args.queue,
            "--loglevel", args.loglevel] + [arg for cfg in cfgfiles for arg in ("--cfg", cfg)]
    if not args.gpus:
        os.execv(sys.executable, base + ["--concurrency", str(args.concurrency),
                                         "--name", f"wps-lakes-{args.queue.replace(',', '-')}@%h"])
    procs = []
    for gpu in args.gpus.split(","):
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=gpu.strip())
        procs.append(subprocess.Popen(base + ["--concurrency", "1", "--name", f"wps-lakes-gpu{gpu.strip()}@%h"],
                                      env=env))

    def forward(signum, _frame):
        for proc in procs:
            proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return max(proc.wait() for proc in procs)


# ---------------------------------------------------------------------------------------------
# library commands: each handler imports the library lazily, so `wps-lakes --help` stays fast.


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

    jobs = commands.add_parser("jobs", help="list, show or dismiss the service's jobs (operators)")
    jobs.add_argument("action", choices=["list", "show", "dismiss"])
    jobs.add_argument("job", nargs="?", help="job id (show, dismiss)")
    jobs.add_argument("-c", "--config", action="append", default=[], metavar="CFG",
                      help="the service's extra config files, as given to start")
    jobs.add_argument("--limit", type=int, default=50, help="newest jobs listed (default 50)")
    jobs.add_argument("--grace", type=float, default=10.0,
                      help="seconds a running job has to stop by itself before it is ended (default 10)")
    jobs.set_defaults(func=cmd_jobs)

    worker = commands.add_parser("worker", help="start Celery workers for [processing] mode = celery")
    worker.add_argument("--queue", default="gpu", help="queue(s) to serve, comma-separated (default gpu)")
    worker.add_argument("--gpus", help="GPU indices, one worker process per GPU, e.g. 0,1")
    worker.add_argument("--concurrency", type=int, default=1, help="jobs at once without --gpus (default 1)")
    worker.add_argument("-c", "--config", action="append", default=[], metavar="CFG",
                        help="config file with [celery], the shared paths and the job database")
    worker.add_argument("--loglevel", default="INFO")
    worker.set_defaults(func=cmd_worker)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
