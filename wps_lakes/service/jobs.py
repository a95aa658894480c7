"""Jobs: where a job's files live, how it is handed to a backend, how it is listed and dismissed.

Every job runs in a process of its own (never in the web server), rebuilt from a JSON document:
the same ``run_job`` serves the local backend (a fresh interpreter per job) and the Celery
workers. Files of job ``<uuid>``:

- ``<workdir>/jobs/<uuid>/``: job.json (the request), stop (a dismiss request), dismissed, result.json
- ``<outputpath>/<uuid>/``: the outputs, served under ``<outputurl>/<uuid>/``
- ``<outputpath>/<uuid>.xml``: the WPS 1.0.0 status document
"""
import json
import logging
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pywps import dblog
from pywps.response.status import WPS_STATUS

from ..files import write_atomic
from . import settings

LOGGER = logging.getLogger("PYWPS")
STATUS_NAMES = {WPS_STATUS.UNKNOWN: "unknown", WPS_STATUS.ACCEPTED: "accepted", WPS_STATUS.STARTED: "running",
                WPS_STATUS.PAUSED: "running", WPS_STATUS.SUCCEEDED: "succeeded", WPS_STATUS.FAILED: "failed"}
DISMISSED_MESSAGE = "Dismissed: the job was stopped at the user's request"


class JobDismissed(Exception):
    """Raised inside a job when a stop was requested; the job ends as dismissed."""


def job_dir(uuid):
    return Path(settings.workdir()) / "jobs" / str(uuid)


def job_output_dir(uuid):
    path = Path(settings.outputpath()) / str(uuid)
    path.mkdir(parents=True, exist_ok=True)
    return path


def job_output_url(uuid, path):
    relative = Path(path).resolve().relative_to(Path(settings.outputpath()).resolve())
    return f"{settings.outputurl()}/{relative.as_posix()}"


def write_json_atomic(path, value):
    write_atomic(path, json.dumps(value))


