"""Jobs on Celery workers with a Redis broker (``[processing] mode = celery``).

How no job is lost or run twice:
- The web server publishes the job (task id = job id) before it answers with the status location;
  an unreachable broker is a ServerBusy answer and the job is marked failed, never left hanging.
- Tasks are acknowledged late and rejected on worker loss, so a job a worker had not finished goes
  back to the queue. A worker runs each job in a child process that dies with it (so a killed
  worker leaves no orphan running), holding a Redis lock refreshed by a heartbeat.
- Every worker runs a watchdog: a job marked running whose lock has expired (its worker died)
  is published again; the new run resumes from the newest checkpoint in the job's folder.
- A delivery finding the lock held, or the job finished or dismissed, is dropped: two copies
  never run at once.
Workers share the server's ``outputpath``, ``workdir`` and job database (see etc/sample-celery.cfg).
"""
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid as uuidlib

from celery import Celery
from celery.signals import worker_ready
from pywps.exceptions import ServerBusy

from ..runtime import settings
from ..runtime.jobfiles import job_dir, read_status_record, write_json_atomic
from .dispatch import rebuild
from .local import LocalBackend
from .store import get_job, mark_dismissed

LOGGER = logging.getLogger("PYWPS")
KEY = "wps_lakes:job:{}:{}"
ACTIVE = "wps_lakes:jobs:active"  # job id -> job document, for every job not finished


def celery_settings():
    section = settings.section("celery")
    return {
        "broker_url": section.get("broker_url", "redis://localhost:6379/0"),
        "gpu_queue": section.get("gpu_queue", "gpu"),
        "cpu_queue": section.get("cpu_queue", "cpu"),
        "visibility_timeout": int(section.get("visibility_timeout", 3600)),
        # seconds a job lock lives without a heartbeat; heartbeats come every third of it
        "lock_ttl": int(section.get("lock_ttl", 30)),
        # seconds between two looks of a worker's watchdog for jobs whose worker died
        "watchdog_interval": int(section.get("watchdog_interval", 15)),
    }


_APP = None


def get_app():
    """The Celery application for the loaded configuration (built once per process)."""
    global _APP
    if _APP is None:
        conf = celery_settings()
        app = Celery("wps_lakes", broker=conf["broker_url"])
        app.conf.update(
            task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
            task_serializer="json", accept_content=["json"], result_backend=None, task_ignore_result=True,
            broker_transport_options={"visibility_timeout": conf["visibility_timeout"]},
            broker_connection_timeout=5, broker_connection_retry_on_startup=True,
            worker_hijack_root_logger=False, task_default_queue=conf["cpu_queue"])
        app.task(name="wps_lakes.run_job", bind=True)(run_job_task)
        _APP = app
    return _APP


def redis_client():
    import redis

    return redis.Redis.from_url(celery_settings()["broker_url"], socket_timeout=5, socket_connect_timeout=5)


def queue_for(doc):
    conf = celery_settings()
    return conf["gpu_queue"] if doc["gpu"] else conf["cpu_queue"]


def publish(doc):
    get_app().send_task("wps_lakes.run_job", args=[doc], task_id=doc["uuid"], queue=queue_for(doc),
                        retry=True, retry_policy={"max_retries": 2, "interval_start": 0.5, "interval_step": 1})


class CeleryBackend:
    def submit(self, doc):
        write_json_atomic(job_dir(doc["uuid"]) / "job.json", doc)
        try:
            redis_client().hset(ACTIVE, doc["uuid"], json.dumps(doc))
            publish(doc)
        except Exception as exc:
            LOGGER.error("job %s not queued: %s", doc["uuid"], exc)
            redis_unreachable(doc)
            raise ServerBusy("The job queue (Redis) cannot be reached; nothing was started. Try again later.") \
                from None

    def run_sync(self, doc):
        """Sync requests also run on a worker; the web server waits for the result file."""
        self.submit(doc)
        result = job_dir(doc["uuid"]) / "result.json"
        while not result.exists():
            time.sleep(0.2)
        return json.loads(result.read_text())

    def dequeue(self, uuid):
        """A job not started yet is marked dismissed; the worker that receives it drops it."""
        job = get_job(uuid)
        return job is not None and job.status == "accepted"

    def terminate(self, uuid, pid):
        """Ask the worker running the job to end it (workers share the job folders)."""
        (job_dir(uuid) / "kill").touch()


