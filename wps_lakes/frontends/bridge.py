"""What WPS 2.0.0 and OGC API - Processes share: one way into PyWPS's Execute, one view of jobs.

Every execution, whatever the protocol, is a ``pywps.app.WPSRequest`` handed to the PyWPS
``Service.execute`` of the running service, exactly as a WPS 1.0.0 Execute is: PyWPS validates the
inputs against the process definition, logs the job in the job database, writes the WPS 1.0.0
status document and hands the job to the backend through ``LakesProcess``. Job ids are the PyWPS
request uuids, so a job started over one protocol can be followed over the others.

Job state comes from ``store.get_job`` / ``store.list_jobs`` (database) and ``jobfiles.read_status_record``
(the outputs published so far, including the checkpoints of a running ``train``).
"""
import base64
import binascii
import datetime
import json
import logging
import re
import uuid as uuidlib
from dataclasses import dataclass, field

from pywps import configuration, dblog
from pywps.app.WPSRequest import WPSRequest
from pywps.exceptions import NoApplicableCode
from pywps.inout.inputs import BoundingBoxInput, ComplexInput
from pywps.response.status import WPS_STATUS

from ..errors import LakesError
from ..jobs import store
from ..runtime import jobfiles, settings, users
from ..runtime.references import own_output_file

LOGGER = logging.getLogger("PYWPS")

TEXT_TYPES = ("text/", "application/json", "application/geo+json", "application/vnd.geo+json", "application/xml",
              "application/gml+xml")
JSON_TYPES = ("application/json", "application/geo+json", "application/vnd.geo+json")
INLINE_DEFAULT_MAX = 16 << 20   # an output asked for with no transmission mode is inlined up to this size
INLINE_HARD_MAX = 256 << 20     # an output explicitly asked for by value is refused above this size
INTERNAL_ERROR_MARK = "Internal error in "
PROTOCOL_FILE = "protocol.json"  # per-job: the protocol and output choices of the request


class ServiceError(Exception):
    """An error to report to the client before or instead of a job result.

    ``code`` is an OWS/WPS exception code (NoSuchProcess, InvalidParameterValue, ...); each
    front-end maps it to its own encoding and HTTP status.
    """

    def __init__(self, code, message, locator="", status=400):
        super().__init__(message)
        self.code = code
        self.message = message
        self.locator = locator
        self.status = status


# PyWPS exception class name -> (our code, HTTP status)
PYWPS_CODES = {
    "InvalidParameterValue": ("InvalidParameterValue", 400),
    "MissingParameterValue": ("MissingParameterValue", 400),
    "FileURLNotSupported": ("InvalidParameterValue", 400),
    "FileSizeExceeded": ("SizeExceeded", 413),
    "StorageNotSupported": ("InvalidParameterValue", 400),
    "ServerBusy": ("ServerBusy", 503),
    "QuotaExceeded": ("ServerBusy", 429),
    "NotEnoughStorage": ("NoApplicableCode", 500),
    "FileStorageError": ("NoApplicableCode", 500),
    "SchedulerNotAvailable": ("NoApplicableCode", 503),
    "OperationNotSupported": ("OperationNotSupported", 501),
}


def is_binary(mime_type):
    return not any((mime_type or "").startswith(t) for t in TEXT_TYPES)


def is_json(mime_type):
    return any((mime_type or "").startswith(t) for t in JSON_TYPES)


# ---------------------------------------------------------------------------------------------
# process definitions


def process_modes(process):
    """WPS 2.0 / OGC API jobControlOptions of a process."""
    if getattr(process, "always_async", False):
        return ["async-execute", "dismiss"]
    return ["sync-execute", "async-execute", "dismiss"]


def input_kind(inpt):
    if isinstance(inpt, ComplexInput):
        return "complex"
    if isinstance(inpt, BoundingBoxInput):
        return "bbox"
    return "literal"


def get_process(service, identifier):
    process = service.processes.get(identifier)
    if process is None:
        raise ServiceError("NoSuchProcess", f"No such process: {identifier!r}. Offered: "
                           f"{', '.join(service.processes)}.", "Identifier", 400)
    return process


