"""The ESGF compute (CWT) profile: ``LAKES.train``, ``LAKES.detect`` and ``LAKES.split``.

ESGF compute clients (the ``cwt`` client of esgf-compute-api, Weaver calling ESGF providers) speak
WPS 1.0.0 through OWSLib and always send exactly three inline ``application/json`` inputs:

- ``variable``: ``[{"uri": ..., "id": "<role>|<label>", "domain": "d0"}]``; the role is one of
  dem, hydro, detections, checkpoint, config;
- ``domain``: ``[{"id": "d0", "lat": {"start": .., "end": .., "crs": "values"}, "lon": {...}}]``
  (or x/y in the data's CRS, or ``"crs": "indices"`` for DEM pixels); may be ``[]``;
- ``operation``: ``[{"name": "LAKES.split", "result": "op0", "domain": "d0", "input": ["v0"],
  <parameter>: "<value>"}]``.

They read the first output, inline, as JSON: here ``output``, a list of ``{"uri", "id": "<name>|<result>",
"mime_type", "mime-type"}``, one per result file.

Each process wraps the native one (``train``, ``detect``, ``split``): the profile's variables are
fetched under the same reference rules, cut to the domain (``geodata.subset``), and handed to the
native process's own ``handle`` as its inputs, with the parameters converted and checked against the
native literal inputs. So the ESGF processes run exactly the native code, and follow it when it changes.

Everything that needs no data (JSON shape, ids, names, parameter types, file:// paths) is checked at
request time and refused with InvalidParameterValue naming the culprit, before any job exists; what
needs the data (a domain outside it) fails the job with a message that names it.
"""
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

from pywps import ComplexInput, ComplexOutput, Format, LiteralInput
from pywps.app.Common import Metadata
from pywps.exceptions import FileURLNotSupported, InvalidParameterValue
from pywps.inout.literaltypes import AllowedValue

from ..errors import LakesError
from ..processes.base import LakesProcess
from ..processes.detect import Detect
from ..processes.io import METADATA
from ..processes.split import Split
from ..processes.train import Train
from ..runtime import jobfiles, settings
from ..runtime.references import allowed_file, fetch_reference, local_input_file, precheck

JSON = Format("application/json", extension=".json")
PREFIX = "LAKES"
ROLES = ("dem", "hydro", "detections", "checkpoint", "config")
MAX_INPUT_BYTES = 1 << 20  # one profile input (a few hundred bytes in practice)
MAX_ITEMS = 100            # variables, domains or operations in one request
# names of the result files in output ids: the native output identifiers, except these
OUTPUT_NAMES = {"best_checkpoint": "checkpoint"}
LON_LAT = {"lat": "y", "latitude": "y", "lon": "x", "longitude": "x"}
MAP_XY = {"x": "x", "y": "y"}
TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes"), ("false", "0", "no")
DEM_VARIABLE = "dem_variable"  # the profile's own parameter: which NetCDF variable is the elevation


class ProfileError(Exception):
    """A request that does not follow the profile; the message names the culprit."""

    def __init__(self, message, locator=""):
        super().__init__(message)
        self.locator = locator


# ---------------------------------------------------------------------------------------------
# the request, parsed


@dataclass
class Variable:
    uri: str
    role: str
    label: str
    domain: str | None


@dataclass
class Operation:
    name: str
    result: str
    domain: str | None
    inputs: list
    parameters: dict = field(default_factory=dict)  # native literal identifier -> converted value


@dataclass
class CwtRequest:
    variables: list   # the variables the operation uses
    domains: dict     # id -> geodata.subset.Extent, or None (no dimension given)
    operation: Operation

    def extent(self, variable):
        """The domain a variable is cut to: the operation's, else the variable's own; or None."""
        domain_id = self.operation.domain or variable.domain
        return self.domains.get(domain_id) if domain_id else None

    def domain_id(self, variable):
        return self.operation.domain or variable.domain

    def by_role(self, role):
        return [v for v in self.variables if v.role == role]


