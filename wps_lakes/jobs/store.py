"""The job store: jobs as the job database and their folders tell them, listing and dismissal."""
import json
import logging
import time
from dataclasses import dataclass

import sqlalchemy as sa
from pywps import dblog
from pywps.response.status import WPS_STATUS

from ..runtime.jobfiles import DISMISSED_MESSAGE, STATUS_NAMES, job_dir
from ..runtime.users import ANONYMOUS
from . import records
from .dispatch import backend, launch_next_queued, rebuild

LOGGER = logging.getLogger("PYWPS")


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
    owner: str = ANONYMOUS  # jobs from before owners were recorded are anonymous's

    @property
    def finished(self):
        return self.status in ("succeeded", "failed", "dismissed")


def _info(row, owner, queued):
    status = STATUS_NAMES.get(row.status, "accepted")
    if (job_dir(row.uuid) / "dismissed").exists():
        status = "dismissed"
    elif row.uuid in queued:
        status = "accepted"
    return JobInfo(uuid=row.uuid, process=row.identifier, status=status, percent=row.percent_done or 0,
                   message=row.message or "", created=row.time_start, updated=row.time_end, pid=row.pid,
                   owner=owner or ANONYMOUS)


def _jobs(session):
    return (session.query(dblog.ProcessInstance, records.JobRecord.owner)
            .outerjoin(records.JobRecord, records.JobRecord.uuid == dblog.ProcessInstance.uuid)
            .filter(dblog.ProcessInstance.operation == "execute"))


def list_jobs(limit=100, process=None, owner=None):
    """The newest jobs first; only ``owner``'s when given."""
    session = records.session()
    try:
        queued = {r.uuid for r in session.query(dblog.RequestInstance.uuid)}
        query = _jobs(session)
        if process:
            query = query.filter(dblog.ProcessInstance.identifier == process)
        if owner == ANONYMOUS:
            query = query.filter(sa.or_(records.JobRecord.owner == owner, records.JobRecord.owner.is_(None)))
        elif owner:
            query = query.filter(records.JobRecord.owner == owner)
        rows = query.order_by(dblog.ProcessInstance.time_start.desc()).limit(limit).all()
        return [_info(row, job_owner, queued) for row, job_owner in rows]
    finally:
        session.close()


def get_job(uuid):
    session = records.session()
    try:
        found = _jobs(session).filter(dblog.ProcessInstance.uuid == str(uuid)).one_or_none()
        if found is None:
            return None
        row, owner = found
        queued = {r.uuid for r in session.query(dblog.RequestInstance.uuid).filter_by(uuid=str(uuid))}
        return _info(row, owner, queued)
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
        launch_next_queued()  # an ended job never reached PyWPS's hand-over to the next one
        return get_job(uuid)
    mark_dismissed(uuid)
    return get_job(uuid)