# ---------------------------------------------------------------------------------------------
# inputs: protocol-neutral values -> the dict PyWPS's parsers produce


@dataclass
class InputValue:
    """One value of one input, as a protocol front-end parsed it."""

    kind: str  # "data" (inline) or "href" (reference)
    value: object
    mime_type: str = None
    encoding: str = None
    crs: str = None  # bounding boxes


@dataclass
class OutputChoice:
    transmission: str = None  # "value" | "reference" | None (not said)
    mime_type: str = None


def _complex_format(definition, mime_type):
    if mime_type:
        for fmt in definition.supported_formats:
            if fmt.mime_type == mime_type:
                return fmt
        allowed = ", ".join(f.mime_type for f in definition.supported_formats)
        raise ServiceError("InvalidParameterValue", f"Input {definition.identifier}: format {mime_type!r} is not "
                           f"supported here; use one of {allowed}.", definition.identifier)
    return definition.data_format or definition.supported_formats[0]


def _check_href(identifier, href):
    scheme = href.split(":", 1)[0].lower() if ":" in href else ""
    if scheme not in ("http", "https", "file"):
        raise ServiceError("InvalidParameterValue", f"Input {identifier}: references must be http, https or "
                           f"(where the operator allows it) file URLs, not {href[:80]!r}.", identifier)


def stage_inline_file(job_uuid, identifier, index, data, extension):
    """Keep decoded binary inline data as a file of the job and return its URL.

    PyWPS keeps inline complex data in memory and serialises it as text into the job document,
    which binary data does not survive. A file under the job's output folder is read back by the
    job through the service's own output URL (``references.own_output_file``), like any
    reference to one of our outputs.
    """
    folder = jobfiles.job_output_dir(job_uuid) / "_inputs"
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", identifier)[:60]
    path = folder / f"{safe}_{index}{extension or '.bin'}"
    path.write_bytes(data)
    return jobfiles.job_output_url(job_uuid, path)


def build_inputs(process, values, job_uuid):
    """{identifier: [InputValue]} -> the {identifier: [dict]} PyWPS's Execute parsers produce."""
    definitions = {i.identifier: i for i in process.inputs}
    result = {}
    for identifier, items in values.items():
        definition = definitions.get(identifier)
        if definition is None:
            raise ServiceError("NoSuchInput", f"Process {process.identifier} has no input {identifier!r}; its inputs "
                               f"are {', '.join(definitions)}.", identifier)
        if len(items) > definition.max_occurs:
            raise ServiceError("TooManyInputs", f"Input {identifier} takes at most {definition.max_occurs} "
                               f"value(s); {len(items)} were given.", identifier)
        result[identifier] = [_build_input(definition, item, job_uuid, n) for n, item in enumerate(items)]
    for definition in process.inputs:
        if definition.min_occurs > len(result.get(definition.identifier, [])):
            raise ServiceError("MissingParameterValue", f"Input {definition.identifier} is required "
                               f"(at least {definition.min_occurs} value(s)).", definition.identifier)
    return result


def _build_input(definition, item, job_uuid, index):
    identifier = definition.identifier
    kind = input_kind(definition)
    if item.kind == "href":
        href = str(item.value)
        _check_href(identifier, href)
        entry = {"identifier": identifier, "href": href, "method": "GET"}
        if kind == "complex":
            entry["mimeType"] = _complex_format(definition, item.mime_type).mime_type
        elif kind == "literal":
            raise ServiceError("InvalidParameterValue", f"Input {identifier} is a literal value; give it inline, "
                               "not by reference.", identifier)
        return entry
    if kind == "literal":
        check_literal(definition, item.value)
        return {"identifier": identifier, "data": literal_text(item.value)}
    if kind == "bbox":
        return {"identifier": identifier, "data": list(item.value), "crs": item.crs, "dimensions": 2}
    fmt = _complex_format(definition, item.mime_type)
    value = item.value
    encoding = (item.encoding or "").lower()
    if encoding == "base64" or (is_binary(fmt.mime_type) and isinstance(value, str)):
        if not isinstance(value, (str, bytes)):
            raise ServiceError("InvalidParameterValue", f"Input {identifier}: binary data must be a base64 "
                               "string.", identifier)
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ServiceError("InvalidParameterValue", f"Input {identifier}: the inline value is not valid "
                               f"base64 (binary {fmt.mime_type} data is given base64-encoded).", identifier) from None
        if not is_binary(fmt.mime_type):
            try:
                return {"identifier": identifier, "data": data.decode("utf-8"), "mimeType": fmt.mime_type}
            except UnicodeDecodeError:
                raise ServiceError("InvalidParameterValue", f"Input {identifier}: {fmt.mime_type} data must be "
                                   "UTF-8 text.", identifier) from None
        href = stage_inline_file(job_uuid, identifier, index, data, fmt.extension)
        return {"identifier": identifier, "href": href, "mimeType": fmt.mime_type, "method": "GET"}
    if isinstance(value, (dict, list)):
        value = json.dumps(value)
    elif isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return {"identifier": identifier, "data": str(value), "mimeType": fmt.mime_type}