def load_json_list(text, name):
    if text is None:
        return []
    if isinstance(text, bytes):
        if len(text) > MAX_INPUT_BYTES:
            raise ProfileError(f"{name} is larger than {MAX_INPUT_BYTES // 1024} KiB", name)
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ProfileError(f"{name} is not UTF-8 text; it must be a JSON array", name) from None
    if not isinstance(text, str):
        value = text  # already decoded by the caller
    else:
        if len(text) > MAX_INPUT_BYTES:
            raise ProfileError(f"{name} is larger than {MAX_INPUT_BYTES // 1024} KiB", name)
        if not text.strip():
            return []
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ProfileError(f"{name} is not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); it must be "
                               f"a JSON array", name) from None
    if not isinstance(value, list):
        raise ProfileError(f"{name} must be a JSON array ([...]), not a JSON {type(value).__name__}", name)
    if len(value) > MAX_ITEMS:
        raise ProfileError(f"{name} has {len(value)} items; at most {MAX_ITEMS} are accepted", name)
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise ProfileError(f"{name}[{index}] must be a JSON object, not {json.dumps(item)[:60]}", name)
    return value


def _text(item, key, where, locator, required=True):
    value = item.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ProfileError(f"{where} needs {key!r} as a non-empty string", locator)
    return value.strip()


def _number(value, where, locator):
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ProfileError(f"{where} must be a number, not {json.dumps(value)[:40]}", locator)
    try:
        number = float(value)
    except ValueError:
        raise ProfileError(f"{where} must be a number, not {value!r}", locator) from None
    if not math.isfinite(number):
        raise ProfileError(f"{where} must be a finite number", locator)
    return number


def parse_domains(items):
    from ..geodata.subset import Extent

    domains = {}
    for index, item in enumerate(items):
        domain_id = _text(item, "id", f"domain[{index}]", "domain")
        if domain_id in domains:
            raise ProfileError(f"domain id {domain_id!r} is given twice", "domain")
        where = f"domain {domain_id}"
        axes, kinds, crss = {}, set(), set()
        for key, spec in item.items():
            if key == "id":
                continue
            if key == "mask":
                raise ProfileError(f"{where}: masks are not supported; give a lat/lon (or x/y) box", "domain")
            name = key.lower()
            if name not in LON_LAT and name not in MAP_XY:
                raise ProfileError(f"{where}: dimension {key!r} cannot cut a DEM or a hydro layer; use lat and lon "
                                   "(degrees), or x and y (in the data's CRS)", "domain")
            if not isinstance(spec, dict):
                raise ProfileError(f"{where}: {key} must be an object with start, end and crs", "domain")
            crs = spec.get("crs", "values")
            if crs not in ("values", "indices"):
                raise ProfileError(f"{where}: {key} has crs {crs!r}; use \"values\" or \"indices\" (timestamps do not "
                                   "apply to a DEM)", "domain")
            if "start" not in spec or "end" not in spec:
                raise ProfileError(f"{where}: {key} needs start and end", "domain")
            start = _number(spec["start"], f"{where}: {key}.start", "domain")
            end = _number(spec["end"], f"{where}: {key}.end", "domain")
            step = spec.get("step")
            if step is not None and _number(step, f"{where}: {key}.step", "domain") != 1:
                raise ProfileError(f"{where}: {key} has step {step}; subsampling is not supported, use step 1",
                                   "domain")
            axis = LON_LAT.get(name) or MAP_XY[name]
            if axis in axes:
                raise ProfileError(f"{where}: two dimensions give the {'latitude/y' if axis == 'y' else 'longitude/x'} "
                                   "range; give one", "domain")
            if crs == "indices" and (start != int(start) or end != int(end) or min(start, end) < 0):
                raise ProfileError(f"{where}: {key} indices must be whole numbers from 0 up", "domain")
            axes[axis] = (start, end)
            kinds.add("lonlat" if name in LON_LAT else "map")
            crss.add(crs)
        if len(crss) > 1:
            raise ProfileError(f"{where} mixes values and indices; give every dimension the same crs", "domain")
        if not axes:
            domains[domain_id] = None
            continue
        if crss == {"indices"}:
            units = "pixels"
        elif len(kinds) > 1:
            raise ProfileError(f"{where} mixes lat/lon with x/y; give lat and lon (degrees) or x and y (the data's "
                               "CRS)", "domain")
        else:
            units = kinds.pop()
        if units == "lonlat":
            axes = _checked_lonlat(axes, where)
        try:
            domains[domain_id] = Extent(x=axes.get("x"), y=axes.get("y"), units=units, label=where)
        except LakesError as exc:
            raise ProfileError(str(exc), "domain") from None
    return domains