def write_status_record(uuid, process, status, message, percent, outputs):
    """A JSON twin of the status document, read by the WPS 2.0, OGC API and ESGF front-ends."""
    write_json_atomic(job_dir(uuid) / "status.json", {
        "uuid": str(uuid), "process": process, "status": STATUS_NAMES.get(status, "unknown"),
        "percent": percent, "message": message, "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "outputs": outputs})


def read_status_record(uuid):
    path = job_dir(uuid) / "status.json"
    return json.loads(path.read_text()) if path.exists() else None


def job_document(process, wps_request, sync):
    """Everything a job process needs to rebuild and run the request."""
    return {"uuid": str(process.uuid), "identifier": process.identifier, "sync": sync,
            "gpu": process.needs_gpu(wps_request),
            "process": process.json, "wps_request": wps_request.json, "cfgfiles": list(settings.CFGFILES)}


# ---------------------------------------------------------------------------------------------
# running a job (inside the job process)


def rebuild(doc):
    """Process, request and response of a job document, ready for ``process._run_process``."""
    from pywps import WPSRequest
    from pywps.app.Process import Process
    from pywps.app.Service import Service

    from ..processes import get_processes
    from .process import LakesExecuteResponse

    process = Process.from_json(doc["process"])
    request = WPSRequest()
    request.restore_json(json.loads(doc["wps_request"]))  # written by this service: trusted
    process.setup_outputs_from_wps_request(request)
    # PyWPS launches the next queued request from the finishing job through its service.
    process.service = Service(processes=get_processes())
    response = LakesExecuteResponse(request, uuid=doc["uuid"], process=process)
    response.store_status_file = not doc["sync"]
    return process, request, response


def output_state(output):
    """How an output was set (file, url or data), to hand back to the web server."""
    prop = getattr(output, "prop", None)
    return {"prop": prop, "value": getattr(output, prop)} if prop else None


def run_job(doc):
    """Run a job document in this process; returns the result state (status, message, outputs)."""
    process, request, response = rebuild(doc)
    process._run_process(request, response)
    result = {"status": response.status, "message": response.message, "published": response.published,
              "outputs": {oid: output_state(out) for oid, out in response.outputs.items()}}
    if doc["sync"]:
        write_json_atomic(job_dir(doc["uuid"]) / "result.json", result)
    return result


# ---------------------------------------------------------------------------------------------
# backends


class LocalBackend:
    """Each job in its own process on this host, forked from a job fork server.

    The fork server is a fresh interpreter (started on first use) that has imported what jobs need,
    so a job process inherits no threads, sockets or locks from the web server, starts in tens of
    milliseconds, and imports torch (and CUDA) only itself. The job is its own process group so that
    dismissal can end it with its data-loader children.
    """

    def start(self, doc):
        from .runner import detached

        folder = job_dir(doc["uuid"])
        write_json_atomic(folder / "job.json", doc)
        proc = job_context().Process(target=detached, args=(str(folder),), name=f"wps-lakes-job-{doc['uuid']}")
        proc.start()
        return proc

    def submit(self, doc):
        proc = self.start(doc)
        # Reap the child when it ends so that no zombie is left behind.
        threading.Thread(target=proc.join, daemon=True).start()

    def run_sync(self, doc):
        proc = self.start(doc)
        proc.join()
        result_file = job_dir(doc["uuid"]) / "result.json"
        if result_file.exists():
            return json.loads(result_file.read_text())
        return {"status": WPS_STATUS.FAILED, "outputs": {},
                "message": f"The job process ended unexpectedly (exit code {proc.exitcode})"}

    def dequeue(self, uuid):
        """Remove a job still waiting in PyWPS's queue; False if it is not waiting there."""
        return remove_from_queue(uuid)

    def terminate(self, uuid, pid):
        """End a running job: SIGTERM to its process group, SIGKILL if still there after 5 s."""
        if not pid or pid == os.getpid():
            return
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            return
        for _ in range(50):
            time.sleep(0.1)
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


_JOB_CONTEXT = []
_JOB_CONTEXT_LOCK = threading.Lock()


def job_context():
    """The multiprocessing context whose fork server starts the local jobs (one per web worker)."""
    from .runner import PRELOAD

    with _JOB_CONTEXT_LOCK:
        if not _JOB_CONTEXT:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(PRELOAD)
            _JOB_CONTEXT.append(context)
        return _JOB_CONTEXT[0]


def start_job_server():
    """Start the local backend's fork server now rather than on the first job (which would wait)."""
    if settings.processing_mode() != "celery":
        job_context()
        from multiprocessing import forkserver

        forkserver.ensure_running()


def backend():
    if settings.processing_mode() == "celery":
        from .celery_backend import CeleryBackend

        return CeleryBackend()
    return LocalBackend()


# ---------------------------------------------------------------------------------------------
# job store: listing and dismissal


@dataclass
class JobInfo:
    uuid: str
    process: str
    status: str  # accepted | running | succeeded | failed | dismissed
    percent: float
    message: str
    created: object
    updated: object
    pid: int

    @property
    def finished(self):
        return self.status in ("succeeded", "failed", "dismissed")


def _info(row, queued):
    status = STATUS_NAMES.get(row.status, "accepted")
    if (job_dir(row.uuid) / "dismissed").exists():
        status = "dismissed"
    elif row.uuid in queued:
        status = "accepted"
    return JobInfo(uuid=row.uuid, process=row.identifier, status=status, percent=row.percent_done or 0,
                   message=row.message or "", created=row.time_start, updated=row.time_end, pid=row.pid)


def list_jobs(limit=100, process=None):
    session = dblog.get_session()
    try:
        queued = {r.uuid for r in session.query(dblog.RequestInstance.uuid)}
        query = session.query(dblog.ProcessInstance).filter(dblog.ProcessInstance.operation == "execute")
        if process:
            query = query.filter(dblog.ProcessInstance.identifier == process)
        rows = query.order_by(dblog.ProcessInstance.time_start.desc()).limit(limit).all()
        return [_info(r, queued) for r in rows]
    finally:
        session.close()


def get_job(uuid):
    session = dblog.get_session()
    try:
        row = session.query(dblog.ProcessInstance).filter_by(uuid=str(uuid), operation="execute").one_or_none()
        if row is None:
            return None
        queued = {r.uuid for r in session.query(dblog.RequestInstance.uuid).filter_by(uuid=str(uuid))}
        return _info(row, queued)
    finally:
        session.close()


def stop_requested(uuid):
    return (job_dir(uuid) / "stop").exists()


def remove_from_queue(uuid):
    session = dblog.get_session()
    try:
        removed = session.query(dblog.RequestInstance).filter_by(uuid=str(uuid)).delete()
        session.commit()
        return removed > 0
    finally:
        session.close()


def mark_dismissed(uuid):
    """Write the dismissed state to the job database and the WPS 1.0.0 status document."""
    folder = job_dir(uuid)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dismissed").touch()
    doc_file = folder / "job.json"
    if doc_file.exists():
        _, _, response = rebuild(json.loads(doc_file.read_text()))
        response.store_status_file = True
        response._update_status(WPS_STATUS.FAILED, DISMISSED_MESSAGE, 100)
    else:
        dblog.store_status(uuid, WPS_STATUS.FAILED, DISMISSED_MESSAGE, 100)


def dismiss(uuid, grace_seconds=10.0):
    """Dismiss a job: dequeue it, or ask it to stop and end it after the grace period.

    Returns the job's JobInfo afterwards, or None if there is no such job.
    """
    job = get_job(uuid)
    if job is None or job.status == "dismissed":
        return job
    if job.finished:
        job_dir(uuid).mkdir(parents=True, exist_ok=True)
        (job_dir(uuid) / "dismissed").touch()
        return get_job(uuid)
    job_dir(uuid).mkdir(parents=True, exist_ok=True)
    (job_dir(uuid) / "stop").touch()
    jobs_backend = backend()
    if jobs_backend.dequeue(uuid):
        mark_dismissed(uuid)
        return get_job(uuid)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        current = get_job(uuid)
        if current.finished:
            break
        time.sleep(0.2)
    else:
        jobs_backend.terminate(uuid, get_job(uuid).pid)
        mark_dismissed(uuid)
        _launch_next_queued()  # an ended job never reached PyWPS's hand-over to the next one
        return get_job(uuid)
    mark_dismissed(uuid)
    return get_job(uuid)


def _launch_next_queued():
    """Start the next request waiting in PyWPS's queue."""
    from pywps.app.Process import Process

    try:
        Process.launch_next_process(_QueueLauncher())
    except Exception:  # the queue is retried by the next job that ends
        LOGGER.exception("could not launch the next queued job")


class _QueueLauncher:
    """The minimum PyWPS's launch_next_process needs: a service to prepare processes."""

    def __init__(self):
        from pywps.app.Service import Service

        from ..processes import get_processes

        self.service = Service(processes=get_processes())