def check_literal(definition, value):
    """Refuse a literal value the process definition does not allow, saying what is allowed.

    (PyWPS would refuse it too, but only with "Input data not valid using mode 1".)
    """
    from pywps.inout.literaltypes import AllowedValue, AnyValue
    from pywps.validator.allowed_value import ALLOWEDVALUETYPE, RANGECLOSURETYPE

    identifier = definition.identifier
    data_type = getattr(definition, "data_type", None) or "string"
    text = literal_text(value).strip()
    try:
        if data_type in ("float", "scale", "angle"):
            typed = float(text)
            if typed != typed or typed in (float("inf"), float("-inf")):
                raise ValueError
        elif data_type in ("integer", "positiveInteger", "nonNegativeInteger"):
            typed = int(float(text)) if re.fullmatch(r"[+-]?\d+(\.0*)?", text) else int(text)
            if (data_type == "positiveInteger" and typed < 1) or (data_type == "nonNegativeInteger" and typed < 0):
                raise ValueError
        elif data_type == "boolean":
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            typed = text.lower() in ("true", "1")
        else:
            typed = literal_text(value)
    except ValueError:
        raise ServiceError("InvalidParameterValue", f"Input {identifier}: {text[:60]!r} is not a valid {data_type}.",
                           identifier) from None
    allowed = [v for v in (getattr(definition, "allowed_values", None) or [])
               if isinstance(v, AllowedValue) and not isinstance(v, AnyValue)]
    if not allowed:
        return typed
    described = []
    for rule in allowed:
        if rule.allowed_type == ALLOWEDVALUETYPE.RANGE:
            low, high, closure = rule.minval, rule.maxval, rule.range_closure or RANGECLOSURETYPE.CLOSED
            described.append(f"{low} to {high}")
            if low is not None and (typed < float(low) or (typed == float(low) and closure in (
                    RANGECLOSURETYPE.OPEN, RANGECLOSURETYPE.OPENCLOSED))):
                continue
            if high is not None and (typed > float(high) or (typed == float(high) and closure in (
                    RANGECLOSURETYPE.OPEN, RANGECLOSURETYPE.CLOSEDOPEN))):
                continue
            return typed
        described.append(str(rule.value))
        if str(rule.value) == str(typed) or (not isinstance(typed, str) and str(typed) == str(rule.value)):
            return typed
        try:
            if not isinstance(typed, str) and float(rule.value) == float(typed):
                return typed
        except (TypeError, ValueError):
            pass
    raise ServiceError("InvalidParameterValue", f"Input {identifier}: {text[:60]!r} is not allowed; allowed: "
                       f"{', '.join(described)}.", identifier)


def literal_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ---------------------------------------------------------------------------------------------
# execution


@dataclass
class Submission:
    uuid: str
    process: object
    asynchronous: bool
    response: object = None  # the LakesExecuteResponse


def new_job_id():
    return str(uuidlib.uuid4())  # random: the id is the key to the job's status and outputs


