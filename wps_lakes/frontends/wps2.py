"""WPS 2.0.0 (OGC 14-065r1) over the same processes and jobs as WPS 1.0.0.

PyWPS 4.8 answers WPS 1.0.0; this module answers every request that asks for 2.0.0:

- ``route(app, request)`` negotiates the version of a request to /wps: ``version=2.0.0``, an XML
  body in the WPS 2.0 namespace, ``AcceptVersions`` whose first supported entry is 2.0.0, or one
  of the 2.0-only operations (GetStatus, GetResult, Dismiss) comes here; everything else goes to
  PyWPS, so a 2.0 request is never answered with a 1.0 document.
- Operations: GetCapabilities, DescribeProcess (KVP and XML), Execute (XML POST; mode
  sync|async|auto, response document|raw), GetStatus, GetResult, Dismiss (KVP and XML).
- Execution goes through PyWPS's Execute (``bridge.submit``); job ids are shared with WPS
  1.0.0 and OGC API - Processes.
- ``train`` runs only asynchronously (jobControlOptions ``async-execute dismiss``): ``mode=auto``
  queues it, ``mode=sync`` is refused with NoSuchMode.
- Partial results: GetResult on a running job returns a ``wps:Result`` with the outputs published
  so far (the newest and best checkpoints of ``train``); with none yet, ResultNotReady.
- Errors are OWS 2.0 ExceptionReports with the HTTP status of their code.
"""
import base64
import io
import re
from urllib.parse import parse_qsl, urlencode

from lxml import etree
from lxml.builder import ElementMaker
from pywps import configuration
from pywps.inout.literaltypes import AllowedValue, AnyValue, ValuesReference
from pywps.validator.allowed_value import ALLOWEDVALUETYPE
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

from ..runtime import users
from . import bridge

NS_WPS = "http://www.opengis.net/wps/2.0"
NS_OWS = "http://www.opengis.net/ows/2.0"
NS_XLINK = "http://www.w3.org/1999/xlink"
NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"
NS_WPS1 = "http://www.opengis.net/wps/1.0.0"
SCHEMA_LOCATION = f"{NS_WPS} http://schemas.opengis.net/wps/2.0/wps.xsd"
OWS_SCHEMA_LOCATION = f"{NS_OWS} http://schemas.opengis.net/ows/2.0/owsExceptionReport.xsd"
NSMAP = {"wps": NS_WPS, "ows": NS_OWS, "xlink": NS_XLINK, "xsi": NS_XSI}
WPS = ElementMaker(namespace=NS_WPS, nsmap=NSMAP)
OWS = ElementMaker(namespace=NS_OWS, nsmap=NSMAP)
# dataTypes.xsd of WPS 2.0 has no elementFormDefault: its local element LiteralDataDomain is unqualified.
PLAIN = ElementMaker()
XML_TYPE = "application/xml; charset=utf-8"
SUPPORTED_VERSIONS = ("2.0.0", "1.0.0")
OPERATIONS = ("GetCapabilities", "DescribeProcess", "Execute", "GetStatus", "GetResult", "Dismiss")
WPS2_ONLY = ("getstatus", "getresult", "dismiss")
STATUS_NAMES = {"accepted": "Accepted", "running": "Running", "succeeded": "Succeeded", "failed": "Failed",
                "dismissed": "Dismissed"}
DATA_TYPES = {"float": "double", "integer": "integer", "boolean": "boolean", "string": "string",
              "positiveInteger": "positiveInteger", "anyURI": "anyURI", "date": "date", "time": "time",
              "dateTime": "dateTime", "scale": "double", "angle": "double", "nonNegativeInteger": "nonNegativeInteger"}


def xlink(name):
    return f"{{{NS_XLINK}}}{name}"


def ows_attr(name):
    return f"{{{NS_OWS}}}{name}"


# ---------------------------------------------------------------------------------------------
# responses


