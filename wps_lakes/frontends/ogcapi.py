"""OGC API - Processes - Part 1: Core 1.0 (OGC 18-062r2) over the same processes and jobs.

Resources (relative to the service root, beside /wps and /outputs):

- ``/`` landing page, ``/conformance``, ``/api`` (OpenAPI 3.0 document, ``ogcapi_openapi``)
- ``/processes``, ``/processes/{processID}``: descriptions derived from the PyWPS process
  definitions (the one source of truth), inputs and outputs with JSON schemas
- ``POST /processes/{processID}/execution``: synchronous, or asynchronous with ``Prefer:
  respond-async`` (201, ``Location: /jobs/{jobID}``); ``train`` always runs asynchronously
- ``/jobs``, ``/jobs/{jobID}``, ``/jobs/{jobID}/results``, ``DELETE /jobs/{jobID}``

Every execution goes through PyWPS's Execute (``bridge.submit``); jobs are the same as in
WPS 1.0.0 and 2.0.0. JSON by default; HTML where a browser asks (``Accept: text/html`` or ``f=html``).
Errors are RFC 7807 problem documents with the standard's exception types.
"""
import base64
import json
import re
import uuid as uuidlib
from urllib.parse import urlencode

from pywps import configuration
from pywps.inout.literaltypes import AllowedValue, AnyValue
from pywps.validator.allowed_value import ALLOWEDVALUETYPE, RANGECLOSURETYPE
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Response

from ..runtime import users
from . import bridge
from .ogcapi_pages import Pages
from .ogcapi_pages import static as static_file

EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
REQ = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/req/"
REL = "http://www.opengis.net/def/rel/ogc/1.0/"
CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"
CONFORMANCE = [CONF + c for c in ("core", "ogc-process-description", "json", "html", "oas30", "job-list",
                                  "dismiss")]
OPENAPI_TYPE = "application/vnd.oai.openapi+json;version=3.0"
PROBLEM_TYPE = "application/problem+json"
STATUS = {"accepted": "accepted", "running": "running", "succeeded": "successful", "failed": "failed",
          "dismissed": "dismissed"}
STATUS_FROM_OGC = {v: k for k, v in STATUS.items()}
LIST_ITEMS, LIST_ITEM_CHARS = 20, 100  # bounds of the list parameters of /jobs (also in /api)
MAX_SECONDS = 10 ** 9  # bound of offset, minDuration and maxDuration (also in the OpenAPI document)
NUMBER_TYPES = {"float": "number", "scale": "number", "angle": "number", "integer": "integer",
                "positiveInteger": "integer", "nonNegativeInteger": "integer", "boolean": "boolean"}
STRING_FORMATS = {"anyURI": "uri", "date": "date", "dateTime": "date-time", "time": "time"}
# ServiceError code -> (type, HTTP status when the error does not say)
ERROR_TYPES = {
    "NoSuchProcess": EXC + "no-such-process",
    "NoSuchJob": EXC + "no-such-job",
    "ResultNotReady": EXC + "result-not-ready",
    "InvalidParameterValue": REQ + "core/process-execute-input-validation",
    "MissingParameterValue": REQ + "core/process-execute-input-validation",
    "NoSuchInput": REQ + "core/process-execute-inputs",
    "TooManyInputs": REQ + "core/process-execute-inputs",
    "NoSuchOutput": REQ + "core/process-execute-request",
    "NoSuchFormat": REQ + "core/process-execute-request",
    "SizeExceeded": REQ + "core/http",
    "ServerBusy": REQ + "core/http",
    "NoApplicableCode": REQ + "core/http",
}


class Problem(Exception):
    def __init__(self, status, type_, title, detail=""):
        super().__init__(detail or title)
        self.status, self.type, self.title, self.detail = status, type_, title, detail


def problem_from(error):
    title = error.code if error.code != "NoApplicableCode" else HTTP_STATUS_CODES.get(error.status, error.code)
    return Problem(error.status, ERROR_TYPES.get(error.code, REQ + "core/http"), title, error.message)


def job_id_ok(job_id):
    return bool(re.fullmatch(r"[A-Za-z0-9-]{1,64}", job_id or ""))


