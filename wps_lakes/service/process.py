"""What every wps_lakes process shares on top of PyWPS's Process.

- One dispatch point: async jobs go to the configured backend (``jobs.backend()``) from
  ``_run_async``; sync requests also run in a job process, the web server waits for it.
- ``always_async`` processes (train) answer ProcessAccepted even when the client did not ask for
  asynchronous execution, so hours of training never hold a web worker.
- Outputs are written straight into the job's output folder and published by URL, never copied;
  ``publish()`` during a run makes an output appear in every following ProcessStarted document.
- Library errors (LakesError) reach the user verbatim as ProcessError; anything else is logged
  and reported as an internal error with the job id.
"""
import logging
import re
import time

from pywps import dblog
from pywps.app.exceptions import ProcessError
from pywps.app.Process import Process
from pywps.exceptions import NoApplicableCode, ServerBusy, StorageNotSupported
from pywps.inout.storage.file import FileStorage
from pywps.response.execute import ExecuteResponse
from pywps.response.status import WPS_STATUS

from ..errors import LakesError
from ..files import write_atomic
from . import jobs, settings
from .guards import local_input_file
from .references import fetch_reference, policy_from_config

LOGGER = logging.getLogger("PYWPS")
# ProcessError strips other characters; the status document is XML-escaped by its template.
PROGRESS_INTERVAL = 1.0  # seconds between status document updates
MESSAGE_CHARS = ".:!?=,;-_/()[]{}'\"<>%+*#@|&~^$"


def user_error(message):
    return ProcessError(message, max_length=2000, allowed_chars=MESSAGE_CHARS)


class LakesExecuteResponse(ExecuteResponse):
    """An ExecuteResponse whose unfinished documents list the outputs published so far."""

    def __init__(self, wps_request, uuid, **kwargs):
        super().__init__(wps_request, uuid, **kwargs)
        self.published = {}  # output identifier -> {"href": ...} or {"data": ...}

    @property
    def json(self):
        data = super().json
        if self.status in (WPS_STATUS.ACCEPTED, WPS_STATUS.STARTED) and self.published:
            data["outputs"] = [self.outputs[oid].json for oid in self.published]
        return data

    def _update_status(self, status, message, status_percentage, clean=True):
        super()._update_status(status, message, status_percentage, clean)
        jobs.write_status_record(self.uuid, self.process.identifier, status, message, status_percentage,
                                 self.published)

    def _update_status_file(self):
        """Replace the status document atomically. PyWPS rewrites it in place (open "w", write), so a
        client polling at that moment read it empty or cut short; here a temporary file beside it is
        written and renamed over it, and a reader sees the old document or the new one."""
        store = self.process.status_store
        if not isinstance(store, FileStorage):
            return super()._update_status_file()
        try:
            write_atomic(store.location(self.process.status_filename),
                         self.doc if isinstance(self.doc, bytes) else str(self.doc))
        except Exception as exc:
            raise NoApplicableCode(f"Writing the status document failed: {type(exc).__name__}") from None

    def publish(self, identifier, path):
        """Set an output to a file inside the job's output folder, by URL when by reference."""
        output = self.outputs[identifier]
        href = jobs.job_output_url(self.uuid, path)
        if output.as_reference and not self.wps_request.raw:
            output.url = href
        else:
            output.file = str(path)
        self.published[identifier] = {"href": href, "mime_type": output.data_format.mime_type}

    def set_data(self, identifier, value):
        """Set a literal (or inline JSON) output."""
        self.outputs[identifier].data = value
        self.published[identifier] = {"data": value}


