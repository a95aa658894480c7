"""The local backend: each job in its own process on this host, forked from a job fork server."""
import json
import multiprocessing
import os
import signal
import threading
import time

from pywps import dblog
from pywps.response.status import WPS_STATUS

from ..runtime import settings
from ..runtime.jobfiles import job_dir, write_json_atomic


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


def remove_from_queue(uuid):
    session = dblog.get_session()
    try:
        removed = session.query(dblog.RequestInstance).filter_by(uuid=str(uuid)).delete()
        session.commit()
        return removed > 0
    finally:
        session.close()


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