def xml_response(element, status=200, headers=None):
    body = etree.tostring(element, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return Response(body, status=status, content_type=XML_TYPE, headers=headers)


def exception_report(code, message, locator="", status=400):
    """An OWS 2.0 ExceptionReport (OGC 06-121r9 / 2.0)."""
    exception = OWS.Exception(OWS.ExceptionText(message or code), exceptionCode=code)
    if locator:
        exception.set("locator", locator)
    report = OWS.ExceptionReport(exception, version="2.0.0")
    report.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    report.set(f"{{{NS_XSI}}}schemaLocation", OWS_SCHEMA_LOCATION)
    return xml_response(report, status)


def error_response(error):
    return exception_report(error.code, error.message, error.locator, error.status)


# ---------------------------------------------------------------------------------------------
# version negotiation


def route(app, request):
    """The WSGI application that answers this request to /wps."""
    try:
        decision, body = negotiate(app, request)
    except bridge.ServiceError as error:
        return error_response(error)
    if decision == "wps2":
        return lambda environ, start_response: WPS2(app).answer(request, body)(environ, start_response)
    if decision == "pywps-1.0":  # AcceptVersions preferred 1.0.0: let PyWPS see only that version
        return _with_query(app.wps, request, acceptversions="1.0.0")
    if body is not None:  # the body was read here: hand PyWPS a fresh stream with the same bytes
        return _with_body(app.wps, body)
    return app.wps_documents


def _with_body(wsgi_app, body):
    def application(environ, start_response):
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return wsgi_app(environ, start_response)
    return application


def _with_query(wsgi_app, request, **replace):
    pairs = [(k, v) for k, v in parse_qsl(request.query_string.decode("latin-1"), keep_blank_values=True)
             if k.lower() not in replace]
    pairs += list(replace.items())

    def application(environ, start_response):
        environ["QUERY_STRING"] = urlencode(pairs)
        return wsgi_app(environ, start_response)
    return application


def kvp(request):
    """Query parameters with lower-case names (OWS KVP names are case-insensitive)."""
    return {k.lower(): v for k, v in request.args.items()}


def negotiate_versions(accept_versions):
    """The first version in the client's list that this server supports, or None."""
    for version in (v.strip() for v in accept_versions.split(",")):
        if version in SUPPORTED_VERSIONS:
            return version
    return None


def max_request_bytes():
    return int(configuration.get_size_mb(configuration.get_config_value("server", "maxrequestsize")) * 1024 * 1024)


def read_body(request):
    limit = max_request_bytes()
    if request.content_length is not None and request.content_length > limit:
        raise bridge.ServiceError("SizeExceeded", f"The request is larger than the server's limit of "
                                  f"{limit // (1024 * 1024)} MB.", "", 413)
    request.max_content_length = limit
    try:
        return request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise bridge.ServiceError("SizeExceeded", f"The request is larger than the server's limit of "
                                  f"{limit // (1024 * 1024)} MB.", "", 413) from None


def parse_xml(body):
    """Parse a request body safely: no DTD, no entities, no network, bounded size (read_body)."""
    head = body[:4096].lstrip()
    if re.search(rb"<!DOCTYPE|<!ENTITY", body, re.IGNORECASE):
        raise bridge.ServiceError("InvalidParameterValue", "XML requests with a DOCTYPE or entity declarations are "
                                  "not accepted.", "request")
    if not head.startswith(b"<"):
        raise bridge.ServiceError("InvalidParameterValue", "The request body is not an XML document.", "request")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                             huge_tree=False, remove_comments=True)
    try:
        return etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        raise bridge.ServiceError("InvalidParameterValue", f"The request is not well-formed XML: {exc.msg}",
                                  "request") from None


def accepted_versions(root):
    """The ows:Version values of a GetCapabilities request (OWS 2.0 or, in a 1.0 request, OWS 1.1)."""
    return [v.text.strip() for v in root.iter(f"{{{NS_OWS}}}Version", "{http://www.opengis.net/ows/1.1}Version")
            if v.text and v.text.strip()]


