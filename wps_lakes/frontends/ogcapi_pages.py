"""The HTML pages of OGC API - Processes for people in a browser (``f=html`` or ``Accept: text/html``).

- ``/jobs``: a table of the user's jobs (admins: all) whose progress bars and messages follow the jobs
  live: ``static/jobs.js`` polls the JSON of ``/jobs`` (with the token kept in the browser's session
  storage, sent as ``Authorization: Bearer``), no reload;
- ``/jobs/{id}``: one job: progress, its pictures (quicklooks, training curves), the training curves
  redrawn from ``metrics.jsonl`` on a canvas while it trains, the checkpoints so far, the log's tail,
  the inputs as given (``jobs.records``) and a Dismiss button (``static/job.js``);
- ``/processes/{id}``: the description and a form that runs the process (a file to upload or a URL
  for each complex input; ``static/process.js`` posts the OGC API execute request);
- ``/jobs/{id}/files``: what the job page polls besides the status (JSON): the files in the job's
  output folder (served under /outputs already), the metrics so far and the log's tail;
- ``/static/{name}``: the pages' scripts and style sheet. Nothing comes from anywhere else.

The JSON answers of OGC API are not changed by any of this.
"""
import json
import mimetypes
import re
from pathlib import Path

from pywps import configuration
from werkzeug.wrappers import Response

from ..jobs import records
from ..runtime import settings, users

STATIC = Path(__file__).resolve().parent.parent / "templates" / "static"
STATIC_NAME = re.compile(r"[a-z0-9_-]{1,40}\.(js|css)")
MAX_FILES = 400          # files listed from one job's output folder
MAX_METRIC_LINES = 2000  # epochs of metrics.jsonl sent to the page
LOG_TAIL_BYTES = 6000
EXTENSIONS = {  # a file's extension -> the media types it may be, best first (the form's upload)
    ".tif": ["image/tiff; subtype=geotiff", "image/tiff"], ".tiff": ["image/tiff; subtype=geotiff", "image/tiff"],
    ".geojson": ["application/geo+json", "application/vnd.geo+json", "application/json"],
    ".json": ["application/json", "application/geo+json"], ".zip": ["application/x-zipped-shp"],
    ".gpkg": ["application/geopackage+sqlite3"], ".pth": ["application/octet-stream"],
}


class Pages:
    def __init__(self, api):
        self.api = api
        self.environment = None

    def render(self, template, status=200, **context):
        if self.environment is None:
            from jinja2 import Environment, PackageLoader, select_autoescape

            self.environment = Environment(loader=PackageLoader("wps_lakes", "templates"),
                                           autoescape=select_autoescape(["html"]))
        page = self.environment.get_template(template)
        html = page.render(service_title=configuration.get_config_value("metadata:main", "identification_title"),
                           root=self.api.url(""), static=self.api.url("/static"), **context)
        return Response(html, status=status, content_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})

    # -- pages ---------------------------------------------------------------------------------

    def jobs(self, documents, listed=True):
        """``listed`` False: the request had no token on a service with tokens; the page asks for one."""
        return self.render("pages/jobs.html", title="Jobs", jobs=documents, listed=listed)

    def job(self, job, document):
        record = records.get(job.uuid) or {}
        requester = users.current()
        owner = record.get("owner") or job.owner
        files = self.files(job)
        return self.render("pages/job.html", title=f"Job {job.uuid}", job=document, files=files,
                           inputs=record.get("inputs") or {},
                           owner=owner if requester.may_manage(owner) else None,
                           outputs=self.outputs(job),
                           files_json=script_json(files))

    def process(self, process, document):
        fields = []
        for identifier, description in document["inputs"].items():
            schema = description["schema"]
            schemas = schema.get("oneOf") or [schema]
            schemas = [s for s in schemas if s.get("contentMediaType")]
            media_types = [s["contentMediaType"] for s in schemas]
            field = {"id": identifier, "title": description["title"], "description": description["description"],
                     "required": description["minOccurs"] > 0, "kind": "literal"}
            if media_types:
                field.update(kind="complex", formats=[{"mediaType": m, "binary": s.get("contentEncoding") == "base64",
                                                       "json": s.get("type") == "object"}
                                                      for m, s in zip(media_types, schemas, strict=True)],
                             accept=",".join(sorted({ext for ext, types in EXTENSIONS.items()
                                                     if set(types) & set(media_types)})))
            elif schema.get("type") == "boolean":
                field.update(kind="boolean", default=schema.get("default"))
            else:
                field.update(type=schema.get("type", "string"), enum=schema.get("enum"),
                             default=schema.get("default"), minimum=schema.get("minimum"),
                             maximum=schema.get("maximum"))
            fields.append(field)
        return self.render("pages/process.html", title=process.title, process=document, fields=fields,
                           fields_json=script_json(fields), extensions_json=script_json(EXTENSIONS))

    def processes(self, documents):
        return self.render("pages/processes.html", title="Processes", processes=documents)

    # -- what the job page shows besides the status --------------------------------------------

    def outputs(self, job):
        return [{"id": oid, "href": state["href"], "type": state.get("mime_type") or ""}
                for oid, state in job.outputs.items() if "href" in state] + \
               [{"id": oid, "value": state["data"]} for oid, state in job.outputs.items() if "data" in state]

    def files(self, job):
        """The job's pictures, checkpoints, metrics so far and log tail, from its output folder."""
        folder = Path(settings.outputpath()) / job.uuid
        result = {"pictures": [], "checkpoints": [], "metrics": [], "log": "", "log_href": None,
                  "outputs": self.outputs(job)}
        if not folder.is_dir():
            return result
        base = settings.outputurl() + "/" + job.uuid
        found = []
        for path in folder.rglob("*"):
            if len(found) >= MAX_FILES:
                break
            if path.is_file() and not path.is_symlink():
                found.append(path)
        metrics_file = log_file = None
        for path in sorted(found):
            relative = path.relative_to(folder).as_posix()
            stat = path.stat()
            entry = {"name": relative, "href": f"{base}/{relative}", "size": stat.st_size,
                     "modified": int(stat.st_mtime)}
            if path.suffix == ".png":
                entry["title"] = picture_title(path)
                result["pictures"].append(entry)
            elif path.suffix == ".pth":
                result["checkpoints"].append(entry)
            elif path.name == "metrics.jsonl":
                metrics_file = path
            elif path.suffix == ".log" and log_file is None:
                log_file, result["log_href"] = path, entry["href"]
        if metrics_file is not None:
            result["metrics"] = read_metrics(metrics_file)
        if log_file is not None:
            result["log"] = tail(log_file)
        return result


def script_json(value):
    """JSON to put inside a <script> element: no character there can end the element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def picture_title(path):
    name = path.name.lower()
    if "curve" in name:
        return "Training curves"
    if "quicklook" in name or "split" in name or "detect" in name:
        return f"Quicklook ({path.name})"
    return path.name


def read_metrics(path):
    records_ = []
    with open(path, errors="replace") as handle:
        for line in handle:
            if len(records_) >= MAX_METRIC_LINES:
                break
            try:
                record = json.loads(line)
            except ValueError:
                continue  # the line being written
            if isinstance(record, dict):
                records_.append({k: v for k, v in record.items() if isinstance(v, (int, float))})
    return records_


def tail(path):
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - LOG_TAIL_BYTES))
        text = handle.read().decode("utf-8", errors="replace")
    return text.split("\n", 1)[1] if size > LOG_TAIL_BYTES and "\n" in text else text


def static(name):
    """A script or style sheet of the pages, or None."""
    if not STATIC_NAME.fullmatch(name or ""):
        return None
    path = STATIC / name
    if not path.is_file():
        return None
    return Response(path.read_bytes(), content_type=(mimetypes.guess_type(name)[0] or "text/plain") +
                    "; charset=utf-8", headers={"Cache-Control": "no-cache"})