def _checked_lonlat(axes, where):
    if "y" in axes and not all(-90 <= v <= 90 for v in axes["y"]):
        raise ProfileError(f"{where}: latitudes must lie between -90 and 90", "domain")
    if "x" in axes:
        low, high = sorted(axes["x"])
        if low < -180 or high > 360:
            raise ProfileError(f"{where}: longitudes must lie between -180 and 360", "domain")
        if low <= 180 < high:
            raise ProfileError(f"{where}: the longitude range crosses the antimeridian (180); split the request",
                               "domain")
        if low > 180:
            low, high = low - 360, high - 360
        axes = {**axes, "x": (low, high)}
    return axes


def parse_variables(items, roles, domains):
    variables = {}
    for index, item in enumerate(items):
        where = f"variable[{index}]"
        uri = _text(item, "uri", where, "variable")
        ident = _text(item, "id", where, "variable")
        if ident.count("|") != 1:
            raise ProfileError(f"{where}: id {ident!r} must hold exactly one '|' (<role>|<label>, e.g. \"dem|v0\")",
                               "variable")
        role, label = (part.strip() for part in ident.split("|"))
        if not role or not label:
            raise ProfileError(f"{where}: id {ident!r} needs a role before '|' and a label after it", "variable")
        if role not in roles:
            raise ProfileError(f"variable {label}: role {role!r} is not one of this process's: {', '.join(roles)}",
                               "variable")
        if label in variables:
            raise ProfileError(f"variable label {label!r} is given twice", "variable")
        domain = item.get("domain")
        if domain is not None and (not isinstance(domain, str) or domain not in domains):
            raise ProfileError(f"variable {label} names domain {domain!r}, which is not in the domain input"
                               + (f" (domains: {', '.join(domains)})" if domains else " (no domain is given)"),
                               "variable")
        check_uri(uri, f"variable {label}")
        variables[label] = Variable(uri=uri, role=role, label=label, domain=domain or None)
    return variables


def check_uri(uri, where):
    """Request-time check of a variable's uri, by the rules of every other file input: http(s) through
    ``references.precheck``, file:// through ``references.allowed_file`` (inside allowedinputpaths)."""
    scheme = urlparse(uri).scheme.lower()
    if scheme in ("http", "https"):
        try:
            precheck(uri, settings.reference_policy())
        except LakesError as exc:
            raise ProfileError(f"{where}: {exc}", "variable") from None
        return
    if scheme == "file":
        allowed_local_path(uri, where)
        return
    raise ProfileError(f"{where}: uri {uri[:80]!r} must be an http(s) address or a file:// path the server allows",
                       "variable")


def allowed_local_path(uri, where):
    """The resolved local path of a file:// uri inside ``[server] allowedinputpaths``."""
    try:
        return allowed_file(uri)
    except FileURLNotSupported as exc:
        raise ProfileError(f"{where}: {exc.description}", "variable") from None


# ---------------------------------------------------------------------------------------------
# parameters: checked against the native literal inputs


def convert_parameter(name, raw, literal, where):
    """A CWT parameter value (a string; several values joined by '|') as the native literal's type."""
    if isinstance(raw, list):
        values = raw
    elif isinstance(raw, (str, int, float, bool)):
        values = str(raw).split("|") if isinstance(raw, str) else [raw]
    else:
        raise ProfileError(f"{where}: parameter {name} must be a string, not {json.dumps(raw)[:60]}", "operation")
    if len(values) != 1:
        raise ProfileError(f"{where}: parameter {name} takes one value, not {len(values)}", "operation")
    value = values[0]
    text = str(value).strip()
    kind = literal.data_type if literal is not None else "string"
    if kind == "integer":
        try:
            converted = int(text)
        except ValueError:
            raise ProfileError(f"{where}: parameter {name} must be a whole number, not {text!r}", "operation") from None
    elif kind == "float":
        try:
            converted = float(text)
        except ValueError:
            raise ProfileError(f"{where}: parameter {name} must be a number, not {text!r}", "operation") from None
        if not math.isfinite(converted):
            raise ProfileError(f"{where}: parameter {name} must be a finite number", "operation")
    elif kind == "boolean":
        if text.lower() not in TRUE_WORDS + FALSE_WORDS:
            raise ProfileError(f"{where}: parameter {name} must be true or false, not {text!r}", "operation")
        converted = text.lower() in TRUE_WORDS
    else:
        if not text:
            raise ProfileError(f"{where}: parameter {name} is empty", "operation")
        converted = text
    allowed = [a for a in (getattr(literal, "allowed_values", None) or []) if isinstance(a, AllowedValue)]
    ranges = [a for a in allowed if a.minval is not None or a.maxval is not None]
    values_allowed = [a.value for a in allowed if a.value is not None]
    if values_allowed and converted not in values_allowed:
        raise ProfileError(f"{where}: parameter {name} is {text!r}; allowed: {', '.join(map(str, values_allowed))}",
                           "operation")
    if ranges and not any((a.minval is None or converted >= a.minval) and (a.maxval is None or converted <= a.maxval)
                          for a in ranges):
        span = ", ".join(f"{a.minval} to {a.maxval}" for a in ranges)
        raise ProfileError(f"{where}: parameter {name} is {text}; it must lie in {span}", "operation")
    return converted