def negotiate(app, request):
    """("wps2" | "pywps" | "pywps-1.0", body or None) for a request to /wps."""
    if request.method == "POST":
        if "json" in (request.content_type or ""):
            return "pywps", None
        body = read_body(request)
        try:
            root = parse_xml(body)
        except bridge.ServiceError:
            if body.lstrip().startswith(b"<") and b"/wps/2.0" in body[:2048]:
                raise
            return "pywps", body  # PyWPS reports its own errors for what is not ours
        namespace = etree.QName(root).namespace
        if namespace == NS_WPS:
            return "wps2", body
        if namespace == NS_WPS1 and etree.QName(root).localname == "GetCapabilities" and accepted_versions(root):
            return "wps2", body  # negotiated here: PyWPS would take the last supported version, not the first
        return "pywps", body
    params = kvp(request)
    operation = (params.get("request") or "").lower()
    if operation in WPS2_ONLY:
        return "wps2", None
    if params.get("version") == "2.0.0":
        return "wps2", None
    if operation == "getcapabilities" and params.get("acceptversions"):
        chosen = negotiate_versions(params["acceptversions"])
        if chosen == "2.0.0":
            return "wps2", None
        if chosen is None:
            raise bridge.ServiceError("VersionNegotiationFailed", f"None of the versions {params['acceptversions']!r} "
                                      f"is supported; this server speaks {', '.join(SUPPORTED_VERSIONS)}.",
                                      "AcceptVersions")
        return "pywps-1.0", None
    return "pywps", None


# ---------------------------------------------------------------------------------------------
# the operations


class WPS2:
    def __init__(self, app):
        self.app = app
        self.service = app.wps
        self.url = configuration.get_config_value("server", "url")

    def answer(self, request, body):
        try:
            if request.method == "POST":
                return self.post(request, body)
            if request.method != "GET":
                raise bridge.ServiceError("OperationNotSupported", f"HTTP {request.method} is not supported; use GET "
                                          "or POST.", "request", 405)
            return self.get(request)
        except bridge.ServiceError as error:
            return error_response(error)

    # -- bindings --------------------------------------------------------------------------

    def get(self, request):
        params = kvp(request)
        service = params.get("service")
        if not service:
            raise bridge.ServiceError("MissingParameterValue", "Parameter service=WPS is missing.", "service")
        if service.upper() != "WPS":
            raise bridge.ServiceError("InvalidParameterValue", f"service={service!r}: this is a WPS.", "service")
        operation = params.get("request")
        if not operation:
            raise bridge.ServiceError("MissingParameterValue", "Parameter request is missing.", "request")
        name = {op.lower(): op for op in OPERATIONS}.get(operation.lower())
        if name is None:
            raise bridge.ServiceError("OperationNotSupported", f"Unknown operation {operation!r}; supported: "
                                      f"{', '.join(OPERATIONS)}.", "request", 501)
        if name != "GetCapabilities":
            self.check_version(params.get("version"), required=name not in ("GetStatus", "GetResult", "Dismiss"))
        if name == "GetCapabilities":
            return self.get_capabilities()
        if name == "DescribeProcess":
            identifiers = [i for i in (params.get("identifier") or "").split(",") if i]
            return self.describe_process(identifiers)
        if name == "Execute":
            raise bridge.ServiceError("OperationNotSupported", "WPS 2.0.0 Execute is an XML POST request "
                                      "(wps:Execute); the KVP binding has no Execute.", "request", 501)
        job_id = params.get("jobid")
        if not job_id:
            raise bridge.ServiceError("MissingParameterValue", "Parameter JobID is missing.", "JobID")
        return getattr(self, _method(name))(job_id)

    def post(self, request, body):
        root = parse_xml(body)
        qname = etree.QName(root)
        name = qname.localname
        if qname.namespace == NS_WPS1:  # a 1.0 GetCapabilities with AcceptVersions
            name = "GetCapabilities"
        if name not in OPERATIONS:
            raise bridge.ServiceError("OperationNotSupported", f"Unknown request {name!r}; supported: "
                                      f"{', '.join(OPERATIONS)}.", "request", 501)
        if root.get("service", "WPS") != "WPS":
            raise bridge.ServiceError("InvalidParameterValue", "service must be WPS.", "service")
        if name == "GetCapabilities":
            versions = accepted_versions(root)
            if versions:
                chosen = negotiate_versions(",".join(versions))
                if chosen is None:
                    raise bridge.ServiceError("VersionNegotiationFailed", f"None of the versions {versions} is "
                                              "supported; this server speaks 2.0.0 and 1.0.0.", "AcceptVersions")
                if chosen == "1.0.0":
                    return self.pywps_capabilities_1()
            return self.get_capabilities()
        self.check_version(root.get("version"), required=True)
        if name == "DescribeProcess":
            identifiers = [(e.text or "").strip() for e in root.findall(f"{{{NS_OWS}}}Identifier")]
            return self.describe_process(identifiers)
        if name == "Execute":
            return self.execute(root)
        job = root.find(f"{{{NS_WPS}}}JobID")
        if job is None or not (job.text or "").strip():
            raise bridge.ServiceError("MissingParameterValue", "wps:JobID is missing.", "JobID")
        return getattr(self, _method(name))(job.text.strip())

    def check_version(self, version, required):
        if not version:
            if required:
                raise bridge.ServiceError("MissingParameterValue", "Parameter version is missing (2.0.0).", "version")
            return
        if version != "2.0.0":
            raise bridge.ServiceError("InvalidParameterValue", f"version={version!r} is not 2.0.0 (WPS 1.0.0 "
                                      "requests name version=1.0.0).", "version")

    def pywps_capabilities_1(self):
        from werkzeug.test import EnvironBuilder

        builder = EnvironBuilder(path="/wps", query_string={"service": "WPS", "request": "GetCapabilities",
                                                            "version": "1.0.0"})
        try:
            return Response.from_app(self.service, builder.get_environ())
        finally:
            builder.close()

    # -- GetCapabilities ---------------------------------------------------------------------

    def get_capabilities(self):
        meta = lambda key: configuration.get_config_value("metadata:main", key) or ""  # noqa: E731
        keywords = [k.strip() for k in meta("identification_keywords").split(",") if k.strip()]
        identification = OWS.ServiceIdentification(
            OWS.Title(meta("identification_title")), OWS.Abstract(meta("identification_abstract")))
        if keywords:
            identification.append(OWS.Keywords(*[OWS.Keyword(k) for k in keywords]))
        identification.extend([OWS.ServiceType("WPS"), OWS.ServiceTypeVersion("2.0.0"),
                               OWS.ServiceTypeVersion("1.0.0"), OWS.Fees(meta("identification_fees") or "NONE"),
                               OWS.AccessConstraints(meta("identification_accessconstraints") or "NONE")])
        address = OWS.Address()
        for element, key in (("DeliveryPoint", "contact_address"), ("City", "contact_city"),
                             ("AdministrativeArea", "contact_stateorprovince"),
                             ("PostalCode", "contact_postalcode"), ("Country", "contact_country"),
                             ("ElectronicMailAddress", "contact_email")):
            if meta(key):
                address.append(getattr(OWS, element)(meta(key)))
        contact_info = OWS.ContactInfo()
        if meta("contact_phone"):
            contact_info.append(OWS.Phone(OWS.Voice(meta("contact_phone"))))
        contact_info.append(address)
        if meta("contact_url"):
            contact_info.append(OWS.OnlineResource(**{xlink("href"): meta("contact_url")}))
        if meta("contact_hours"):
            contact_info.append(OWS.HoursOfService(meta("contact_hours")))
        if meta("contact_instructions"):
            contact_info.append(OWS.ContactInstructions(meta("contact_instructions")))
        contact = OWS.ServiceContact(OWS.IndividualName(meta("contact_name")),
                                     OWS.PositionName(meta("contact_position")), contact_info)
        if meta("contact_role"):
            contact.append(OWS.Role(meta("contact_role")))
        provider = OWS.ServiceProvider(OWS.ProviderName(meta("provider_name")))
        if meta("provider_url"):
            provider.append(OWS.ProviderSite(**{xlink("href"): meta("provider_url")}))
        provider.append(contact)
        operations = OWS.OperationsMetadata()
        for operation in OPERATIONS:
            http = OWS.HTTP()
            if operation != "Execute":
                http.append(OWS.Get(**{xlink("href"): self.url}))
            http.append(OWS.Post(**{xlink("href"): self.url}))
            operations.append(OWS.Operation(OWS.DCP(http), name=operation))
        contents = WPS.Contents()
        for process in self.service.processes.values():
            summary = WPS.ProcessSummary(*description_elements(process), **process_attributes(process))
            contents.append(summary)
        root = WPS.Capabilities(identification, provider, operations, contents, service="WPS", version="2.0.0")
        root.set(f"{{{NS_XSI}}}schemaLocation", SCHEMA_LOCATION)
        return xml_response(root)

    # -- DescribeProcess ---------------------------------------------------------------------

    def describe_process(self, identifiers):
        if not identifiers:
            raise bridge.ServiceError("MissingParameterValue", "Parameter identifier is missing: name one or more "
                                      "processes, or ALL.", "Identifier")
        if [i.lower() for i in identifiers] == ["all"]:
            identifiers = list(self.service.processes)
        offerings = WPS.ProcessOfferings()
        for identifier in identifiers:
            process = bridge.get_process(self.service, identifier)
            offerings.append(WPS.ProcessOffering(process_element(process), **process_attributes(process)))
        offerings.set(f"{{{NS_XSI}}}schemaLocation", SCHEMA_LOCATION)
        return xml_response(offerings)

    # -- Execute -----------------------------------------------------------------------------

    def execute(self, root):
        identifier_el = root.find(f"{{{NS_OWS}}}Identifier")
        if identifier_el is None or not (identifier_el.text or "").strip():
            raise bridge.ServiceError("MissingParameterValue", "ows:Identifier of the process is missing.",
                                      "Identifier")
        process = bridge.get_process(self.service, identifier_el.text.strip())
        mode = root.get("mode")
        response_form = root.get("response")
        if mode not in ("sync", "async", "auto"):
            raise bridge.ServiceError("MissingParameterValue" if mode is None else "InvalidParameterValue",
                                      "Execute needs mode=\"sync\", \"async\" or \"auto\".", "mode")
        if response_form not in ("document", "raw"):
            raise bridge.ServiceError("MissingParameterValue" if response_form is None else "InvalidParameterValue",
                                      "Execute needs response=\"document\" or \"raw\".", "response")
        modes = bridge.process_modes(process)
        if mode == "sync" and "sync-execute" not in modes:
            raise bridge.ServiceError("NoSuchMode", f"Process {process.identifier} runs only asynchronously "
                                      "(jobControlOptions: async-execute dismiss): use mode=\"async\" or \"auto\".",
                                      "mode")
        asynchronous = mode == "async" or (mode == "auto" and "sync-execute" not in modes)
        outputs = {}
        for output in root.findall(f"{{{NS_WPS}}}Output"):
            oid = output.get("id")
            if not oid:
                raise bridge.ServiceError("MissingParameterValue", "wps:Output needs an id.", "Output")
            transmission = output.get("transmission")
            if transmission not in (None, "value", "reference"):
                raise bridge.ServiceError("InvalidParameterValue", f"Output {oid}: transmission must be value or "
                                          "reference.", oid)
            outputs[oid] = bridge.OutputChoice(transmission, output.get("mimeType"))
        if response_form == "raw" and not asynchronous and len(outputs) != 1:
            raise bridge.ServiceError("InvalidParameterValue", "response=\"raw\" returns exactly one output: name "
                                      "it with one wps:Output.", "response")
        values = {}
        for inpt in root.findall(f"{{{NS_WPS}}}Input"):
            iid = inpt.get("id")
            if not iid:
                raise bridge.ServiceError("MissingParameterValue", "wps:Input needs an id.", "Input")
            values.setdefault(iid, []).append(parse_input(iid, inpt))
        job_uuid = bridge.new_job_id()
        inputs = bridge.build_inputs(process, values, job_uuid)
        submission = bridge.submit(self.service, process, inputs, outputs, asynchronous, "wps2", job_uuid,
                                   {"response": response_form})
        if submission.asynchronous:
            return self.get_status(submission.uuid)
        job = bridge.job_view(submission.uuid)
        if job is None or job.status != "succeeded":
            return self.failure(job)
        if response_form == "raw":
            return self.raw_output(job, next(iter(outputs)), outputs)
        return xml_response(self.result_document(job, outputs))

    # -- GetStatus, GetResult, Dismiss -------------------------------------------------------

    def job(self, job_id):
        job = bridge.job_view(job_id)
        if job is None:
            raise bridge.ServiceError("NoSuchJob", f"No job {job_id!r} on this server.", "JobID")
        return job

    def get_status(self, job_id):
        return xml_response(status_info(self.job(job_id)))

    def get_result(self, job_id):
        job = self.job(job_id)
        if job.status == "dismissed":
            raise bridge.ServiceError("NoSuchJob", f"Job {job_id} was dismissed; its results are gone.", "JobID")
        if job.status == "failed":
            return self.failure(job)
        choices = self.output_choices(job)
        if job.status != "succeeded":
            available = {oid: c for oid, c in choices.items() if oid in job.outputs} if choices else job.outputs
            if not job.outputs or not available:
                raise bridge.ServiceError("ResultNotReady", f"Job {job_id} is {job.status}; its result is not ready. "
                                          "Poll GetStatus.", "JobID")
        return xml_response(self.result_document(job, choices))

    def dismiss(self, job_id):
        self.job(job_id)
        job = bridge.dismiss(job_id, users.current())
        return xml_response(status_info(job))

    # -- results -----------------------------------------------------------------------------

    def output_choices(self, job):
        """The outputs the request named; for jobs started over WPS 1.0.0: every output, by reference."""
        record = bridge.read_protocol_record(job.uuid)
        if record is None:
            return {oid: bridge.OutputChoice("reference") for oid in job.outputs}
        return {oid: bridge.OutputChoice(c.get("transmission"), c.get("mime_type"))
                for oid, c in (record.get("outputs") or {}).items()}

    def failure(self, job):
        if job is None:
            return exception_report("NoApplicableCode", "The job ended without a status.", "", 500)
        message = job.message or "The job failed."
        if job.internal_failure:
            return exception_report("NoApplicableCode", message, job.process, 500)
        return exception_report("NoApplicableCode", message, job.process, 400)

    def result_document(self, job, choices):
        """wps:Result with the outputs asked for (all when none were named) that exist so far."""
        wanted = list(choices) if choices else list(job.outputs)
        result = WPS.Result(WPS.JobID(job.uuid))
        for oid in wanted:
            state = job.outputs.get(oid)
            if state is None:
                continue
            result.append(output_element(oid, state, choices.get(oid)))
        result.set(f"{{{NS_XSI}}}schemaLocation", SCHEMA_LOCATION)
        return result

    def raw_output(self, job, oid, choices):
        state = job.outputs.get(oid)
        if state is None:
            return exception_report("NoApplicableCode", f"Output {oid} was not produced.", oid, 500)
        if "data" in state:
            return Response(str(state["data"]), content_type="text/plain; charset=utf-8")
        choice = choices.get(oid)
        if choice and choice.transmission == "reference":
            return Response(status=303, headers={"Location": state["href"]})
        data = bridge.output_bytes(state["href"], explicit=True)
        return Response(data, content_type=state.get("mime_type") or "application/octet-stream",
                        headers={"Content-Disposition": f'attachment; filename="{oid}"'})


