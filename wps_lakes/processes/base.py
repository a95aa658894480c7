"""What every wps_lakes process shares on top of PyWPS's Process.

- How a request runs is not decided here: ``execute`` hands it to the service that prepared the
  process (PyWPS sets ``process.service``), a ``jobs.dispatch.JobService``, which runs it in a job
  process, queues it or refuses it; so this layer never imports the job layer above it.
- ``always_async`` processes (train) answer ProcessAccepted even when the client did not ask for
  asynchronous execution, so hours of training never hold a web worker (the job layer reads it).
- Outputs are written straight into the job's output folder and published by URL, never copied;
  ``publish()`` during a run makes an output appear in every following ProcessStarted document.
- Library errors (LakesError) reach the user verbatim as ProcessError; anything else is logged
  and reported as an internal error with the job id.
"""
import logging
import os
import re
import signal
import threading
import time
from contextlib import contextmanager

from pywps.app.exceptions import ProcessError
from pywps.app.Process import Process
from pywps.exceptions import NoApplicableCode
from pywps.inout.storage.file import FileStorage
from pywps.response.execute import ExecuteResponse
from pywps.response.status import WPS_STATUS

from ..errors import LakesError
from ..files import write_atomic
from ..runtime import jobfiles, settings
from ..runtime.references import fetch_reference, local_input_file

LOGGER = logging.getLogger("PYWPS")
# ProcessError strips other characters; the status document is XML-escaped by its template.
PROGRESS_INTERVAL = 1.0  # seconds between status document updates
OVERRUN_GRACE_S = 30  # after the time limit, before a job that does not stop is ended
MESSAGE_CHARS = ".:!?=,;-_/()[]{}'\"<>%+*#@|&~^$"


def user_error(message):
    return ProcessError(message, max_length=2000, allowed_chars=MESSAGE_CHARS)


class JobTimeLimit(LakesError):
    """Raised in a job that ran past its wall-time limit."""


@contextmanager
def wall_time_bound(seconds, limit, on_overrun):
    """Stop the job after ``seconds``: SIGALRM raises JobTimeLimit in the job's main thread, so the job
    fails through the usual error path; if it is stuck in C code and still runs OVERRUN_GRACE_S later,
    ``on_overrun(message)`` ends it from a timer thread. Outside a main thread (no signals there) it
    does nothing: jobs run in a process of their own, in its main thread."""
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield
        return
    message = (f"The job ran past {seconds:,} s ({limit}) and was stopped. Give a smaller input, or ask the "
               "operator to raise the limit.")

    def alarm(signum, frame):
        raise JobTimeLimit(message)

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    backstop = threading.Timer(seconds + OVERRUN_GRACE_S, on_overrun, [message])
    backstop.daemon = True
    backstop.start()
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        backstop.cancel()


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
        wanted = self.wps_request.outputs or {}
        if wanted and data.get("outputs") and not self.wps_request.raw:
            # A ResponseDocument that names outputs gets those only (WPS 1.0.0, 10.2.2); none named: all.
            data["outputs"] = [o for o in data["outputs"] if o.get("identifier") in wanted]
        return data

    def _update_status(self, status, message, status_percentage, clean=True):
        # The status record (with the outputs) first: a front-end that reads the job's state from the
        # database saw "succeeded" before the record listed the final outputs (a results document
        # without them).
        jobfiles.write_status_record(self.uuid, self.process.identifier, status, message, status_percentage,
                                     self.published)
        super()._update_status(status, message, status_percentage, clean)

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
        href = jobfiles.job_output_url(self.uuid, path)
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
            with wall_time_bound(*self.wall_time_limit(), on_overrun=lambda message: self._overrun(response, message)):
                return self.handle(request, response)
        except jobfiles.JobDismissed:
            raise user_error(jobfiles.DISMISSED_MESSAGE) from None
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

    def wall_time_limit(self):
        """(seconds, what limit they come from): this job's wall-time bound."""
        seconds = self.limits().max_job_seconds
        return seconds, f"the limit max_job_seconds = {seconds:,} s of this service"

    def _overrun(self, response, message):
        """The job is stuck past its bound where the alarm cannot reach (in C code): fail it, start the
        next queued job, and end this job process."""
        LOGGER.error("job %s (%s) stuck past its time limit: ending its process", self.uuid, self.identifier)
        try:
            response._update_status(WPS_STATUS.FAILED, message, 100)
            self.launch_next_process()
        finally:
            os._exit(1)

    def public_message(self, message):
        """Hide the server's folders: a file path in a message is shown by its name only."""
        for root in filter(None, (self.workdir, settings.workdir(), settings.outputpath())):
            message = re.sub(re.escape(str(root).rstrip("/")) + r"/[^\s,;:'\"]*/", "", message)
        return message

    def input_file(self, inpt):
        """Local path of a complex input: inline data, an allowed file:// link, or a fetched URL."""
        if getattr(inpt, "prop", None) == "url":
            return str(fetch_reference(inpt.url, self.workdir, settings.reference_policy(), settings.limits()))
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
        return jobfiles.stop_requested(self.uuid)

    def check_stop(self):
        if self.stop_requested():
            raise jobfiles.JobDismissed()

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
        return jobfiles.job_output_dir(self.uuid)

    # -- hand-over to the job layer ----------------------------------------------------------------

    def execute(self, wps_request, uuid):
        """PyWPS's Execute ends here: the service that prepared this process runs, queues or refuses it."""
        return self.service.dispatch(self, wps_request, uuid)

    def launch_next_process(self):
        """PyWPS calls this when a job ends: the job layer starts the next queued one."""
        self.service.launch_next()
