"""Property-based tests (hypothesis) on the parsers that read what a request carries.

Whatever the input, each parser gives a result or the library's own error, never another exception:

- GeoJSON: ``geodata.read_vector`` on arbitrary bytes, arbitrary JSON and GeoJSON-shaped documents
  with hostile coordinates -> a GeoDataFrame of valid polygons, or LakesError;
- session configs: ``detector.config.load_config`` on the seed config mutated anywhere, with
  ``type`` strings that name code (os.system, builtins.eval, ...) -> a SessionConfig or LakesError,
  and nothing a config names is ever imported;
- KVP: any query string to /wps of the live service (WPS 1.0.0 and 2.0.0 KVP, DataInputs with
  references of every scheme) -> a capabilities/description document or an OWS ExceptionReport,
  never a 500, never a traceback. The server runs no job: parallelprocesses = 0 answers every
  Execute that passes validation with ServerBusy (503 by design).
"""
import copy
import json
import math
import string
import sys

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from wps_lakes.errors import LakesError
from wps_lakes.limits import Limits

from .common import LiveServer

SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                         HealthCheck.too_slow], derandomize=True)
SMALL = Limits(max_vector_features=50, max_vector_vertices=2000)

# ---------------------------------------------------------------------------------------------
# GeoJSON

numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30),
                    st.floats(-180, 180), st.floats(-90, 90), st.sampled_from([0, -0.0, 1e308, -1e308, 5e-324]))
json_scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)), max_leaves=20)
positions = st.lists(numbers, min_size=0, max_size=4)
lonlat = st.tuples(st.floats(-75.1, -74.9), st.floats(44.9, 45.1)).map(list)
rings = st.one_of(st.lists(positions, max_size=6), st.lists(lonlat, min_size=3, max_size=8).map(lambda r: r + r[:1]))
coordinates = st.one_of(json_values, st.lists(rings, max_size=3), st.lists(st.lists(rings, max_size=2), max_size=2))
geometry_types = st.sampled_from(["Polygon", "MultiPolygon", "Point", "LineString", "MultiPoint",
                                  "GeometryCollection", "Polygonz", "", "Feature"])
geometries = st.one_of(st.none(), json_values, st.fixed_dictionaries(
    {"type": geometry_types, "coordinates": coordinates},
    optional={"geometries": st.lists(json_values, max_size=2), "bbox": json_values}))
properties = st.one_of(st.none(), json_values, st.dictionaries(
    st.sampled_from(["TYPECE", "typece", "OBJECTID", "name", "", "geometry", "TYPECE "]),
    st.one_of(json_scalars, st.sampled_from(["10", "21", " 21 ", "10.0", 21, 10.0])), max_size=4))
features = st.one_of(json_values, st.fixed_dictionaries(
    {"type": st.sampled_from(["Feature", "feature", "FeatureCollection"]), "geometry": geometries,
     "properties": properties}))
crs_names = st.one_of(st.sampled_from(
    ["urn:ogc:def:crs:EPSG::2959", "EPSG:4326", "EPSG:99999999", "+proj=longlat +a=1", "IAU_2015:30100",
     "urn:ogc:def:crs:OGC:1.3:CRS84", "EPSG:4978", "ENGCRS[\"x\"]"]), st.text(max_size=30))
crs_properties = st.one_of(json_values, st.fixed_dictionaries({"name": crs_names}),
                           st.fixed_dictionaries({"code": st.one_of(st.integers(-5, 100000), json_scalars)}))
crs_members = st.one_of(st.none(), json_values, st.fixed_dictionaries(
    {"type": st.sampled_from(["name", "EPSG", "link"]), "properties": crs_properties}))
polygon_coordinates = st.one_of(st.lists(rings, min_size=1, max_size=2),
                                st.lists(lonlat, min_size=3, max_size=8).map(lambda r: [r + r[:1]]))
good_geometries = st.one_of(
    st.fixed_dictionaries({"type": st.just("Polygon"), "coordinates": polygon_coordinates}),
    st.fixed_dictionaries({"type": st.just("MultiPolygon"), "coordinates": st.lists(polygon_coordinates,
                                                                                    min_size=1, max_size=2)}))
good_features = st.fixed_dictionaries({"type": st.just("Feature"), "geometry": good_geometries,
                                       "properties": properties})