def submit(service, process, inputs, outputs, asynchronous, protocol, job_uuid=None, extra=None):
    """Run or queue a job through PyWPS's Execute. ``inputs`` are already in PyWPS shape.

    ``outputs``: {identifier: OutputChoice}. A process that always runs asynchronously (train)
    is queued whatever ``asynchronous`` says; the returned Submission tells which happened.
    """
    job_uuid = job_uuid or new_job_id()
    outputs = dict(outputs or {})
    definitions = {o.identifier: o for o in process.outputs}
    for identifier, choice in outputs.items():
        if identifier not in definitions:
            raise ServiceError("NoSuchOutput", f"Process {process.identifier} has no output {identifier!r}; its "
                               f"outputs are {', '.join(definitions)}.", identifier)
        if choice.mime_type:
            formats = [f.mime_type for f in getattr(definitions[identifier], "supported_formats", [])]
            if formats and choice.mime_type not in formats:
                raise ServiceError("NoSuchFormat", f"Output {identifier} is offered as {', '.join(formats)}, not "
                                   f"{choice.mime_type!r}.", identifier)
    asynchronous = bool(asynchronous or getattr(process, "always_async", False))
    request = WPSRequest()
    request.operation = "execute"
    request.version = "2.0.0" if protocol == "wps2" else "1.0.0"
    request.language = configuration.get_config_value("server", "language").split(",")[0].strip() or "en-US"
    request.identifier = process.identifier
    request.identifiers = [process.identifier]
    request.store_execute = "true" if asynchronous else "false"
    request.status = "true" if asynchronous else "false"
    request.lineage = "false"
    request.raw = False
    request.inputs = inputs
    request.outputs = {oid: {oid: "", "mimetype": choice.mime_type, "encoding": "", "schema": "", "uom": "",
                             "asReference": "false" if choice.transmission == "value" else "true"}
                       for oid, choice in outputs.items()}
    write_protocol_record(job_uuid, protocol, outputs, extra)
    dblog.log_request(job_uuid, request)
    try:
        response = service.execute(process.identifier, request, job_uuid)
    except NoApplicableCode as exc:
        dblog.store_status(job_uuid, WPS_STATUS.FAILED, "Request rejected: " + str(exc.description), 100)
        code, status = PYWPS_CODES.get(type(exc).__name__, ("NoApplicableCode", 400))
        raise ServiceError(code, str(exc.description) or code, exc.locator or "", status) from None
    except LakesError as exc:
        dblog.store_status(job_uuid, WPS_STATUS.FAILED, "Request rejected: " + str(exc), 100)
        raise ServiceError("InvalidParameterValue", str(exc)) from None
    except OSError:  # a file:// reference to a file that is not there (PyWPS links or copies it)
        dblog.store_status(job_uuid, WPS_STATUS.FAILED, "Request rejected: an input file is missing", 100)
        raise ServiceError("InvalidParameterValue", "An input given as a file:// reference names no readable "
                           "file on the server.") from None
    except Exception:
        LOGGER.exception("job %s (%s) could not be started", job_uuid, process.identifier)
        dblog.store_status(job_uuid, WPS_STATUS.FAILED, "Request rejected due to an internal error", 100)
        raise ServiceError("NoApplicableCode", f"Internal error starting {process.identifier}, job {job_uuid}. "
                           "This is a fault of the service; please report it with the job id.", "", 500) from None
    return Submission(job_uuid, process, asynchronous, response)


def write_protocol_record(job_uuid, protocol, outputs, extra=None):
    record = {"protocol": protocol, "outputs": {oid: {"transmission": c.transmission, "mime_type": c.mime_type}
                                                for oid, c in outputs.items()}}
    record.update(extra or {})
    jobfiles.write_json_atomic(jobfiles.job_dir(job_uuid) / PROTOCOL_FILE, record)


def read_protocol_record(job_uuid):
    path = jobfiles.job_dir(job_uuid) / PROTOCOL_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# job views