def _method(operation):
    return {"GetStatus": "get_status", "GetResult": "get_result", "Dismiss": "dismiss"}[operation]


# ---------------------------------------------------------------------------------------------
# document pieces


def process_attributes(process):
    return {"jobControlOptions": " ".join(bridge.process_modes(process)), "outputTransmission": "value reference",
            "processVersion": ows_version(process.version), "processModel": "native"}


def ows_version(version):
    """An ows:VersionType (x.y.z) from a process version such as "1.0"."""
    parts = [p for p in re.findall(r"\d+", str(version or "")) if p][:3]
    parts = [str(int(p) % 100) if i else p for i, p in enumerate(parts)] + ["0"] * (3 - len(parts))
    return ".".join(parts) if parts[0] else "1.0.0"


def description_elements(definition, with_metadata=True):
    """Title, Abstract, Keywords, Identifier, Metadata in the order of wps:DescriptionType."""
    elements = [OWS.Title(definition.title or definition.identifier)]
    if definition.abstract:
        elements.append(OWS.Abstract(definition.abstract))
    keywords = [k for k in (getattr(definition, "keywords", None) or []) if k]
    if keywords:
        elements.append(OWS.Keywords(*[OWS.Keyword(k) for k in keywords]))
    elements.append(OWS.Identifier(definition.identifier))
    for meta in (getattr(definition, "metadata", None) or []) if with_metadata else []:
        attributes = {xlink("title"): meta.title}
        if meta.href:
            attributes[xlink("href")] = meta.href
        if meta.role:
            attributes[xlink("role")] = meta.role
        elements.append(OWS.Metadata(**attributes))
    return elements