class OGCAPI:
    def __init__(self, app):
        self.app = app
        self.service = app.wps
        url = configuration.get_config_value("server", "url").rstrip("/")
        self.base = url[: -len(app.wps_path)] if app.wps_path and url.endswith(app.wps_path) else url.rsplit("/", 1)[0]
        self.prefix = app.wps_path.rsplit("/", 1)[0]
        self.templates = None
        self.pages = Pages(self)

    # -- dispatch ----------------------------------------------------------------------------

    def answer(self, request):
        path = request.path
        if self.prefix and path.startswith(self.prefix):
            path = path[len(self.prefix):]
        path = path.rstrip("/")
        routes = [
            (r"", {"GET": self.landing}),
            (r"/conformance", {"GET": self.conformance}),
            (r"/api", {"GET": self.api}),
            (r"/processes", {"GET": self.processes}),
            (r"/processes/(?P<process_id>[^/]+)", {"GET": self.process}),
            (r"/processes/(?P<process_id>[^/]+)/execution", {"POST": self.execute}),
            (r"/jobs", {"GET": self.jobs}),
            (r"/jobs/(?P<job_id>[^/]+)", {"GET": self.job, "DELETE": self.dismiss}),
            (r"/jobs/(?P<job_id>[^/]+)/results", {"GET": self.results}),
            (r"/jobs/(?P<job_id>[^/]+)/files", {"GET": self.job_files}),
            (r"/static/(?P<name>[^/]+)", {"GET": self.static}),
        ]
        for pattern, methods in routes:
            match = re.fullmatch(pattern, path)
            if not match:
                continue
            method = "GET" if request.method == "HEAD" else request.method
            try:
                self.wants_html(request)  # an invalid f is refused whatever the resource
                if method not in methods:
                    raise Problem(405, REQ + "core/http", "Method not allowed",
                                  f"{request.method} is not allowed on {request.path}; use "
                                  f"{', '.join(sorted(methods))}.")
                return methods[method](request, **match.groupdict())
            except Problem as problem:
                response = self.problem(problem, request)
                if problem.status == 405:
                    response.headers["Allow"] = ", ".join(sorted(methods))
                return response
            except bridge.ServiceError as error:
                return self.problem(problem_from(error), request)
        return None

    # -- representations ---------------------------------------------------------------------

    def url(self, path, **params):
        query = {k: v for k, v in params.items() if v is not None}
        return self.base + self.prefix + path + (("?" + urlencode(query)) if query else "")

    def wants_html(self, request):
        f = request.args.get("f")
        if len(request.args.getlist("f")) > 1:
            f = ""
        if f is not None:
            if f not in ("json", "html"):
                raise Problem(400, REQ + "core/http", "Invalid parameter f", f"f={f!r}: use json or html.")
            return f == "html"
        accept = request.accept_mimetypes
        best = accept.best_match(["application/json", "text/html"])
        return best == "text/html" and accept["text/html"] > accept["application/json"]

    def self_links(self, request, path, title, **params):
        html = self.wants_html(request)
        return [
            {"href": self.url(path, f="html" if html else "json", **params), "rel": "self",
             "type": "text/html" if html else "application/json", "title": title},
            {"href": self.url(path, f="json" if html else "html", **params), "rel": "alternate",
             "type": "application/json" if html else "text/html", "title": title},
        ]

    def render(self, request, document, title, status=200, headers=None):
        if self.wants_html(request):
            return Response(self.html(document, title), status=status, headers=headers,
                            content_type="text/html; charset=utf-8")
        return Response(json.dumps(document, indent=2), status=status, headers=headers,
                        content_type="application/json")

    def html(self, document, title):
        if self.templates is None:
            from jinja2 import Environment, PackageLoader, select_autoescape

            self.templates = Environment(loader=PackageLoader("wps_lakes", "templates"),
                                         autoescape=select_autoescape(["html"]))
        page = self.templates.get_template("ogcapi/page.html")
        return page.render(title=title, document=document, links=document.get("links", []) if isinstance(
            document, dict) else [], service_title=configuration.get_config_value("metadata:main",
                                                                                 "identification_title"),
            root=self.url("/"))

    def problem(self, problem, request):
        document = {"type": problem.type, "title": problem.title, "status": problem.status,
                    "detail": problem.detail, "instance": request.path}
        try:
            html = self.wants_html(request)
        except Problem:
            html = False
        if html:
            return Response(self.html(document, problem.title), status=problem.status,
                            content_type="text/html; charset=utf-8")
        return Response(json.dumps(document, indent=2), status=problem.status, content_type=PROBLEM_TYPE)

    # -- landing, conformance, api -----------------------------------------------------------

    def landing(self, request):
        meta = lambda key: configuration.get_config_value("metadata:main", key) or ""  # noqa: E731
        links = self.self_links(request, "/", "This document") + [
            {"href": self.url("/api"), "rel": "service-desc", "type": OPENAPI_TYPE, "title": "The API definition"},
            {"href": self.url("/api", f="html"), "rel": "service-doc", "type": "text/html",
             "title": "The API documentation"},
            {"href": self.url("/conformance"), "rel": REL + "conformance", "type": "application/json",
             "title": "Conformance declaration"},
            {"href": self.url("/processes"), "rel": REL + "processes", "type": "application/json",
             "title": "Processes"},
            {"href": self.url("/jobs"), "rel": REL + "job-list", "type": "application/json", "title": "Jobs"},
            {"href": configuration.get_config_value("server", "url"), "rel": "alternate", "type": "application/xml",
             "title": "The same processes and jobs as an OGC WPS 1.0.0 / 2.0.0"},
        ]
        return self.render(request, {"title": meta("identification_title"),
                                     "description": meta("identification_abstract"), "links": links},
                           "Landing page")

    def conformance(self, request):
        return self.render(request, {"conformsTo": CONFORMANCE,
                                     "links": self.self_links(request, "/conformance", "Conformance")},
                           "Conformance")

    def api(self, request):
        from .ogcapi_openapi import openapi_document

        document = openapi_document(self)
        if self.wants_html(request):
            return Response(self.html(document, "API definition (OpenAPI 3.0)"),
                            content_type="text/html; charset=utf-8")
        return Response(json.dumps(document, indent=2), content_type=OPENAPI_TYPE)

    # -- processes ---------------------------------------------------------------------------

    def get_process(self, process_id):
        process = self.service.processes.get(process_id)
        if process is None:
            raise Problem(404, EXC + "no-such-process", "No such process",
                          f"No process {process_id!r}; this service offers {', '.join(self.service.processes)}.")
        return process

    def summary(self, process):
        document = {"id": process.identifier, "title": process.title, "description": process.abstract or "",
                    "version": str(process.version or "1.0"), "keywords": list(process.keywords or []),
                    "metadata": [metadata_json(m) for m in process.metadata or []],
                    "jobControlOptions": bridge.process_modes(process),
                    "outputTransmission": ["value", "reference"]}
        document["links"] = [
            {"href": self.url(f"/processes/{process.identifier}"), "rel": REL + "process-desc",
             "type": "application/json", "title": f"Description of {process.identifier}"},
            {"href": self.url(f"/processes/{process.identifier}", f="html"), "rel": "alternate",
             "type": "text/html", "title": f"Description of {process.identifier} (HTML)"},
        ]
        return document

    def processes(self, request):
        limit = int_param(request, "limit", 10, 1, 10000)
        summaries = [self.summary(p) for p in self.service.processes.values()][:limit]
        if self.wants_html(request):
            return self.pages.processes(summaries)
        return self.render(request, {"processes": summaries,
                                     "links": self.self_links(request, "/processes", "Processes")}, "Processes")

    def process(self, request, process_id):
        process = self.get_process(process_id)
        document = self.summary(process)
        document["inputs"] = {i.identifier: input_description(i) for i in process.inputs}
        document["outputs"] = {o.identifier: output_description(o) for o in process.outputs}
        document["links"] = self.self_links(request, f"/processes/{process_id}", process.title) + [
            {"href": self.url(f"/processes/{process_id}/execution"), "rel": REL + "execute",
             "type": "application/json", "title": f"Execute {process_id}"},
        ]
        if self.wants_html(request):
            return self.pages.process(process, document)
        return self.render(request, document, process.title)

    # -- execution ---------------------------------------------------------------------------

    def read_json_body(self, request):
        limit = max_request_bytes()
        if request.content_length is not None and request.content_length > limit:
            raise Problem(413, REQ + "core/http", "Request too large", f"The limit is {limit // 1048576} MB.")
        mimetype = request.mimetype or ""
        if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
            raise Problem(415, REQ + "core/process-execute-request", "Unsupported media type",
                          "The execute request is a JSON document (Content-Type: application/json).")
        request.max_content_length = limit
        try:
            body = json.loads(request.get_data(cache=True) or b"{}")
        except RequestEntityTooLarge:
            raise Problem(413, REQ + "core/http", "Request too large", f"The limit is {limit // 1048576} MB.") from None
        except (UnicodeDecodeError, ValueError) as exc:
            raise Problem(400, REQ + "core/process-execute-request", "Invalid execute request",
                          f"The body is not JSON: {exc}") from None
        except RecursionError:
            raise Problem(400, REQ + "core/process-execute-request", "Invalid execute request",
                          "The body is nested too deeply.") from None
        if not isinstance(body, dict):
            raise Problem(400, REQ + "core/process-execute-request", "Invalid execute request",
                          "The body must be a JSON object with inputs (and optionally outputs, response).")
        return body

    def execute(self, request, process_id):
        process = self.get_process(process_id)
        body = self.read_json_body(request)
        response_form = body.get("response", "raw")
        if response_form not in ("raw", "document"):
            raise Problem(400, REQ + "core/process-execute-request", "Invalid execute request",
                          "response must be raw or document.")
        if body.get("subscriber") is not None:
            raise Problem(400, REQ + "core/process-execute-request", "Callbacks not supported",
                          "This server does not implement the callback conformance class (subscriber).")
        inputs = body.get("inputs", {})
        outputs = body.get("outputs")
        if not isinstance(inputs, dict) or (outputs is not None and not isinstance(outputs, dict)):
            raise Problem(400, REQ + "core/process-execute-request", "Invalid execute request",
                          "inputs and outputs must be JSON objects keyed by identifier.")
        values = parse_inputs(process, inputs)
        choices = parse_outputs(outputs or {})
        prefer = ",".join(request.headers.getlist("Prefer")).lower()
        modes = bridge.process_modes(process)
        asynchronous = "sync-execute" not in modes or ("respond-async" in prefer and "async-execute" in modes)
        job_uuid = bridge.new_job_id()
        pywps_inputs = bridge.build_inputs(process, values, job_uuid)
        submission = bridge.submit(self.service, process, pywps_inputs, choices, asynchronous, "ogcapi", job_uuid,
                                   {"response": response_form})
        monitor = self.url(f"/jobs/{submission.uuid}")
        if submission.asynchronous:
            job = bridge.job_view(submission.uuid)
            headers = {"Location": monitor}
            if "respond-async" in prefer:
                headers["Preference-Applied"] = "respond-async"
            return Response(json.dumps(self.status_info(job), indent=2), status=201, headers=headers,
                            content_type="application/json")
        job = bridge.job_view(submission.uuid)
        headers = {"Link": f'<{monitor}>; rel="monitor"; type="application/json"'}
        if job is None or job.status != "succeeded":
            response = self.problem(self.failure(job), request)
            response.headers.update(headers)
            return response
        wanted = list(choices) or [o.identifier for o in process.outputs]
        if response_form == "document":
            return Response(json.dumps(self.results_document(job, wanted, choices), indent=2), headers=headers,
                            content_type="application/json")
        return self.raw_results(job, wanted, choices, headers)

    def failure(self, job):
        if job is None:
            return Problem(500, REQ + "core/job-results-failed", "Job failed", "The job ended without a status.")
        status = 500 if job.internal_failure else 400
        return Problem(status, REQ + "core/job-results-failed", "Job failed", job.message or "The job failed.")

    def output_value(self, oid, state, choice):
        """One entry of a results document: an inline (qualified) value or a link."""
        if "data" in state:
            return state["data"]
        mime_type = state.get("mime_type") or "application/octet-stream"
        if bridge.wants_value(choice):
            data = bridge.output_bytes(state["href"], explicit=bool(choice and choice.transmission == "value"))
            if data is not None:
                if bridge.is_json(mime_type):
                    try:
                        return {"value": json.loads(data), "mediaType": mime_type}
                    except ValueError:
                        pass
                if bridge.is_binary(mime_type):
                    return {"value": base64.b64encode(data).decode("ascii"), "mediaType": mime_type,
                            "encoding": "base64"}
                return {"value": data.decode("utf-8", errors="replace"), "mediaType": mime_type}
        return {"href": state["href"], "type": mime_type, "title": oid}

    def results_document(self, job, wanted, choices):
        return {oid: self.output_value(oid, job.outputs[oid], choices.get(oid))
                for oid in wanted if oid in job.outputs}

    def raw_results(self, job, wanted, choices, headers):
        present = [oid for oid in wanted if oid in job.outputs]
        by_reference = [oid for oid in present if not bridge.wants_value(choices.get(oid))]
        if present and len(by_reference) == len(present):  # /req/core/process-execute-sync-raw-ref
            links = [f'<{job.outputs[oid]["href"]}>; rel="{REL}results"; '
                     f'type="{job.outputs[oid].get("mime_type") or "application/octet-stream"}"; title="{oid}"'
                     for oid in present]
            response = Response(status=204, headers=headers)
            for link in links:
                response.headers.add("Link", link)
            return response
        if len(present) == 1:  # /req/core/process-execute-sync-raw-value-one
            oid = present[0]
            state = job.outputs[oid]
            if "data" in state:
                return Response(bridge.literal_text(state["data"]), headers=headers,
                                content_type="text/plain; charset=utf-8")
            data = bridge.output_bytes(state["href"], explicit=True)
            return Response(data, headers=headers, content_type=state.get("mime_type") or "application/octet-stream")
        # /req/core/process-execute-sync-raw-value-multi and -mixed-multi: multipart/related (RFC 2387)
        boundary = "wps-lakes-" + uuidlib.uuid4().hex
        parts = []
        for oid in present:
            state = job.outputs[oid]
            mime_type = state.get("mime_type") or "text/plain"
            head = [f"--{boundary}", f"Content-ID: <{oid}>"]
            if "data" in state:
                head.append("Content-Type: text/plain; charset=utf-8")
                payload = bridge.literal_text(state["data"]).encode()
            elif not bridge.wants_value(choices.get(oid)):
                head += [f"Content-Type: {mime_type}", f"Content-Location: {state['href']}"]
                payload = b""
            else:
                head.append(f"Content-Type: {mime_type}")
                payload = bridge.output_bytes(state["href"], explicit=True)
            parts.append("\r\n".join(head).encode() + b"\r\n\r\n" + payload + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        first = present[0] if present else ""
        content_type = f'multipart/related; boundary="{boundary}"; type="{job.outputs[first].get("mime_type", "")}"' \
            if present else f'multipart/related; boundary="{boundary}"'
        return Response(body, headers=headers, content_type=content_type)

    # -- jobs --------------------------------------------------------------------------------

    def status_info(self, job):
        document = {"type": "process", "processID": job.process, "jobID": job.uuid,
                    "status": STATUS.get(job.status, "accepted"), "message": job.message or "",
                    "progress": int(job.percent)}
        if users.current().admin:
            document["owner"] = job.owner
        for key, value in (("created", job.created), ("started", job.started), ("finished", job.finished_at),
                           ("updated", job.updated)):
            if value:
                document[key] = bridge.isotime(value)
        links = [{"href": self.url(f"/jobs/{job.uuid}"), "rel": "self", "type": "application/json",
                  "title": "Job status"},
                 {"href": self.url(f"/jobs/{job.uuid}", f="html"), "rel": "alternate", "type": "text/html",
                  "title": "Job status (HTML)"},
                 {"href": f"{configuration.get_config_value('server', 'url')}?" + urlencode(
                     {"service": "WPS", "version": "2.0.0", "request": "GetStatus", "jobID": job.uuid}),
                  "rel": "alternate", "type": "application/xml", "title": "Job status (WPS 2.0.0)"}]
        if job.status == "succeeded":
            links.append({"href": self.url(f"/jobs/{job.uuid}/results"), "rel": REL + "results",
                          "type": "application/json", "title": "Job results"})
        elif job.status in ("running", "accepted"):
            for oid, state in job.outputs.items():
                if "href" in state:  # checkpoints published while train runs
                    links.append({"href": state["href"], "rel": "related",
                                  "type": state.get("mime_type") or "application/octet-stream",
                                  "title": f"partial result {oid} (available while the job runs)"})
        document["links"] = links
        return document

    def get_job(self, job_id):
        job = bridge.job_view(job_id) if job_id_ok(job_id) else None
        if job is None:
            raise Problem(404, EXC + "no-such-job", "No such job", f"No job {job_id!r} on this server.")
        if job.status == "dismissed":  # a dismissed job is gone (its WPS 2.0 GetStatus still says Dismissed)
            raise Problem(404, EXC + "no-such-job", "No such job", f"Job {job_id} was dismissed.")
        return job

    def job(self, request, job_id):
        job = self.get_job(job_id)
        if self.wants_html(request):
            return self.pages.job(job, self.status_info(job))
        return self.render(request, self.status_info(job), f"Job {job_id}")

    def job_files(self, request, job_id):
        """What a job's page shows besides its status (JSON): pictures, checkpoints, metrics, log tail."""
        job = self.get_job(job_id)
        return Response(json.dumps(self.pages.files(job)), content_type="application/json",
                        headers={"Cache-Control": "no-cache"})

    def static(self, request, name):
        response = static_file(name)
        if response is None:
            raise Problem(404, REQ + "core/http", "Not found", f"No file {name[:60]!r} here.")
        return response

    def dismiss(self, request, job_id):
        self.get_job(job_id)
        job = bridge.dismiss(job_id, users.current())
        return self.render(request, self.status_info(job), f"Job {job_id}")

    def results(self, request, job_id):
        job = self.get_job(job_id)
        if job.status == "failed":
            raise self.failure(job)
        if job.status != "succeeded":
            raise Problem(404, EXC + "result-not-ready", "Result not ready",
                          f"Job {job_id} is {STATUS[job.status]}; poll {self.url('/jobs/' + job_id)}.")
        record = bridge.read_protocol_record(job.uuid) or {}
        choices = {oid: bridge.OutputChoice(c.get("transmission"), c.get("mime_type"))
                   for oid, c in (record.get("outputs") or {}).items()}
        if record.get("protocol") != "ogcapi":  # jobs from WPS 1.0.0/2.0.0: every output, by reference
            choices = {oid: bridge.OutputChoice("reference") for oid in job.outputs}
        wanted = list(choices) or list(job.outputs)
        return self.render(request, self.results_document(job, wanted, choices), f"Results of job {job_id}")

    def jobs(self, request):
        limit = int_param(request, "limit", 10, 1, 10000)
        offset = int_param(request, "offset", 0, 0, MAX_SECONDS)
        process_ids = list_param(request, "processID")
        statuses = list_param(request, "status")
        types = list_param(request, "type")
        for status in statuses:
            if status not in STATUS_FROM_OGC:
                raise Problem(400, REQ + "job-list/status-definition", "Invalid parameter status",
                              f"status={status!r}: use {', '.join(STATUS_FROM_OGC)}.")
        min_duration = int_param(request, "minDuration", None, 0, MAX_SECONDS)
        max_duration = int_param(request, "maxDuration", None, 0, MAX_SECONDS)
        interval = datetime_param(request)
        filtered = bool(statuses or interval or min_duration is not None or max_duration is not None
                        or len(process_ids) > 1)
        fetch = 10000 if filtered else offset + limit + 1
        shell_only = request.environ.get("wps_lakes.job_list_without_token") is not None
        views = [] if shell_only or (types and "process" not in types) else bridge.list_job_views(
            users.current(), limit=fetch, process=process_ids[0] if len(process_ids) == 1 else None)
        selected = []
        for job in views:
            if job.status == "dismissed":
                continue
            if process_ids and job.process not in process_ids:
                continue
            if statuses and STATUS.get(job.status) not in statuses:
                continue
            if interval and not in_interval(job.created, interval):
                continue
            duration = ((job.finished_at or job.updated or job.created) - job.created).total_seconds() \
                if job.created else 0
            if min_duration is not None and duration < min_duration:
                continue
            if max_duration is not None and duration > max_duration:
                continue
            selected.append(job)
        page = selected[offset: offset + limit]
        params = {k: v for k, v in request.args.items() if k not in ("f", "offset")}
        links = self.self_links(request, "/jobs", "Jobs", offset=offset or None, **params)
        if len(selected) > offset + limit:
            links.append({"href": self.url("/jobs", offset=offset + limit, **params), "rel": "next",
                          "type": "application/json", "title": "Next jobs"})
        if self.wants_html(request):
            return self.pages.jobs([self.status_info(j) for j in page], listed=not shell_only)
        return self.render(request, {"jobs": [self.status_info(j) for j in page], "links": links}, "Jobs")


# ---------------------------------------------------------------------------------------------
# parameters


def max_request_bytes():
    return int(configuration.get_size_mb(configuration.get_config_value("server", "maxrequestsize")) * 1024 * 1024)


def int_param(request, name, default, minimum, maximum):
    values = request.args.getlist(name)
    if not values:
        return default
    value = values[0] if len(values) == 1 else ""
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or not minimum <= number <= maximum:
        raise Problem(400, REQ + "core/http", f"Invalid parameter {name}",
                      f"{name} must be an integer from {minimum} to {maximum}.")
    return number


def list_param(request, name):
    """A form-style array parameter (comma-separated, possibly repeated); empty items are ignored."""
    values = []
    for value in request.args.getlist(name):
        values += value.split(",") if value else []  # name= is the empty list
    if len(values) > LIST_ITEMS or any(len(v) > LIST_ITEM_CHARS for v in values):
        raise Problem(400, REQ + "core/http", f"Invalid parameter {name}",
                      f"{name} is a comma-separated list of at most {LIST_ITEMS} values of at most "
                      f"{LIST_ITEM_CHARS} characters.")
    return [v for v in values if v]


def datetime_param(request):
    import datetime as dt

    from .ogcapi_openapi import DATETIME_PATTERN

    values = request.args.getlist("datetime")
    if not values:
        return None
    value = values[0]
    if len(values) > 1 or not re.fullmatch(DATETIME_PATTERN, value):
        raise Problem(400, REQ + "job-list/datetime-definition", "Invalid parameter datetime",
                      "datetime is an RFC 3339 date-time or an interval start/end (.. for open).")

    def parse(text):
        if text in ("", ".."):
            return None
        try:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise Problem(400, REQ + "job-list/datetime-definition", "Invalid parameter datetime",
                          "datetime is an RFC 3339 date-time or an interval start/end (.. for open).") from None
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)

    if "/" in value:
        start, end = value.split("/", 1)
        return parse(start), parse(end)
    moment = parse(value)
    return moment, moment