def _utc(value):
    """A naive local datetime from the job database (PyWPS writes datetime.now()) -> aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if value.tzinfo is None:
        value = value.astimezone()
    return value.astimezone(datetime.UTC)


def isotime(value):
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


@dataclass
class JobView:
    uuid: str
    process: str
    status: str  # accepted | running | succeeded | failed | dismissed
    percent: int
    message: str
    created: datetime.datetime = None
    updated: datetime.datetime = None
    outputs: dict = field(default_factory=dict)  # identifier -> {"href", "mime_type"} | {"data"}
    owner: str = users.ANONYMOUS

    @property
    def finished(self):
        return self.status in ("succeeded", "failed", "dismissed")

    @property
    def internal_failure(self):
        return self.status == "failed" and INTERNAL_ERROR_MARK in (self.message or "")

    @property
    def finished_at(self):
        return self.updated if self.finished else None

    @property
    def started(self):
        return self.created if self.status != "accepted" else None

    def estimated_completion(self):
        """A linear estimate from the progress so far (running jobs with some progress only)."""
        if self.status != "running" or not self.created or not 0 < self.percent < 100:
            return None
        elapsed = (datetime.datetime.now(datetime.UTC) - self.created).total_seconds()
        return self.created + datetime.timedelta(seconds=elapsed * 100.0 / self.percent)

    def next_poll(self):
        if self.finished:
            return None
        now = datetime.datetime.now(datetime.UTC)
        eta = self.estimated_completion()
        seconds = 2.0
        if eta:
            seconds = min(60.0, max(1.0, (eta - now).total_seconds() / 10.0))
        return now + datetime.timedelta(seconds=seconds)


def _view(info):
    record = jobfiles.read_status_record(info.uuid) or {}
    outputs = record.get("outputs") or {}
    message = info.message or record.get("message") or ""
    if message.startswith("Process error: "):  # PyWPS's prefix on a failed job's message
        message = message[len("Process error: "):]
    percent = int(info.percent or 0)
    if info.status == "succeeded":
        percent = 100
    return JobView(uuid=info.uuid, process=info.process, status=info.status, percent=max(0, min(100, percent)),
                   message=message, created=_utc(info.created),
                   updated=_utc(record.get("updated")) or _utc(info.updated), outputs=outputs, owner=info.owner)


def job_view(job_uuid):
    if not job_uuid or not re.fullmatch(r"[A-Za-z0-9-]{1,64}", str(job_uuid)):
        return None
    info = store.get_job(str(job_uuid))
    return _view(info) if info else None


def list_job_views(requester, limit=100, process=None):
    """The jobs ``requester`` may see: their own, or every job for an admin. No one else's job id is
    ever listed: the id is the key to a job's status and outputs."""
    owner = None if requester.admin else requester.user
    return [_view(info) for info in store.list_jobs(limit=limit, process=process, owner=owner)]


def dismiss(job_uuid, requester):
    """Dismiss a job of the requester's own (any job for an admin); ServiceError 403 otherwise."""
    info = store.get_job(str(job_uuid))
    if info is None:
        return None
    if not requester.may_manage(info.owner):
        raise ServiceError("NoApplicableCode", f"Job {job_uuid} was started by another user: only its owner or an "
                           "admin may dismiss it.", "jobID", 403)
    info = store.dismiss(str(job_uuid))
    return _view(info) if info else None


# ---------------------------------------------------------------------------------------------
# output values


def output_file(href):
    """The local file behind an output URL of this service, or None."""
    try:
        return own_output_file(href, settings.reference_policy())
    except LakesError:
        return None


def output_bytes(href, explicit):
    """The bytes of an output for transmission by value, or None when it should go by reference."""
    path = output_file(href)
    if path is None:
        if explicit:
            raise ServiceError("NoApplicableCode", "This output can only be given by reference.", "", 400)
        return None
    size = path.stat().st_size
    if size > INLINE_HARD_MAX or (not explicit and size > INLINE_DEFAULT_MAX):
        if explicit:
            raise ServiceError("SizeExceeded", f"The output is {size:,} bytes, too large to return by value; ask for "
                               "it by reference.", "", 413)
        return None
    return path.read_bytes()


def wants_value(choice):
    """Transmission of an output: by value unless asked by reference (the standards' default)."""
    return choice is None or choice.transmission in (None, "value")