def process_element(process):
    element = WPS.Process(*description_elements(process))
    for inpt in process.inputs:
        attributes = {"minOccurs": str(inpt.min_occurs), "maxOccurs": str(inpt.max_occurs)}
        element.append(WPS.Input(*description_elements(inpt), data_description(inpt), **attributes))
    for output in process.outputs:
        element.append(WPS.Output(*description_elements(output), data_description(output)))
    return element


def format_element(fmt, default):
    attributes = {"mimeType": fmt.mime_type}
    if fmt.encoding:
        attributes["encoding"] = fmt.encoding
    elif bridge.is_binary(fmt.mime_type):
        attributes["encoding"] = "base64"
    if fmt.schema:
        attributes["schema"] = fmt.schema
    if default:
        attributes["default"] = "true"
    return WPS.Format(**attributes)


def data_description(definition):
    kind = _output_kind(definition)
    if kind == "complex":
        formats = definition.supported_formats
        return WPS.ComplexData(*[format_element(f, i == 0) for i, f in enumerate(formats)])
    if kind == "bbox":
        crss = getattr(definition, "crss", None) or ["urn:ogc:def:crs:EPSG::4326"]
        return WPS.BoundingBoxData(WPS.Format(mimeType="text/plain", default="true"),
                                   *[WPS.SupportedCRS(c, **({"default": "true"} if i == 0 else {}))
                                     for i, c in enumerate(crss)])
    return WPS.LiteralData(WPS.Format(mimeType="text/plain", default="true"), literal_domain(definition))