def in_interval(moment, interval):
    if moment is None:
        return False
    start, end = interval
    if start and end and start == end:
        return abs((moment - start).total_seconds()) < 1
    return (start is None or moment >= start) and (end is None or moment <= end)


# ---------------------------------------------------------------------------------------------
# descriptions and input parsing


def metadata_json(meta):
    document = {"title": meta.title}
    if meta.href:
        document["href"] = meta.href
    if meta.role:
        document["role"] = meta.role
    return document


def format_schema(fmt):
    if bridge.is_json(fmt.mime_type):
        return {"type": "object", "contentMediaType": fmt.mime_type}
    if bridge.is_binary(fmt.mime_type):
        return {"type": "string", "contentEncoding": "base64", "contentMediaType": fmt.mime_type}
    return {"type": "string", "contentMediaType": fmt.mime_type}


def literal_schema(definition, with_default=True):
    data_type = getattr(definition, "data_type", None) or "string"
    schema = {"type": NUMBER_TYPES.get(data_type, "string")}
    if data_type in STRING_FORMATS:
        schema["format"] = STRING_FORMATS[data_type]
    if data_type == "positiveInteger":
        schema["minimum"] = 1
    if data_type == "nonNegativeInteger":
        schema["minimum"] = 0
    allowed = [v for v in (getattr(definition, "allowed_values", None) or [])
               if isinstance(v, AllowedValue) and not isinstance(v, AnyValue)]
    values = [v for v in allowed if v.allowed_type != ALLOWEDVALUETYPE.RANGE]
    ranges = [v for v in allowed if v.allowed_type == ALLOWEDVALUETYPE.RANGE]
    if values and not ranges:
        schema["enum"] = [typed(schema["type"], v.value) for v in values]
    elif len(ranges) == 1 and not values:
        schema.update(range_schema(schema["type"], ranges[0]))
    elif ranges or values:
        alternatives = [range_schema(schema["type"], r) for r in ranges]
        if values:
            alternatives.append({"enum": [typed(schema["type"], v.value) for v in values]})
        schema["anyOf"] = alternatives
    default = getattr(definition, "_default", None)
    if with_default and default is not None:
        schema["default"] = typed(schema["type"], default)
    return schema