# ---------------------------------------------------------------------------------------------
# the processes


class EsgfProcess(LakesProcess):
    """A native process under the CWT profile. Subclasses set ``native_class`` and ``roles``."""

    native_class = None
    operation = ""     # e.g. "split": the identifier is LAKES.<operation>
    roles = {}         # CWT role -> the native complex input it feeds
    title = ""
    abstract = ""

    def __init__(self):
        self.native = self.native_class()
        self.uses_gpu = self.native_class.uses_gpu
        native_inputs = {i.identifier: i for i in self.native.inputs}
        self.literals = {i.identifier: i for i in self.native.inputs if isinstance(i, LiteralInput)}
        self.role_inputs = {role: native_inputs[ident] for role, ident in self.roles.items()}
        role_text = "; ".join(f"{role}: {self.role_inputs[role].title}"
                              + (" (required)" if self.role_inputs[role].min_occurs else "")
                              for role in self.roles)
        params = ", ".join(self.parameter_names())
        inputs = [
            ComplexInput(
                "variable", "Variables (CWT JSON)",
                abstract='JSON array of {"uri": ..., "id": "<role>|<label>", "domain": "<domain id>"}. Roles: '
                         f"{role_text}. Uris: http(s), or file:// inside the server's allowed input folders.",
                supported_formats=[JSON], min_occurs=1, max_occurs=1),
            ComplexInput(
                "domain", "Domains (CWT JSON)",
                abstract='JSON array of {"id": "d0", "lat": {"start": .., "end": .., "step": 1, "crs": "values"}, '
                         '"lon": {...}}; x/y give the box in the data\'s CRS, "crs": "indices" in DEM pixels. '
                         "The inputs are cut to the domain before any work. May be [].",
                supported_formats=[JSON], min_occurs=0, max_occurs=1),
            ComplexInput(
                "operation", "Operation (CWT JSON)",
                abstract=f'JSON array with one {{"name": "{self.identifier_name()}", "result": "op0", "domain": '
                         f'"d0", "input": ["<label>", ...], <parameter>: "<value>"}}. Parameters: {params}.',
                supported_formats=[JSON], min_occurs=1, max_occurs=1),
        ]
        outputs = [ComplexOutput(
            "output", "Result files (CWT JSON)",
            abstract='JSON list of {"uri": ..., "id": "<name>|<result>", "mime_type": ..., "mime-type": ...}, the '
                     "main result first; the uris are served by this server.",
            supported_formats=[JSON], as_reference=False)]
        super().__init__(
            identifier=self.identifier_name(), title=self.title, abstract=self.abstract,
            keywords=["ESGF", "CWT", "compute"] + list(self.native.keywords),
            metadata=METADATA + [Metadata("ESGF compute clients",
                                          "https://github.com/wps-lakes/wps_lakes/blob/main/docs/esgf.rst")],
            version="1.0", inputs=inputs, outputs=outputs)

    @classmethod
    def identifier_name(cls):
        return f"{PREFIX}.{cls.operation}"

    def parameter_names(self):
        names = list(self.literals)
        if "dem" in self.roles:
            names.append(DEM_VARIABLE)
        return names

    def runs_long(self, cwt):
        """Jobs that run a model are queued even when the client asked for a synchronous answer."""
        return self.always_async or any(v.role == "checkpoint" for v in cwt.variables)

    def wall_time_limit(self):
        return self.native_class.wall_time_limit(self)

    def needs_gpu(self, wps_request):
        return self.uses_gpu or self.runs_long(self.parse(wps_request.inputs))

    # -- request time -------------------------------------------------------------------------

    def execute(self, wps_request, uuid):
        try:
            cwt = self.parse(wps_request.inputs)
        except ProfileError as exc:
            raise InvalidParameterValue(str(exc), exc.locator) from None
        if self.runs_long(cwt) and wps_request.http_request is not None:
            # A WPS 1.0.0 request straight from a client (the CWT client never asks for async).
            self.always_async = True
        return super().execute(wps_request, uuid)

    def parse(self, inputs):
        texts = {}
        for name in ("variable", "domain", "operation"):
            given = inputs.get(name) or []
            if len(given) > 1:
                raise ProfileError(f"{name} is given {len(given)} times; give it once", name)
            if not given:
                texts[name] = None
                continue
            if getattr(given[0], "prop", None) == "url":
                raise ProfileError(f"{name} must be given inline (the JSON itself), not by reference", name)
            texts[name] = given[0].data
        if texts["variable"] is None or texts["operation"] is None:
            missing = "variable" if texts["variable"] is None else "operation"
            raise ProfileError(f"{missing} is missing: CWT requests carry variable, domain and operation", missing)
        domains = parse_domains(load_json_list(texts["domain"], "domain"))
        variables = parse_variables(load_json_list(texts["variable"], "variable"), list(self.roles), domains)
        operation = self.parse_operation(load_json_list(texts["operation"], "operation"), variables, domains)
        used = [variables[label] for label in operation.inputs] if operation.inputs else list(variables.values())
        for role, definition in self.role_inputs.items():
            count = sum(v.role == role for v in used)
            if count < definition.min_occurs:
                raise ProfileError(f"{self.identifier} needs a {role} variable ({definition.title}); add one with id "
                                   f'"{role}|<label>"', "variable")
            if count > definition.max_occurs:
                raise ProfileError(f"{self.identifier} takes at most {definition.max_occurs} {role} variable(s), not "
                                   f"{count}", "variable")
        cwt = CwtRequest(used, domains, operation)
        for domain_id, extent in domains.items():
            users = [v for v in used if cwt.domain_id(v) == domain_id]
            if extent is not None and extent.units == "pixels" and users:
                if sum(v.role == "dem" for v in users) != 1:
                    raise ProfileError(f"{extent.label} is given in DEM pixel indices: it needs exactly one dem "
                                       "variable cut to it", "domain")
        return cwt

    def parse_operation(self, items, variables, domains):
        known = {cls.identifier_name() for cls in ESGF_PROCESSES}
        if not items:
            raise ProfileError("operation is empty; give one operation", "operation")
        if len(items) > 1:
            raise ProfileError(f"operation holds {len(items)} operations; this server runs one per request (chained "
                               "workflows are not supported): send them one after the other", "operation")
        item = items[0]
        name = _text(item, "name", "operation[0]", "operation")
        if name not in known:
            raise ProfileError(f"operation names unknown process {name!r}; this server runs {', '.join(sorted(known))}",
                               "operation")
        if name != self.identifier:
            raise ProfileError(f"operation names {name} but this request executes {self.identifier}", "operation")
        result = _text(item, "result", "operation[0]", "operation", required=False) or "output"
        if "|" in result:
            raise ProfileError(f"operation result {result!r} must not contain '|'", "operation")
        where = f"operation {result}"
        domain = item.get("domain")
        if domain is not None and (not isinstance(domain, str) or domain not in domains):
            raise ProfileError(f"{where} names domain {domain!r}, which is not in the domain input"
                               + (f" (domains: {', '.join(domains)})" if domains else " (no domain is given)"),
                               "operation")
        inputs = item.get("input", [])
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            raise ProfileError(f"{where}: input must be a list of variable labels", "operation")
        for label in inputs:
            if label not in variables:
                raise ProfileError(f"{where} names input {label!r}, which is not a variable label"
                                   + (f" (variables: {', '.join(variables)})" if variables else ""), "operation")
        if len(set(inputs)) != len(inputs):
            raise ProfileError(f"{where} names an input twice", "operation")
        parameters = {}
        for key, raw in item.items():
            if key in ("name", "result", "domain", "input"):
                continue
            if key == DEM_VARIABLE and "dem" in self.roles:
                parameters[key] = convert_parameter(key, raw, None, where)
                continue
            if key not in self.literals:
                raise ProfileError(f"{where}: unknown parameter {key!r}; {self.identifier} takes "
                                   f"{', '.join(self.parameter_names())}", "operation")
            parameters[key] = convert_parameter(key, raw, self.literals[key], where)
        return Operation(name=name, result=result, domain=domain or None, inputs=inputs, parameters=parameters)

    # -- in the job ---------------------------------------------------------------------------

    def handle(self, request, response):
        try:
            cwt = self.parse(request.inputs)
        except ProfileError as exc:  # checked at request time already; a job rebuilt elsewhere checks again
            raise LakesError(str(exc)) from None
        response.update_status("Fetching the inputs", 1)
        files = self.prepare_inputs(cwt, response)
        native_inputs = {self.roles[role]: [SimpleNamespace(prop="file", file=str(path), data=None) for path in paths]
                         for role, paths in files.items() if paths}
        for key, value in cwt.operation.parameters.items():
            if key in self.literals:
                native_inputs[key] = [SimpleNamespace(prop="data", data=value)]
        native = self.native_class()
        native._set_uuid(self.uuid)
        native.set_workdir(self.workdir)
        outputs = ResultFiles(self, response, cwt.operation.result)
        native.handle(SimpleNamespace(inputs=native_inputs), outputs)
        document = outputs.document()
        if not document:
            raise LakesError(f"{self.identifier} produced no result file")
        response.set_data("output", xml_safe_json(document))

    def prepare_inputs(self, cwt, response):
        """role -> local paths, fetched under the reference rules and cut to their domain."""
        from ..geodata.subset import OutsideError, clip_vector, crop_dem, raster_format

        work = Path(self.workdir) / "esgf"
        files = {role: [] for role in self.roles}
        areas = {}  # domain id -> Area of the DEM cut to it (pixel and x/y domains cut vectors to it)
        dems = cwt.by_role("dem")
        outside = []
        for number, variable in enumerate(dems):
            extent = cwt.extent(variable)
            source = self.fetch(variable, work / f"in{number}")
            opendap = isinstance(source, str)
            if not opendap and extent is None and raster_format(source) != "netcdf":
                files["dem"].append(source)
                continue
            if extent is not None:
                response.update_status(f"Cutting {variable.label} to {extent.label}", 2)
            else:
                response.update_status(f"Converting {variable.label} from NetCDF to GeoTIFF", 2)
            try:
                cropped = crop_dem(source, work / "subset" / f"dem{number}.tif", extent,
                                   variable=cwt.operation.parameters.get(DEM_VARIABLE), limits=self.limits())
            except OutsideError as exc:
                outside.append(exc)
                continue
            files["dem"].append(cropped.path)
            areas.setdefault(cwt.domain_id(variable), cropped.area)
        if dems and not files["dem"]:
            raise outside[0]  # every DEM lies outside its domain
        for number, variable in enumerate(v for v in cwt.variables if v.role != "dem"):
            path = self.fetch(variable, work / f"in{len(dems) + number}")
            extent = cwt.extent(variable)
            if extent is not None and variable.role in ("hydro", "detections"):
                response.update_status(f"Cutting {variable.label} to {extent.label}", 3)
                area = areas.get(cwt.domain_id(variable)) if extent.units != "lonlat" else None
                path = clip_vector(path, work / "subset" / f"{variable.role}{number}.geojson", extent=extent,
                                   area=area, limits=self.limits())
            files[variable.role].append(path)
        return files

    def fetch(self, variable, folder):
        """A local path for the variable's uri; an OPeNDAP address stays an address (read lazily)."""
        parsed = urlparse(variable.uri)
        if parsed.scheme.lower() == "file":
            try:
                path = allowed_local_path(variable.uri, f"variable {variable.label}")
            except ProfileError as exc:
                raise LakesError(str(exc)) from None
            return local_input_file(path, self.workdir)
        if variable.role == "dem" and opendap_host(parsed):
            return variable.uri
        folder.mkdir(parents=True, exist_ok=True)
        return fetch_reference(variable.uri, folder, settings.reference_policy(), self.limits())