def _output_kind(definition):
    name = type(definition).__name__
    if "Complex" in name:
        return "complex"
    if "BoundingBox" in name:
        return "bbox"
    return "literal"


def literal_domain(definition):
    allowed = [v for v in (getattr(definition, "allowed_values", None) or []) if not isinstance(v, AnyValue)]
    domain = PLAIN.LiteralDataDomain(default="true")
    references = [v for v in allowed if isinstance(v, ValuesReference)]
    values = [v for v in allowed if isinstance(v, AllowedValue)]
    if values:
        container = OWS.AllowedValues()
        for value in values:
            if value.allowed_type == ALLOWEDVALUETYPE.RANGE:
                rng = OWS.Range()
                if value.minval is not None:
                    rng.append(OWS.MinimumValue(str(value.minval)))
                if value.maxval is not None:
                    rng.append(OWS.MaximumValue(str(value.maxval)))
                if value.spacing:
                    rng.append(OWS.Spacing(str(value.spacing)))
                rng.set(ows_attr("rangeClosure"), value.range_closure or "closed")
                container.append(rng)
            else:
                container.append(OWS.Value(str(value.value)))
        domain.append(container)
    elif references:
        domain.append(OWS.ValuesReference(**{ows_attr("reference"): references[0].reference or ""}))
    else:
        domain.append(OWS.AnyValue())
    data_type = getattr(definition, "data_type", None) or "string"
    xsd = DATA_TYPES.get(data_type, "string")
    domain.append(OWS.DataType(data_type, **{ows_attr("reference"): f"http://www.w3.org/2001/XMLSchema#{xsd}"}))
    uom = getattr(definition, "uom", None)
    if uom is not None and getattr(uom, "uom", None):
        domain.append(OWS.UOM(uom.uom))
    default = getattr(definition, "_default", None)
    if default is not None:
        domain.append(OWS.DefaultValue(bridge.literal_text(default)))
    return domain