def range_schema(json_type, value):
    schema = {}
    if value.minval is not None:
        schema["minimum"] = typed(json_type, value.minval)
        if value.range_closure in (RANGECLOSURETYPE.OPEN, RANGECLOSURETYPE.OPENCLOSED):
            schema["exclusiveMinimum"] = True
    if value.maxval is not None:
        schema["maximum"] = typed(json_type, value.maxval)
        if value.range_closure in (RANGECLOSURETYPE.OPEN, RANGECLOSURETYPE.CLOSEDOPEN):
            schema["exclusiveMaximum"] = True
    return schema


def typed(json_type, value):
    try:
        if json_type == "number":
            return float(value)
        if json_type == "integer":
            return int(value)
        if json_type == "boolean":
            return value if isinstance(value, bool) else str(value).lower() in ("true", "1")
    except (TypeError, ValueError):
        pass
    return value if isinstance(value, (str, int, float, bool)) else str(value)


def data_schema(definition, with_default=True):
    kind = output_kind(definition)
    if kind == "complex":
        schemas = [format_schema(f) for f in definition.supported_formats]
        return schemas[0] if len(schemas) == 1 else {"oneOf": schemas}
    if kind == "bbox":
        return {"type": "object", "required": ["bbox"], "properties": {
            "bbox": {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
            "crs": {"type": "string", "format": "uri"}}}
    return literal_schema(definition, with_default)


def output_kind(definition):
    name = type(definition).__name__
    return "complex" if "Complex" in name else "bbox" if "BoundingBox" in name else "literal"


def input_description(definition):
    document = {"title": definition.title or definition.identifier, "description": definition.abstract or "",
                "minOccurs": int(definition.min_occurs),
                "maxOccurs": int(definition.max_occurs) if definition.max_occurs < 10 ** 6 else "unbounded",
                "schema": data_schema(definition)}
    if definition.keywords:
        document["keywords"] = list(definition.keywords)
    if definition.metadata:
        document["metadata"] = [metadata_json(m) for m in definition.metadata]
    return document


def output_description(definition):
    return {"title": definition.title or definition.identifier, "description": definition.abstract or "",
            "schema": data_schema(definition, with_default=False)}


def invalid(identifier, message):
    return bridge.ServiceError("InvalidParameterValue", f"Input {identifier}: {message}", identifier)


def parse_inputs(process, inputs):
    """The execute request's inputs -> {identifier: [bridge.InputValue]}, checked against the schemas."""
    definitions = {d.identifier: d for d in process.inputs}
    values = {}
    for identifier, given in inputs.items():
        definition = definitions.get(identifier)
        if definition is None:
            raise bridge.ServiceError("NoSuchInput", f"Process {process.identifier} has no input {identifier!r}; "
                                      f"its inputs are {', '.join(definitions)}.", identifier)
        kind = bridge.input_kind(definition)
        items = given if isinstance(given, list) and not (kind == "complex" and definition.max_occurs == 1
                                                          and _json_only(definition)) else [given]
        if isinstance(given, list) and definition.max_occurs == 1 and kind != "complex":
            raise invalid(identifier, "takes one value, not an array.")
        values[identifier] = [parse_value(definition, kind, item) for item in items]
    return values


def _json_only(definition):
    return all(bridge.is_json(f.mime_type) for f in definition.supported_formats)


def parse_value(definition, kind, item):
    identifier = definition.identifier
    if isinstance(item, dict) and "href" in item:
        if not isinstance(item["href"], str) or not item["href"]:
            raise invalid(identifier, "href must be a URL string.")
        mime_type = item.get("type")
        if mime_type is not None and not isinstance(mime_type, str):
            raise invalid(identifier, "type must be a media type string.")
        return bridge.InputValue("href", item["href"], mime_type)
    if kind == "bbox":
        if not isinstance(item, dict) or not isinstance(item.get("bbox"), list) or len(item["bbox"]) not in (4, 6) \
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in item["bbox"]):
            raise invalid(identifier, "a bounding box is {\"bbox\": [minx, miny, maxx, maxy], \"crs\": ...}.")
        return bridge.InputValue("data", item["bbox"], crs=item.get("crs"))
    media_type = encoding = None
    value = item
    if isinstance(item, dict) and "value" in item:
        media_type = item.get("mediaType")
        encoding = item.get("encoding")
        if (media_type is not None and not isinstance(media_type, str)) or \
                (encoding is not None and not isinstance(encoding, str)):
            raise invalid(identifier, "mediaType and encoding must be strings.")
        value = item["value"]
    if kind == "literal":
        return bridge.InputValue("data", check_literal(definition, value))
    fmt = definition.supported_formats[0]
    if media_type:
        fmt = next((f for f in definition.supported_formats if f.mime_type == media_type), None)
        if fmt is None:
            raise invalid(identifier, f"media type {media_type!r} is not accepted; use one of "
                          f"{', '.join(f.mime_type for f in definition.supported_formats)}.")
    if isinstance(value, (dict, list)):
        if not bridge.is_json(fmt.mime_type):
            json_fmt = next((f for f in definition.supported_formats if bridge.is_json(f.mime_type)), None)
            if json_fmt is None or media_type:
                raise invalid(identifier, f"{fmt.mime_type} data is given as a base64 string or by reference.")
            fmt = json_fmt
        return bridge.InputValue("data", value, fmt.mime_type)
    if not isinstance(value, str):
        raise invalid(identifier, "give an object (JSON), a string (base64 for binary data) or {\"href\": URL}.")
    if bridge.is_binary(fmt.mime_type) and (encoding or "base64") != "base64":
        raise invalid(identifier, "binary data is given base64-encoded (encoding: base64).")
    return bridge.InputValue("data", value, fmt.mime_type, encoding)