def redis_unreachable(doc):
    from pywps.response.status import WPS_STATUS

    _, _, response = rebuild(doc)
    response.store_status_file = True
    response._update_status(WPS_STATUS.FAILED, "Not started: the job queue (Redis) could not be reached", 100)


# ---------------------------------------------------------------------------------------------
# worker side


class JobLock:
    """A Redis lock on one job, kept alive by a heartbeat thread while the job runs."""

    def __init__(self, client, job_id, ttl):
        self.client, self.key, self.token = client, KEY.format(job_id, "lock"), uuidlib.uuid4().hex
        self.ttl = ttl
        self.stopped = threading.Event()

    def acquire(self):
        if not self.client.set(self.key, self.token, nx=True, ex=self.ttl):
            return False
        threading.Thread(target=self._beat, daemon=True).start()
        return True

    def _beat(self):
        while not self.stopped.wait(self.ttl / 3):
            if self.client.get(self.key) != self.token.encode():
                return
            self.client.expire(self.key, self.ttl)

    def release(self):
        self.stopped.set()
        if self.client.get(self.key) == self.token.encode():
            self.client.delete(self.key)


def job_finished(job_id):
    folder = job_dir(job_id)
    if (folder / "dismissed").exists() or (folder / "stop").exists():
        return True
    record = read_status_record(job_id)
    return bool(record) and record["status"] in ("succeeded", "failed")


def _die_with_parent():
    # The job process must not outlive a killed worker, or a redelivered copy would run beside it.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    os.setsid()


def run_job_task(task, doc):
    """The Celery task: run one job in a child process, once, under the job lock."""
    job_id = doc["uuid"]
    client = redis_client()
    if job_finished(job_id):
        if (job_dir(job_id) / "stop").exists() and not (job_dir(job_id) / "dismissed").exists():
            mark_dismissed(job_id)
        client.hdel(ACTIVE, job_id)
        return "dropped: finished or dismissed"
    lock = JobLock(client, job_id, celery_settings()["lock_ttl"])
    if not lock.acquire():
        LOGGER.info("job %s is running elsewhere: duplicate delivery dropped", job_id)
        return "dropped: running elsewhere"
    try:
        folder = job_dir(job_id)
        redelivered = task.request.delivery_info.get("redelivered") or (folder / "runner.log").exists()
        with open(folder / "runner.log", "ab") as log:
            log.write(f"--- {'redelivered' if redelivered else 'started'} on worker {socket.gethostname()} "
                      f"pid {os.getpid()} at {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode())
            log.flush()
            # The job process loads this worker's configuration, not the web server's files.
            write_json_atomic(folder / "job.json", dict(doc, cfgfiles=list(settings.CFGFILES)))
            proc = subprocess.Popen([sys.executable, "-m", "wps_lakes.jobs.runner", str(folder)],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    preexec_fn=_die_with_parent, cwd=folder)
            while proc.poll() is None:
                if (folder / "kill").exists():
                    LocalBackend().terminate(job_id, proc.pid)
                time.sleep(0.5)
        if (folder / "kill").exists():
            mark_dismissed(job_id)
        client.hdel(ACTIVE, job_id)
        return f"exit code {proc.returncode}"
    finally:
        lock.release()


def watchdog_once(client):
    """Publish again every running job whose worker died (its lock expired)."""
    for job_id, raw in client.hgetall(ACTIVE).items():
        job_id = job_id.decode()
        if job_finished(job_id):
            client.hdel(ACTIVE, job_id)
            continue
        job = get_job(job_id)
        if job and job.status == "running" and not client.exists(KEY.format(job_id, "lock")):
            # Only one watchdog re-publishes a given orphan.
            if client.set(KEY.format(job_id, "requeued"), "1", nx=True, ex=2 * celery_settings()["lock_ttl"]):
                LOGGER.warning("job %s lost its worker: publishing it again", job_id)
                publish(json.loads(raw))


def watchdog_loop():
    while True:
        try:
            watchdog_once(redis_client())
        except Exception:
            LOGGER.exception("watchdog pass failed")
        time.sleep(celery_settings()["watchdog_interval"])


@worker_ready.connect
def start_watchdog(**_):
    threading.Thread(target=watchdog_loop, daemon=True, name="wps-lakes-watchdog").start()