projected = st.fixed_dictionaries({"type": st.just("name"), "properties": st.fixed_dictionaries(
    {"name": st.sampled_from(["urn:ogc:def:crs:EPSG::4326", "urn:ogc:def:crs:OGC:1.3:CRS84", "EPSG:3857",
                              "EPSG:4978", "+proj=longlat +a=1"])})})
mostly_good = st.fixed_dictionaries({"type": st.just("FeatureCollection"),
                                     "features": st.one_of(st.lists(good_features, min_size=1, max_size=5),
                                                           st.lists(st.one_of(good_features, features),
                                                                    min_size=1, max_size=3))},
                                    optional={"crs": projected})
hostile = st.fixed_dictionaries(
    {"type": st.sampled_from(["FeatureCollection", "FeatureCollection", "Feature", "featurecollection"]),
     "features": st.one_of(st.lists(features, max_size=5), json_values)},
    optional={"crs": crs_members, "bbox": json_values})
collections = st.one_of(mostly_good, hostile)


def dump(document):
    return json.dumps(document, allow_nan=True).encode()


def check_geojson(tmp_path, data, name="in.geojson"):
    path = tmp_path / name
    path.write_bytes(data)
    try:
        gdf = read_vector(path, limits=SMALL)
    except LakesError as exc:
        assert str(exc)
        return None
    assert len(gdf) >= 1 and gdf.crs is not None
    assert set(gdf.geom_type) <= {"Polygon", "MultiPolygon"}
    assert gdf.geometry.is_valid.all() and not gdf.geometry.is_empty.any()
    assert all(math.isfinite(v) for v in gdf.total_bounds)
    return gdf


from wps_lakes.geodata import read_vector  # noqa: E402  (after the strategies: the import is slow)


@settings(SETTINGS, max_examples=150)
@given(document=collections)
def test_geojson_documents(tmp_path, document):
    check_geojson(tmp_path, dump(document))


@settings(SETTINGS, max_examples=60)
@given(document=json_values)
def test_geojson_any_json(tmp_path, document):
    assert check_geojson(tmp_path, dump(document)) is None


@settings(SETTINGS, max_examples=60)
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=200).map(str.encode),
                      st.text(alphabet="[]{},:\"0123456789.-eE ntrufals", max_size=300).map(str.encode),
                      st.integers(1, 100000).map(lambda n: b"[" * n), st.integers(1, 50000).map(
                          lambda n: b'{"type":"FeatureCollection","features":' + b"[" * n)))
def test_geojson_any_bytes(tmp_path, data):
    assert check_geojson(tmp_path, data) is None


def test_geojson_vertex_limit_before_parsing(tmp_path):
    """The vertex limit is applied on the raw file: a layer over it is refused naming the limit."""
    ring = [[-75 + i * 1e-5, 45 + (i % 2) * 1e-5] for i in range(3000)]
    document = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring + ring[:1]]}}]}
    path = tmp_path / "many.geojson"
    path.write_text(json.dumps(document, indent=1))
    with pytest.raises(LakesError, match="max_vector_vertices = 2,000"):
        read_vector(path, limits=SMALL)


# ---------------------------------------------------------------------------------------------
# session configs

CODE_NAMES = ["os.system", "builtins.eval", "builtins.exec", "__import__", "subprocess.Popen",
              "posix.system", "importlib.import_module", "antigravity.fly", "this.d", "pty.spawn",
              "torchvision.models.detection.fasterrcnn_resnet50_fpn", "torch.optim.SGD",
              "thelper.data.geo.ogc.TB15D104Dataset", "fasterrcnn_resnet50_fpn", "x" * 300, "", "os",
              "__builtins__.__import__('os').system('touch /tmp/wps-lakes-pwned')"]
NEVER_IMPORTED = ("antigravity", "this", "pty", "turtle")
TYPE_PLACES = [("model",), ("datasets", "testbed15"), ("trainer", "optimization", "optimizer"),
               ("trainer", "optimization", "scheduler"), ("loaders", "collate_fn")]


def seed_config():
    from .detector.test_config import SEED_CONFIG

    return json.loads(SEED_CONFIG.read_text())


SEED = seed_config()


