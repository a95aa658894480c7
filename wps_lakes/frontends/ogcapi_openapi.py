"""The OpenAPI 3.0 definition of this service's OGC API - Processes (served at /api).

Schemas follow the standard's OpenAPI fragments (core/openapi/schemas of OGC 18-062r2); the
process identifiers are listed as an enum so that clients (and schemathesis) know them.
"""
from pywps import configuration

from ..__version__ import __version__

MAX_SECONDS = 10 ** 9
REF = "#/components/schemas/"


def ref(name):
    return {"$ref": REF + name}


def json_content(schema):
    return {"application/json": {"schema": schema}}


def problem(description):
    return {"description": description, "content": {
        "application/problem+json": {"schema": ref("exception")},
        "text/html": {"schema": {"type": "string"}}}}


def ok(description, schema, html=True):
    content = json_content(schema)
    if html:
        content["text/html"] = {"schema": {"type": "string"}}
    return {"description": description, "content": content}


DATE_TIME = (r"[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
             r"(\.[0-9]{1,6})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])")
DATETIME_PATTERN = rf"^({DATE_TIME}|({DATE_TIME}|\.\.)?/({DATE_TIME}|\.\.)?)$"

F_PARAM = {"name": "f", "in": "query", "required": False, "description": "Format of the response: json (default) "
           "or html.", "schema": {"type": "string", "enum": ["json", "html"]}}