class LakesProcess(Process):
    """Base class: subclasses define ``handle(request, response)``."""

    always_async = False
    uses_gpu = False  # routed to the GPU queue when jobs run on Celery workers

    def __init__(self, **kwargs):
        kwargs.setdefault("store_supported", True)
        kwargs.setdefault("status_supported", True)
        super().__init__(self._handler, **kwargs)

    # -- running ------------------------------------------------------------------------------

    def _handler(self, request, response):
        try:
            return self.handle(request, response)
        except jobs.JobDismissed:
            raise user_error(jobs.DISMISSED_MESSAGE) from None
        except LakesError as exc:
            raise user_error(self.public_message(str(exc))) from None
        except ProcessError:
            raise
        except Exception:
            LOGGER.exception("job %s (%s) failed", self.uuid, self.identifier)
            raise user_error(f"Internal error in {self.identifier}, job {self.uuid}. This is a fault of the "
                             "service, not of your input: please report it with the job id.") from None

    def handle(self, request, response):
        raise NotImplementedError

    def public_message(self, message):
        """Hide the server's folders: a file path in a message is shown by its name only."""
        for root in filter(None, (self.workdir, settings.workdir(), settings.outputpath())):
            message = re.sub(re.escape(str(root).rstrip("/")) + r"/[^\s,;:'\"]*/", "", message)
        return message

    def input_file(self, inpt):
        """Local path of a complex input: inline data, an allowed file:// link, or a fetched URL."""
        if getattr(inpt, "prop", None) == "url":
            return str(fetch_reference(inpt.url, self.workdir, policy_from_config(), settings.limits()))
        if getattr(inpt, "prop", None) == "data" and str(inpt.data).startswith("(<owslib.wps.ComplexDataInput"):
            raise LakesError(f"{inpt.identifier} arrived as the text of a Python tuple: birdy's command line "
                             "cannot send an input given more than once; use birdy.WPSClient or OWSLib for it")
        # Still inside the allowed folders or the job's own, whatever a link was changed to since.
        local_input_file(inpt.file, self.workdir, getattr(inpt, "workdir", None))
        return inpt.file

    def input_files(self, request, identifier):
        return [self.input_file(i) for i in request.inputs.get(identifier, [])]

    def rasters(self, request):
        """The DEM files: ``raster`` then its ``adjacent_raster`` tiles (see processes/io.py)."""
        return self.input_files(request, "raster") + self.input_files(request, "adjacent_raster")

    def literal(self, request, identifier, default=None):
        values = request.inputs.get(identifier)
        return values[0].data if values else default

    def needs_gpu(self, wps_request):
        """Whether this request runs a model (routed to the GPU queue on Celery workers)."""
        return self.uses_gpu

    def stop_requested(self):
        return jobs.stop_requested(self.uuid)

    def check_stop(self):
        if self.stop_requested():
            raise jobs.JobDismissed()

    def limits(self):
        return settings.limits()

    def tile_progress(self, response, start, end):
        """A progress(done, total) callback mapping work units onto start..end percent."""
        last = [0.0]

        def progress(done, total):
            self.check_stop()
            now = time.monotonic()
            if now - last[0] >= PROGRESS_INTERVAL or done == total:
                last[0] = now
                percent = start + (end - start) * done / max(total, 1)
                response.update_status(f"Tile {done} of {total}", int(percent))
        return progress

    def output_dir(self):
        return jobs.job_output_dir(self.uuid)

    # -- dispatch -------------------------------------------------------------------------------

    def execute(self, wps_request, uuid):
        self._set_uuid(uuid)
        self._setup_status_storage()
        if self.always_async and wps_request.store_execute != "true":
            # Long jobs never run synchronously: answer ProcessAccepted with a status location.
            wps_request.store_execute = "true"
            wps_request.status = "true"
            wps_request.raw = False
        if wps_request.store_execute == "true" and wps_request.status != "true":
            raise StorageNotSupported("storeExecuteResponse=true needs status=true here: jobs report their status")
        self.async_ = wps_request.store_execute == "true"
        response = LakesExecuteResponse(wps_request, uuid=self.uuid, process=self)
        response.store_status_file = self.async_
        return self._execute_process(self.async_, wps_request, response)

    def _execute_process(self, async_, wps_request, wps_response):
        """Run now, queue, or refuse with ServerBusy: parallelprocesses are the job slots (GPUs),
        maxprocesses the queue. On Celery the broker queues; maxprocesses caps unfinished jobs."""
        maxparallel = int(settings.config_value("server", "parallelprocesses"))
        maxprocesses = int(settings.config_value("server", "maxprocesses"))
        celery = settings.processing_mode() == "celery"
        running, stored = dblog.get_process_counts()  # running counts accepted jobs too
        if not celery and maxparallel != -1 and running >= maxparallel:
            dblog.cleanup_crashed_process()
            running, stored = dblog.get_process_counts()
        if celery and maxprocesses != -1 and running >= maxprocesses:
            raise ServerBusy("The job queue is full; try again later.")
        if not async_:
            if not celery and maxparallel != -1 and running >= maxparallel:
                raise ServerBusy("All job slots are busy; try again later or run asynchronously.")
            wps_response._update_status(WPS_STATUS.ACCEPTED, "Request accepted", 0)
            return self._run_sync(wps_request, wps_response)
        if celery or maxparallel == -1 or running < maxparallel:
            wps_response._update_status(WPS_STATUS.ACCEPTED, "Job accepted", 0)
            self._run_async(wps_request, wps_response)
            return wps_response
        if maxprocesses != -1 and stored >= maxprocesses:
            raise ServerBusy("The job queue is full; try again later.")
        dblog.store_process(self.uuid, wps_request)
        jobs.write_json_atomic(jobs.job_dir(self.uuid) / "job.json", jobs.job_document(self, wps_request, False))
        wps_response._update_status(WPS_STATUS.ACCEPTED, "Job queued: waiting for a free slot", 0)
        return wps_response

    def _run_async(self, wps_request, wps_response):
        """The single place where a job is handed to a backend."""
        jobs.backend().submit(jobs.job_document(self, wps_request, sync=False))

    def _run_sync(self, wps_request, wps_response):
        result = jobs.backend().run_sync(jobs.job_document(self, wps_request, sync=True))
        for identifier, state in result["outputs"].items():
            if state and identifier in wps_response.outputs:
                setattr(wps_response.outputs[identifier], state["prop"], state["value"])
        wps_response.published.update(result.get("published") or {})
        wps_response._update_status(result["status"], result["message"], 100)
        return wps_response