def paths(document, prefix=()):
    """Every (path, container) in a JSON document, for mutation."""
    yield prefix
    if isinstance(document, dict):
        for key, value in document.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from paths(value, prefix + (index,))


SEED_PATHS = list(paths(SEED))


@st.composite
def mutated_configs(draw):
    config = copy.deepcopy(SEED)
    for _ in range(draw(st.integers(0, 4))):
        path = draw(st.sampled_from(SEED_PATHS))
        parent, key = None, None
        node = config
        try:
            for step in path:
                parent, key, node = node, step, node[step]
        except (KeyError, IndexError, TypeError):
            continue
        action = draw(st.sampled_from(["replace", "delete", "add", "type"]))
        if action == "replace" and parent is not None:
            parent[key] = draw(json_values)
        elif action == "delete" and isinstance(parent, dict):
            parent.pop(key, None)
        elif action == "add" and isinstance(node, dict):
            node[draw(st.text(max_size=10))] = draw(json_values)
        elif action == "type":
            place = draw(st.sampled_from(TYPE_PLACES))
            target = config
            for step in place:
                target = target.get(step) if isinstance(target, dict) else None
            if isinstance(target, dict):
                target["type"] = draw(st.sampled_from(CODE_NAMES))
    return config


@settings(SETTINGS, max_examples=200)
@given(config=st.one_of(mutated_configs(), json_values))
def test_config_parser(config):
    from wps_lakes.detector.config import SessionConfig, load_config

    before = set(sys.modules)
    try:
        result = load_config(config, limits=Limits(max_epochs=1000))
    except LakesError as exc:
        assert str(exc)
    else:
        assert isinstance(result, SessionConfig)
        json.dumps(result.to_dict())  # plain data only
    imported = set(sys.modules) - before
    assert not imported & set(NEVER_IMPORTED), imported


@settings(SETTINGS, max_examples=60)
@given(place=st.sampled_from(TYPE_PLACES), name=st.sampled_from([n for n in CODE_NAMES if "." in n]))
def test_config_types_name_no_code(place, name):
    """A ``type`` naming code is refused with the allow-list, unless it is an allowed name."""
    from wps_lakes.detector.config import load_config

    config = copy.deepcopy(SEED)
    target = config
    for step in place:
        target = target.setdefault(step, {})
    target["type"] = name
    try:
        load_config(config)
    except LakesError as exc:
        assert "allowed" in str(exc) or "unknown" in str(exc), exc
    else:
        assert name.rsplit(".", 1)[-1] in ("fasterrcnn_resnet50_fpn", "SGD", "TB15D104Dataset"), name


# ---------------------------------------------------------------------------------------------
# KVP requests to the live service


