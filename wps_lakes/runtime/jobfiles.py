"""Where a job's files live, and the records a job writes there (read by every front-end).

Files of job ``<uuid>``:

- ``<workdir>/jobs/<uuid>/``: job.json (the request), status.json (the status record), stop (a
  dismiss request), dismissed, result.json (a synchronous job's result)
- ``<outputpath>/<uuid>/``: the outputs, served under ``<outputurl>/<uuid>/``
- ``<outputpath>/<uuid>.xml``: the WPS 1.0.0 status document
"""
import json
import time
from pathlib import Path

from pywps.response.status import WPS_STATUS

from ..files import write_atomic
from . import settings

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


def stop_requested(uuid):
    return (job_dir(uuid) / "stop").exists()