SCHEMAS = {
    "link": {"type": "object", "required": ["href"], "properties": {
        "href": {"type": "string"}, "rel": {"type": "string"}, "type": {"type": "string"},
        "hreflang": {"type": "string"}, "title": {"type": "string"}}},
    "landingPage": {"type": "object", "required": ["links"], "properties": {
        "title": {"type": "string"}, "description": {"type": "string"},
        "links": {"type": "array", "items": ref("link")}}},
    "confClasses": {"type": "object", "required": ["conformsTo"], "properties": {
        "conformsTo": {"type": "array", "items": {"type": "string"}}}},
    "exception": {"type": "object", "required": ["type"], "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "instance": {"type": "string"}}, "additionalProperties": True},
    "metadata": {"type": "object", "properties": {
        "title": {"type": "string"}, "role": {"type": "string"}, "href": {"type": "string"}}},
    "jobControlOptions": {"type": "string", "enum": ["sync-execute", "async-execute", "dismiss"]},
    "transmissionMode": {"type": "string", "enum": ["value", "reference"], "default": "value"},
    "processSummary": {"type": "object", "required": ["id", "version"], "properties": {
        "id": {"type": "string"}, "title": {"type": "string"}, "description": {"type": "string"},
        "version": {"type": "string"}, "keywords": {"type": "array", "items": {"type": "string"}},
        "metadata": {"type": "array", "items": ref("metadata")},
        "jobControlOptions": {"type": "array", "items": ref("jobControlOptions")},
        "outputTransmission": {"type": "array", "items": ref("transmissionMode")},
        "links": {"type": "array", "items": ref("link")}}},
    "processList": {"type": "object", "required": ["processes", "links"], "properties": {
        "processes": {"type": "array", "items": ref("processSummary")},
        "links": {"type": "array", "items": ref("link")}}},
    "inputDescription": {"type": "object", "required": ["schema"], "properties": {
        "title": {"type": "string"}, "description": {"type": "string"},
        "keywords": {"type": "array", "items": {"type": "string"}},
        "metadata": {"type": "array", "items": ref("metadata")},
        "minOccurs": {"type": "integer", "default": 1},
        "maxOccurs": {"oneOf": [{"type": "integer", "default": 1}, {"type": "string", "enum": ["unbounded"]}]},
        "schema": {"type": "object"}}},
    "outputDescription": {"type": "object", "required": ["schema"], "properties": {
        "title": {"type": "string"}, "description": {"type": "string"}, "schema": {"type": "object"}}},
    "process": {"allOf": [ref("processSummary"), {"type": "object", "properties": {
        "inputs": {"type": "object", "additionalProperties": ref("inputDescription")},
        "outputs": {"type": "object", "additionalProperties": ref("outputDescription")}}}]},
    "statusCode": {"type": "string", "enum": ["accepted", "running", "successful", "failed", "dismissed"]},
    "statusInfo": {"type": "object", "required": ["jobID", "status", "type"], "properties": {
        "processID": {"type": "string"}, "type": {"type": "string", "enum": ["process"]},
        "jobID": {"type": "string"}, "status": ref("statusCode"), "message": {"type": "string"},
        "created": {"type": "string", "format": "date-time"}, "started": {"type": "string", "format": "date-time"},
        "finished": {"type": "string", "format": "date-time"}, "updated": {"type": "string", "format": "date-time"},
        "progress": {"type": "integer", "minimum": 0, "maximum": 100},
        "links": {"type": "array", "items": ref("link")}}},
    "jobList": {"type": "object", "required": ["jobs", "links"], "properties": {
        "jobs": {"type": "array", "items": ref("statusInfo")}, "links": {"type": "array", "items": ref("link")}}},
    "bbox": {"type": "object", "required": ["bbox"], "properties": {
        "bbox": {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
        "crs": {"type": "string"}}},
    "format": {"type": "object", "properties": {
        "mediaType": {"type": "string"}, "encoding": {"type": "string"},
        "schema": {"oneOf": [{"type": "string", "format": "url"}, {"type": "object"}]}}},
    "qualifiedInputValue": {"allOf": [ref("format"), {"type": "object", "required": ["value"], "properties": {
        "value": {}}}]},
    "inlineOrRefData": {"anyOf": [
        {"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "array", "items": {}},
        ref("bbox"), ref("qualifiedInputValue"), ref("link"), {"type": "object"}]},
    "output": {"type": "object", "properties": {"format": ref("format"), "transmissionMode": ref("transmissionMode")}},
    "execute": {"type": "object", "properties": {
        "inputs": {"type": "object", "additionalProperties": {"anyOf": [
            ref("inlineOrRefData"), {"type": "array", "items": ref("inlineOrRefData")}]}},
        "outputs": {"type": "object", "additionalProperties": ref("output")},
        "response": {"type": "string", "enum": ["raw", "document"], "default": "raw"}}},
    "results": {"type": "object", "additionalProperties": ref("inlineOrRefData")},
}


def openapi_document(api):
    process_ids = list(api.service.processes)
    process_param = {"name": "processID", "in": "path", "required": True, "description": "A process identifier.",
                     "schema": {"type": "string", "enum": process_ids}}
    job_param = {"name": "jobID", "in": "path", "required": True, "description": "A job identifier.",
                 "schema": {"type": "string"}}
    array = {"type": "array", "maxItems": 20, "items": {"type": "string", "maxLength": 100}}
    paths = {
        "/": {"get": {"summary": "Landing page", "operationId": "getLandingPage", "tags": ["Capabilities"],
                      "parameters": [F_PARAM], "responses": {
                          "200": ok("Links to the API definition, the conformance declaration, processes and jobs.",
                                    ref("landingPage")),
                          "400": problem("Invalid parameter.")}}},
        "/conformance": {"get": {"summary": "Conformance declaration", "operationId": "getConformanceClasses",
                                 "tags": ["Capabilities"], "parameters": [F_PARAM], "responses": {
                                     "200": ok("The conformance classes this server implements.",
                                               ref("confClasses")),
                                     "400": problem("Invalid parameter.")}}},
        "/api": {"get": {"summary": "This API definition", "operationId": "getAPI", "tags": ["Capabilities"],
                         "parameters": [F_PARAM], "responses": {
                             "200": {"description": "The OpenAPI 3.0 definition.", "content": {
                                 "application/vnd.oai.openapi+json;version=3.0": {"schema": {"type": "object"}},
                                 "text/html": {"schema": {"type": "string"}}}},
                             "400": problem("Invalid parameter.")}}},
        "/processes": {"get": {"summary": "Processes offered", "operationId": "getProcesses", "tags": ["Processes"],
                               "parameters": [F_PARAM, {"name": "limit", "in": "query", "required": False,
                                                        "schema": {"type": "integer", "minimum": 1,
                                                                   "maximum": 10000, "default": 10}}],
                               "responses": {"200": ok("The process list.", ref("processList")),
                                             "400": problem("Invalid parameter.")}}},
        "/processes/{processID}": {"get": {
            "summary": "Process description", "operationId": "getProcessDescription", "tags": ["Processes"],
            "parameters": [process_param, F_PARAM], "responses": {
                "200": ok("The process description (OGC process description, JSON schemas of inputs and outputs).",
                          ref("process")),
                "400": problem("Invalid parameter."),
                "404": problem("No such process.")}}},
        "/processes/{processID}/execution": {"post": {
            "summary": "Execute a process", "operationId": "execute", "tags": ["Processes"],
            "description": "Runs synchronously unless `Prefer: respond-async` is sent or the process runs only "
                           "asynchronously (train): then 201 with the job status and a Location header.",
            "parameters": [process_param, {"name": "Prefer", "in": "header", "required": False,
                                           "schema": {"type": "string"},
                                           "description": "respond-async for asynchronous execution."}],
            "requestBody": {"required": True, "content": json_content(ref("execute"))},
            "responses": {
                "200": {"description": "Synchronous execution: the results document (response=document), the one "
                                       "output (raw), or multipart/related (raw, several outputs).",
                        "content": {"application/json": {"schema": ref("results")},
                                    "multipart/related": {"schema": {"type": "string", "format": "binary"}},
                                    "*/*": {"schema": {"type": "string", "format": "binary"}}}},
                "201": {"description": "Asynchronous execution: the job was created.",
                        "headers": {"Location": {"schema": {"type": "string"},
                                                 "description": "The job's status URL."}},
                        "content": json_content(ref("statusInfo"))},
                "204": {"description": "Synchronous raw execution with every output by reference: Link headers."},
                "400": problem("Invalid execute request or input, or the job failed on its input."),
                "404": problem("No such process."),
                "413": problem("Request too large."),
                "415": problem("The body is not JSON."),
                "503": problem("The job queue is full.")}}},
        "/jobs": {"get": {
            "summary": "Jobs", "operationId": "getJobs", "tags": ["Jobs"],
            "parameters": [F_PARAM,
                           {"name": "limit", "in": "query", "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 10}},
                           {"name": "offset", "in": "query", "required": False,
                            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_SECONDS, "default": 0}},
                           {"name": "processID", "in": "query", "required": False, "schema": array,
                            "style": "form", "explode": False},
                           {"name": "status", "in": "query", "required": False, "style": "form", "explode": False,
                            "schema": {"type": "array", "maxItems": 20, "items": ref("statusCode")}},
                           {"name": "type", "in": "query", "required": False, "schema": array, "style": "form",
                            "explode": False},
                           {"name": "datetime", "in": "query", "required": False,
                            "description": "An RFC 3339 date-time or interval (start/end, .. for open): jobs "
                                           "created then.",
                            "schema": {"type": "string", "pattern": DATETIME_PATTERN}},
                           {"name": "minDuration", "in": "query", "required": False,
                            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_SECONDS}},
                           {"name": "maxDuration", "in": "query", "required": False,
                            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_SECONDS}}],
            "responses": {"200": ok("Jobs, newest first (those started over WPS 1.0.0 and 2.0.0 too).",
                                    ref("jobList")),
                          "400": problem("Invalid parameter.")}}},
        "/jobs/{jobID}": {
            "get": {"summary": "Job status", "operationId": "getStatus", "tags": ["Jobs"],
                    "parameters": [job_param, F_PARAM], "responses": {
                        "200": ok("The job's status (running train jobs link their checkpoints so far).",
                                  ref("statusInfo")),
                        "400": problem("Invalid parameter."),
                        "404": problem("No such job.")}},
            "delete": {"summary": "Dismiss a job", "operationId": "dismiss", "tags": ["Jobs"],
                       "parameters": [job_param, F_PARAM], "responses": {
                           "200": ok("The job is dismissed: a running job is stopped.", ref("statusInfo")),
                           "400": problem("Invalid parameter."),
                           "404": problem("No such job.")}}},
        "/jobs/{jobID}/results": {"get": {
            "summary": "Job results", "operationId": "getResult", "tags": ["Jobs"],
            "parameters": [job_param, F_PARAM], "responses": {
                "200": ok("The results document.", ref("results")),
                "400": problem("The job failed on its input, or invalid parameter."),
                "404": problem("No such job, or its result is not ready."),
                "413": problem("An output asked for by value is too large."),
                "500": problem("The job failed through a fault of the service.")}}},
    }
    for item in paths.values():  # limits of the HTTP server in front
        for operation in item.values():
            operation["responses"]["414"] = {"description": "URI too long."}
            operation["responses"].setdefault("413", problem("Request too large."))
    return {
        "openapi": "3.0.3",
        "info": {"title": "wps_lakes: OGC API - Processes", "version": __version__,
                 "description": "Lake and river differentiation processes (train, detect, split) and their jobs, "
                                "the same as over WPS 1.0.0 and 2.0.0 at "
                                + configuration.get_config_value("server", "url") + ".",
                 "license": {"name": "See the project's license"}},
        "servers": [{"url": api.base + api.prefix}],
        "tags": [{"name": "Capabilities"}, {"name": "Processes"}, {"name": "Jobs"}],
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }
