"""The WSGI application: routes /wps to PyWPS and /outputs to the output folder."""
import logging
import mimetypes
import os
import re
import threading
from urllib.parse import urlparse

from pywps import configuration
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.utils import send_from_directory
from werkzeug.wrappers import Request, Response

from ..jobs.local import start_job_server
from ..runtime import settings
from .documents import DocumentCache
from .guards import GuardedService, guard_request
from .registry import get_processes

LOGGER = logging.getLogger("PYWPS")
STATUS_DOCUMENT = re.compile(r"[0-9a-fA-F-]{36}\.xml")  # <outputpath>/<job uuid>.xml


class ServiceApp:
    """One WSGI callable for the whole service."""

    def __init__(self, cfgfiles):
        self.cfgfiles = list(cfgfiles)
        settings.load_service_config(self.cfgfiles)
        settings.CFGFILES[:] = self.cfgfiles
        # Service() would reload the configuration; it is loaded above already.
        # PyWPS's Service with the input checks (references, file://, literals) in front of Execute.
        self.wps = GuardedService(processes=get_processes())
        self.outputpath = configuration.get_config_value("server", "outputpath")
        self.outputs_prefix = urlparse(configuration.get_config_value("server", "outputurl")).path.rstrip("/")
        self.wps_path = urlparse(configuration.get_config_value("server", "url")).path.rstrip("/") or "/wps"
        self.wps_documents = DocumentCache(self.wps)  # PyWPS, with its capabilities and descriptions kept
        threading.Thread(target=start_job_server, daemon=True, name="job-fork-server").start()
        self.ogcapi = None  # OGC API - Processes, built on first use

    def __call__(self, environ, start_response):
        request = Request(environ)
        path = request.path.rstrip("/")
        try:
            if path == self.wps_path:
                return self.wps_endpoint(request)(environ, start_response)
            if path.startswith(self.outputs_prefix + "/"):
                response = self.serve_output(request, path[len(self.outputs_prefix) + 1:])
            else:
                response = self.rest_endpoint(request)
        except HTTPException as exc:
            response = exc.get_response(environ)
        return response(environ, start_response)

    def wps_endpoint(self, request):
        """The WSGI application that answers a request to /wps: PyWPS (1.0.0) or WPS 2.0.0."""
        from ..frontends.wps2 import route

        # One guard for both versions: body size (also chunked) and no DOCTYPE, before any parser.
        refusal = guard_request(request)
        if refusal is not None:
            return refusal
        return route(self, request)

    def rest_endpoint(self, request):
        """Answer a request outside /wps and /outputs (a werkzeug Response): OGC API - Processes."""
        from ..frontends.ogcapi import OGCAPI

        if self.ogcapi is None:
            self.ogcapi = OGCAPI(self)
        response = self.ogcapi.answer(request)
        if response is None:
            raise NotFound(f"No such resource: {request.path}. The WPS endpoint is {self.wps_path}.")
        return response

    def serve_output(self, request, relative_path):
        if STATUS_DOCUMENT.fullmatch(relative_path):
            return self.serve_status_document(relative_path)
        # send_from_directory refuses paths that escape the folder.
        return send_from_directory(self.outputpath, relative_path, request.environ)

    def serve_status_document(self, name):
        """A job's status document, read whole from one open file. The job replaces it (renames a new
        one over it) while it runs; send_from_directory sizes a file by its name and then opens it,
        so a replacement in between sent one version cut to the other's length."""
        try:
            with open(os.path.join(self.outputpath, name), "rb") as handle:
                data = handle.read()
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound() from None
        return Response(data, mimetype=mimetypes.guess_type(name)[0] or "application/xml",
                        headers={"Cache-Control": "no-cache"})