def xml_safe_json(value):
    """JSON text that can sit in XML as it is: PyWPS writes JSON outputs into the response unescaped,
    so <, > and & (a label may hold them) are written as JSON escapes, which read back the same."""
    return json.dumps(value).replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def opendap_host(parsed):
    """True when the uri's host is one the operator lists for OPeNDAP access (``[esgf] opendap_hosts``)."""
    hosts = settings.section("esgf").get("opendap_hosts", "")
    allowed = {h.strip().lower() for h in re.split(r"[\s,]+", hosts) if h.strip()}
    host = (parsed.hostname or "").lower()
    port = parsed.port or (443 if parsed.scheme.lower() == "https" else 80)
    return bool(host) and (host in allowed or f"{host}:{port}" in allowed)


class ResultFiles:
    """Stands in for the job's response while the native process runs: its published files become
    the CWT output list (also shown, as far as it goes, in the running job's status documents)."""

    def __init__(self, process, response, result):
        self._process = process
        self._response = response
        self._result = result
        self._files = {}  # native output identifier -> path
        self._formats = {o.identifier: o.data_format.mime_type for o in process.native.outputs}
        self._order = [o.identifier for o in process.native.outputs]

    def publish(self, identifier, path):
        self._files[identifier] = Path(path)
        self._response.set_data("output", xml_safe_json(self.document()))

    def update_status(self, message, status_percentage=None):
        return self._response.update_status(message, status_percentage)

    def __getattr__(self, name):
        return getattr(self._response, name)

    def document(self):
        main = self._files.get("output")
        entries, seen = [], set()
        for identifier in sorted((i for i in self._order if i in self._files and i != "output"),
                                 key=lambda i: (self._files[i] != main, self._order.index(i))):
            path = self._files[identifier]
            if path in seen:
                continue
            seen.add(path)
            mime = self._formats.get(identifier, "application/octet-stream")
            entries.append({"uri": jobfiles.job_output_url(self._process.uuid, path),
                            "id": f"{OUTPUT_NAMES.get(identifier, identifier)}|{self._result}",
                            "mime_type": mime, "mime-type": mime})
        return entries