@pytest.fixture(scope="module")
def kvp_server(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("kvp-server"), extra_cfg={
        "server": {"parallelprocesses": "0", "maxprocesses": "0", "maxrequestsize": "1mb"}}).start()
    (server.inputs / "hydro.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    yield server
    server.stop()


OWS_NAMESPACES = ("http://www.opengis.net/ows/1.1", "http://www.opengis.net/ows/2.0")
keys = st.sampled_from(["service", "SERVICE", "request", "Request", "version", "identifier", "Identifier",
                        "DataInputs", "datainputs", "ResponseDocument", "RawDataOutput", "storeExecuteResponse",
                        "status", "lineage", "AcceptVersions", "language", "jobid", "f", "x", ""])
words = st.sampled_from(["WPS", "wps", "WMS", "GetCapabilities", "DescribeProcess", "Execute", "GetStatus",
                         "GetResult", "Dismiss", "1.0.0", "2.0.0", "0.9", "split", "detect", "train", "all",
                         "nosuch", "true", "false", "en-US", "xx", "json", "", "../../etc/passwd", "%00", "'"])
hrefs = st.sampled_from(["http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:1/x.geojson",
                         "http://localhost/x", "http://[::1]/x", "http://2130706433/x", "http://10.0.0.1/x",
                         "file:///etc/passwd", "file://{inputs}/hydro.geojson", "file://{inputs}/../test.cfg",
                         "file://{inputs}-x/a", "gopher://127.0.0.1/x", "ftp://example.org/x", "x", ""])
literals = st.one_of(st.sampled_from(["0.5", "abc", "7", "-1", "NaN", "inf", "1e400", "refined", "boxes",
                                      "quantum", "", "500", "64", "5000", "true"]), st.text(max_size=12))
input_ids = st.sampled_from(["vector", "detections", "raster", "checkpoint", "method", "score_threshold",
                             "tile_size", "tile_overlap", "epochs", "config", "nosuch", ""])
attributes = st.sampled_from(["@method=POST", "@bodyreference=http://127.0.0.1:1/b", "@mimeType=application/geo+json",
                              "@mimeType=text/evil", "@encoding=base64", "@datatype=float", "@uom=m", "@=",
                              "@xlink:href=", "@schema=http://127.0.0.1:1/s"])


@st.composite
def data_inputs(draw):
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        identifier = draw(input_ids)
        if draw(st.booleans()):
            part = f"{identifier}=@xlink:href={draw(hrefs)}"
        else:
            part = f"{identifier}={draw(literals)}"
        part += "".join(draw(st.lists(attributes, max_size=2)))
        parts.append(part)
    return ";".join(parts) if parts or draw(st.booleans()) else draw(st.text(max_size=30))


@st.composite
def queries(draw):
    params = [("service", draw(st.sampled_from(["WPS", "WPS", "wps", "", "WMS"])))]
    params.append(("request", draw(st.sampled_from(["GetCapabilities", "DescribeProcess", "Execute", "Execute",
                                                     "GetStatus", "GetResult", "Dismiss", "execute", "nope"]))))
    if draw(st.booleans()):
        params.append(("version", draw(st.sampled_from(["1.0.0", "2.0.0", "3", ""]))))
    if draw(st.booleans()):
        params.append(("identifier", draw(st.sampled_from(["split", "detect", "train", "all", "split,detect",
                                                            "nosuch", ""]))))
    if draw(st.booleans()):
        params.append(("DataInputs", draw(data_inputs())))
    for _ in range(draw(st.integers(0, 3))):
        params.append((draw(keys), draw(st.one_of(words, st.text(max_size=15)))))
    return params


# 5xx answers that OWS Common 2.0 prescribes for what the client asked: anything else is a server error.
BY_DESIGN_5XX = {503: "ServerBusy", 501: "OperationNotSupported"}


def check_kvp_response(response):
    """A document, or a well-formed OWS ExceptionReport with a message; 5xx only by design.

    PyWPS answers ``f=json`` requests in JSON: the report is then {"name": code, "description": ...}.
    """
    assert b"Traceback" not in response.content and b"site-packages" not in response.content
    is_json = response.headers.get("Content-Type", "").startswith("application/json")
    if response.status_code < 400:
        assert response.status_code == 200
        assert json.loads(response.content) if is_json else etree.fromstring(response.content) is not None
        return
    if is_json:
        report = json.loads(response.content)
        codes, texts = [report["name"]], [report["description"]]
    else:
        root = etree.fromstring(response.content)  # well-formed, whatever the request echoed
        assert etree.QName(root).localname == "ExceptionReport" and etree.QName(root).namespace in OWS_NAMESPACES
        codes = [e.get("exceptionCode") for e in root.iter("{*}Exception")]
        texts = [t.text for t in root.iter("{*}ExceptionText")]
    assert texts and all(t and t.strip() for t in texts), response.text[:500]
    if response.status_code >= 500:
        assert codes == [BY_DESIGN_5XX.get(response.status_code)], (response.status_code, response.text[:500])


@settings(SETTINGS, max_examples=150)
@given(params=queries())
def test_kvp_requests(kvp_server, params):
    params = [(k, v.replace("{inputs}", str(kvp_server.inputs))) for k, v in params]
    response = requests.get(kvp_server.url, params=params, timeout=60)
    check_kvp_response(response)


@settings(SETTINGS, max_examples=60)
@given(query=st.text(alphabet=string.printable + "é\u2028", max_size=120))
def test_kvp_raw_query_strings(kvp_server, query):
    response = requests.get(f"{kvp_server.url}?{query}", timeout=60)
    check_kvp_response(response)


def test_kvp_server_ran_no_job_and_is_healthy(kvp_server):
    assert kvp_server.is_healthy()
    outputs = kvp_server.outputpath
    assert not [p for p in outputs.rglob("*") if p.is_file() and p.suffix != ".xml"]