def check_literal(definition, value):
    schema = literal_schema(definition)
    json_type = schema["type"]
    identifier = definition.identifier
    ok = {"number": isinstance(value, (int, float)) and not isinstance(value, bool),
          "integer": isinstance(value, int) and not isinstance(value, bool),
          "boolean": isinstance(value, bool),
          "string": isinstance(value, str)}[json_type]
    if json_type == "integer" and isinstance(value, float) and value.is_integer():
        value, ok = int(value), True
    if not ok:
        raise invalid(identifier, f"expected a JSON {json_type}, got {json.dumps(value)[:60]}.")
    if json_type == "number" and value != value:
        raise invalid(identifier, "NaN is not a number here.")
    if not literal_allowed(schema, value):
        raise invalid(identifier, f"{json.dumps(value)[:60]} is not allowed ({describe_allowed(schema)}).")
    return value


def literal_allowed(schema, value):
    if "enum" in schema and value not in schema["enum"]:
        return False
    if "anyOf" in schema:
        return any(literal_allowed(s, value) for s in schema["anyOf"])
    if "minimum" in schema and (value < schema["minimum"] or (schema.get("exclusiveMinimum") and
                                                                value == schema["minimum"])):
        return False
    if "maximum" in schema and (value > schema["maximum"] or (schema.get("exclusiveMaximum") and
                                                                value == schema["maximum"])):
        return False
    return True


def describe_allowed(schema):
    if "enum" in schema:
        return "one of " + ", ".join(map(str, schema["enum"]))
    parts = []
    if "minimum" in schema:
        parts.append(f"minimum {schema['minimum']}")
    if "maximum" in schema:
        parts.append(f"maximum {schema['maximum']}")
    return ", ".join(parts) or "see the process description"


def parse_outputs(outputs):
    choices = {}
    for identifier, spec in outputs.items():
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise Problem(400, REQ + "core/process-execute-request", "Invalid execute request",
                          f"Output {identifier}: give transmissionMode and format {{mediaType}}.")
        mode = spec.get("transmissionMode")
        if mode not in (None, "value", "reference"):
            raise Problem(400, REQ + "core/process-execute-request", "Invalid execute request",
                          f"Output {identifier}: transmissionMode is value or reference.")
        fmt = spec.get("format") or {}
        if not isinstance(fmt, dict) or not isinstance(fmt.get("mediaType", ""), str):
            raise Problem(400, REQ + "core/process-execute-request", "Invalid execute request",
                          f"Output {identifier}: format is {{\"mediaType\": ...}}.")
        choices[identifier] = bridge.OutputChoice(mode, fmt.get("mediaType"))
    return choices