class EsgfTrain(EsgfProcess):
    native_class = Train
    operation = "train"
    always_async = True
    roles = {"config": "config", "dem": "raster", "hydro": "vector", "checkpoint": "checkpoint"}
    title = "Train a lake detector (ESGF compute)"
    abstract = ("The train process for ESGF compute (CWT) clients: trains a lake detector on a DEM (GeoTIFF or CF "
                "NetCDF) and a hydro layer with lake/river labels (TYPECE), cut to the domain. Always runs "
                "asynchronously. Returns the best checkpoint (id checkpoint|<result>), the latest one, metrics, "
                "curves and the log.")


class EsgfDetect(EsgfProcess):
    native_class = Detect
    operation = "detect"
    always_async = True
    roles = {"checkpoint": "checkpoint", "dem": "raster", "hydro": "vector"}
    title = "Detect lakes (ESGF compute)"
    abstract = ("The detect process for ESGF compute (CWT) clients: boxes the lakes of a DEM (GeoTIFF or CF "
                "NetCDF) and a hydro layer, cut to the domain, with a trained detector checkpoint. Runs "
                "asynchronously. Returns the detections (GeoJSON, id detections|<result>) and a quicklook.")


class EsgfSplit(EsgfProcess):
    native_class = Split
    operation = "split"
    roles = {"hydro": "vector", "detections": "detections", "checkpoint": "checkpoint", "dem": "raster"}
    title = "Split waterbodies into lakes and rivers (ESGF compute)"
    abstract = ("The split process for ESGF compute (CWT) clients: splits the waterbodies (hydro) cut to the domain "
                "into lake and river parts from lake detections, or from a checkpoint (then it detects first and "
                "runs asynchronously), with the DEM (GeoTIFF or CF NetCDF) when given. Returns the split "
                "hydrography (id hydro|<result>), lakes, rivers and a quicklook.")


ESGF_PROCESSES = (EsgfTrain, EsgfDetect, EsgfSplit)