def status_info(job):
    element = WPS.StatusInfo(WPS.JobID(job.uuid), WPS.Status(STATUS_NAMES.get(job.status, "Accepted")))
    eta = job.estimated_completion()
    if eta:
        element.append(WPS.EstimatedCompletion(bridge.isotime(eta)))
    next_poll = job.next_poll()
    if next_poll:
        element.append(WPS.NextPoll(bridge.isotime(next_poll)))
    if job.status in ("running", "accepted", "succeeded"):
        element.append(WPS.PercentCompleted(str(job.percent)))
    element.set(f"{{{NS_XSI}}}schemaLocation", SCHEMA_LOCATION)
    return element


def output_element(oid, state, choice):
    if "data" in state:
        return WPS.Output(WPS.Data(bridge.literal_text(state["data"]), mimeType="text/plain"), id=oid)
    mime_type = state.get("mime_type") or "application/octet-stream"
    if bridge.wants_value(choice):
        data = bridge.output_bytes(state["href"], explicit=bool(choice and choice.transmission == "value"))
        if data is not None:
            if bridge.is_binary(mime_type):
                content = WPS.Data(base64.b64encode(data).decode("ascii"), mimeType=mime_type, encoding="base64")
            else:
                content = WPS.Data(etree.CDATA(data.decode("utf-8", errors="replace")), mimeType=mime_type)
            return WPS.Output(content, id=oid)
    return WPS.Output(WPS.Reference(**{xlink("href"): state["href"], "mimeType": mime_type}), id=oid)


def parse_input(identifier, element):
    """wps:Input -> bridge.InputValue (nested inputs are not used by these processes)."""
    reference = element.find(f"{{{NS_WPS}}}Reference")
    if reference is not None:
        if reference.find(f"{{{NS_WPS}}}Body") is not None or reference.find(f"{{{NS_WPS}}}BodyReference") is not None:
            raise bridge.ServiceError("InvalidParameterValue", f"Input {identifier}: POST references (Body, "
                                      "BodyReference) are not supported; give a plain xlink:href.", identifier)
        href = reference.get(xlink("href"))
        if not href:
            raise bridge.ServiceError("MissingParameterValue", f"Input {identifier}: wps:Reference needs "
                                      "xlink:href.", identifier)
        return bridge.InputValue("href", href, reference.get("mimeType"), reference.get("encoding"))
    data = element.find(f"{{{NS_WPS}}}Data")
    if data is None:
        if element.find(f"{{{NS_WPS}}}Input") is not None:
            raise bridge.ServiceError("InvalidParameterValue", f"Input {identifier}: nested inputs are not used by "
                                      "this service's processes.", identifier)
        raise bridge.ServiceError("MissingParameterValue", f"Input {identifier}: give wps:Data or wps:Reference.",
                                  identifier)
    children = [c for c in data if isinstance(c.tag, str)]
    if children:
        value = etree.tostring(children[0], encoding="unicode")
    else:
        value = (data.text or "").strip()
    literal = next((c for c in children if etree.QName(c).localname == "LiteralValue"), None)
    if literal is not None:
        value = (literal.text or "").strip()
    return bridge.InputValue("data", value, data.get("mimeType"), data.get("encoding"))
