"""How a job runs: PyWPS's Execute hands a request to ``JobService.dispatch``, which runs it now in a job
process, queues it, or refuses it; the chosen backend (local fork server or Celery workers) starts
the job process, where ``run_job`` rebuilds the request from its JSON document and runs it.

Every job runs in a process of its own (never in the web server): the same ``run_job`` serves the
local backend and the Celery workers. ``parallelprocesses`` are the job slots (GPUs),
``maxprocesses`` the queue (PyWPS's stored requests); on Celery the broker queues and
``maxprocesses`` caps the unfinished jobs.

Every job is recorded with its owner (``records``); ``[auth] max_jobs_per_user`` caps one user's
queued and running jobs, and the next free local slot goes round-robin between users.
"""
import json
import logging

from pywps import dblog
from pywps.app.Process import Process
from pywps.app.Service import Service
from pywps.app.WPSRequest import WPSRequest
from pywps.exceptions import ServerBusy, StorageNotSupported
from pywps.response.status import WPS_STATUS

from ..processes.base import LakesExecuteResponse
from ..runtime import settings, users
from ..runtime.jobfiles import job_dir, write_json_atomic
from . import records

LOGGER = logging.getLogger("PYWPS")


class QuotaExceeded(ServerBusy):
    """A user's queued and running jobs are at ``[auth] max_jobs_per_user`` (HTTP 429)."""

    def __init__(self, description):
        super().__init__(description, code=429)

    @property
    def name(self):  # the exceptionCode of the WPS ExceptionReport
        return "ServerBusy"


class JobService(Service):
    """PyWPS's Service whose processes hand their Execute here (see ``LakesProcess.execute``)."""

    def dispatch(self, process, wps_request, uuid):
        """Run now, queue, or refuse with ServerBusy."""
        process._set_uuid(uuid)
        process._setup_status_storage()
        if process.always_async and wps_request.store_execute != "true":
            # Long jobs never run synchronously: answer ProcessAccepted with a status location.
            wps_request.store_execute = "true"
            wps_request.status = "true"
            wps_request.raw = False
        if wps_request.store_execute == "true" and wps_request.status != "true":
            raise StorageNotSupported("storeExecuteResponse=true needs status=true here: jobs report their status")
        process.async_ = wps_request.store_execute == "true"
        response = LakesExecuteResponse(wps_request, uuid=process.uuid, process=process)
        response.store_status_file = process.async_
        requester = users.current()
        records.add(process.uuid, process.identifier, requester, records.inputs_as_given(wps_request))
        check_quota(requester, process.uuid)

        maxparallel = int(settings.config_value("server", "parallelprocesses"))
        maxprocesses = int(settings.config_value("server", "maxprocesses"))
        celery = settings.processing_mode() == "celery"
        running, stored = dblog.get_process_counts()  # running counts accepted jobs too
        if not celery and maxparallel != -1 and running >= maxparallel:
            dblog.cleanup_crashed_process()
            running, stored = dblog.get_process_counts()
        if celery and maxprocesses != -1 and running >= maxprocesses:
            raise ServerBusy("The job queue is full; try again later.")
        if not process.async_:
            if not celery and maxparallel != -1 and running >= maxparallel:
                raise ServerBusy("All job slots are busy; try again later or run asynchronously.")
            response._update_status(WPS_STATUS.ACCEPTED, "Request accepted", 0)
            return self._run_sync(process, wps_request, response)
        if celery or maxparallel == -1 or running < maxparallel:
            response._update_status(WPS_STATUS.ACCEPTED, "Job accepted", 0)
            records.mark_started(process.uuid)
            backend().submit(job_document(process, wps_request, sync=False))
            return response
        if maxprocesses != -1 and stored >= maxprocesses:
            raise ServerBusy("The job queue is full; try again later.")
        dblog.store_process(process.uuid, wps_request)
        write_json_atomic(job_dir(process.uuid) / "job.json", job_document(process, wps_request, False))
        response._update_status(WPS_STATUS.ACCEPTED, "Job queued: waiting for a free slot", 0)
        return response

    @staticmethod
    def _run_sync(process, wps_request, response):
        records.mark_started(process.uuid)
        result = backend().run_sync(job_document(process, wps_request, sync=True))
        for identifier, state in result["outputs"].items():
            if state and identifier in response.outputs:
                setattr(response.outputs[identifier], state["prop"], state["value"])
        response.published.update(result.get("published") or {})
        response._update_status(result["status"], result["message"], 100)
        return response

    @staticmethod
    def launch_next():
        launch_next_queued()


def check_quota(requester, uuid):
    """Refuse job ``uuid`` when its owner has ``[auth] max_jobs_per_user`` other jobs queued or running."""
    limit = int(settings.section("auth").get("max_jobs_per_user") or 0)
    if limit > 0 and records.unfinished_count(requester.user, besides=uuid) >= limit:
        raise QuotaExceeded(f"You have {limit} jobs queued or running, the limit max_jobs_per_user = {limit} of "
                            "this service; wait for one to finish (or dismiss one), then submit again.")


def launch_next_queued():
    """Start the next request waiting in PyWPS's queue (round-robin between users, see
    ``records.pop_next_queued``), from the job document written when it was queued."""
    try:
        uuid = records.pop_next_queued()
        if uuid is not None:
            records.mark_started(uuid)
            backend().submit(json.loads((job_dir(uuid) / "job.json").read_text()))
    except Exception:  # the queue is retried by the next job that ends
        LOGGER.exception("could not launch the next queued job")


def job_document(process, wps_request, sync):
    """Everything a job process needs to rebuild and run the request."""
    return {"uuid": str(process.uuid), "identifier": process.identifier, "sync": sync,
            "gpu": process.needs_gpu(wps_request),
            "process": process.json, "wps_request": wps_request.json, "cfgfiles": list(settings.CFGFILES)}


def backend():
    if settings.processing_mode() == "celery":
        from .celery_backend import CeleryBackend

        return CeleryBackend()
    from .local import LocalBackend

    return LocalBackend()


# ---------------------------------------------------------------------------------------------
# running a job (inside the job process)


def rebuild(doc):
    """Process, request and response of a job document, ready for ``process._run_process``."""
    process = Process.from_json(doc["process"])
    request = WPSRequest()
    request.restore_json(json.loads(doc["wps_request"]))  # written by this service: trusted
    process.setup_outputs_from_wps_request(request)
    # The process hands the next queued request to its service when it ends.
    process.service = JobService()
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
