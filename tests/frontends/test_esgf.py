"""The ESGF compute (CWT) profile against the live server, replaying the ESGF client with plain OWSLib 0.35.

The client (esgf-compute-api's ``cwt.WPSClient``) builds ``WebProcessingService(url, version="1.0.0",
skip_caps=True, headers=...)``, reads the capabilities by GET, sends a bare ``GET /wps`` before each
POST, executes with exactly three inline JSON inputs and no output list, polls ``checkStatus`` and reads
``json.loads(processOutputs[0].data[0])``. Here the same calls go to a server whose Execute needs a
token, and (without a token) to the open session server.
"""
import json
import re
import sqlite3
import time
import xml.etree.ElementTree as ET

import geopandas as gpd
import pytest
import requests
from lxml import etree
from owslib.util import ServiceException
from owslib.wps import ComplexDataInput, WebProcessingService, WPSExecution
from rasterio.warp import transform_bounds
from shapely.geometry import box

from wps_lakes.geodata import LAKE, make_scene, read_vector, write_geojson

from ..common import LiveServer
from ..geodata.test_subset import write_netcdf_dem

TOKEN = "esgf-test-token-5f0c2b7e9a41"
OTHER_TOKEN = "second-token-81d3"
TINY_CONFIG = {  # the lightest real session: the CPU model, one epoch of two iterations
    "name": "tiny", "datasets": {"a": {"params": {}}, "b": {"params": {}}},
    "loaders": {"batch_size": 2, "train_split": {"a": 1}, "valid_split": {"b": 1}},
    "model": {"type": "fcos_mobilenet_v3_large_fpn", "params": {"image_scale": 0.25}},
    "trainer": {"epochs": 1, "max_iters_per_epoch": 2, "threads": 1},
}
OWS = "{http://www.opengis.net/ows/1.1}"


def put_scene(folder):
    """A synthetic scene with its DEM as CF NetCDF too, true lake boxes and a tiny training config."""
    paths = make_scene(folder, seed=7, size_m=1500)
    paths["netcdf"] = write_netcdf_dem(paths["dem"], folder / "dem.nc")
    hydro = read_vector(paths["hydro"])
    lakes = hydro[hydro["TYPECE"] == LAKE]
    boxes = gpd.GeoDataFrame({"confidence": [1.0] * len(lakes)}, geometry=lakes.envelope.values, crs=hydro.crs)
    paths["true_boxes"] = write_geojson(boxes, folder / "true_boxes.geojson")
    paths["config"] = folder / "tiny.json"
    paths["config"].write_text(json.dumps(TINY_CONFIG))
    return {name: f"file://{path}" for name, path in paths.items()}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server whose Execute needs a token; the tokens live in a file outside its folder."""
    secrets = tmp_path_factory.mktemp("secrets")
    (secrets / "tokens").write_text(f"# ESGF compute tokens\n{TOKEN}\n{OTHER_TOKEN}\n")
    live = LiveServer(tmp_path_factory.mktemp("esgf-server"),
                      extra_cfg={"esgf": {"tokens_file": str(secrets / "tokens")}}).start()
    live.scene = put_scene(live.inputs / "scene")
    yield live
    live.stop()


@pytest.fixture(scope="module")
def library():
    """The split and detect library calls the native processes (and so these) run."""
    from wps_lakes.detector import inference
    from wps_lakes.hydro import split

    if not (hasattr(split, "split_to_files") and hasattr(inference, "detect_to_files")):
        pytest.skip("the split/detect library calls (split_to_files, detect_to_files) have not landed yet")


@pytest.fixture(scope="module")
def open_scene(live_server):
    return put_scene(live_server.inputs / "esgf-scene")


# ---------------------------------------------------------------------------------------------
# the client's calls


def client(url, token=None):
    headers = {"COMPUTE-TOKEN": token} if token else {}
    wps = WebProcessingService(url, version="1.0.0", skip_caps=True, headers=headers)
    wps.getcapabilities()  # by GET, as the client does before anything else
    return wps


def cwt_inputs(variables, domains, operations):
    return [(name, ComplexDataInput(json.dumps(value), mimeType="application/json"))
            for name, value in (("variable", variables), ("domain", domains), ("operation", operations))]


def execute_xml(identifier, inputs):
    """The Execute document OWSLib posts for these inputs (no output list, as the client)."""
    return etree.tostring(WPSExecution(version="1.0.0").buildRequest(identifier, inputs))


def cwt_execute(wps, identifier, variables, domains, operations, timeout=600):
    """Execute as the client does, poll until complete; returns the execution and the states seen."""
    cookie = requests.get(wps.url, headers=wps.headers, timeout=30)  # the client's bare GET before each POST
    assert cookie.status_code < 500
    execution = wps.execute(identifier, cwt_inputs(variables, domains, operations))
    seen = [(execution.status, execution.percentCompleted)]
    deadline = time.monotonic() + timeout
    while not execution.isComplete():
        assert time.monotonic() < deadline, f"job did not end: {execution.statusMessage}"
        time.sleep(0.5)
        execution.checkStatus(sleepSecs=0)
        seen.append((execution.status, execution.percentCompleted))
    return execution, seen


def read_output(execution):
    """What the client reads: the first output, inline, as JSON; every uri downloaded."""
    assert execution.isSucceded(), [e.text for e in execution.errors]
    document = json.loads(execution.processOutputs[0].data[0])
    assert isinstance(document, list) and document
    files = {}
    for entry in document:
        assert entry["id"].count("|") == 1, entry
        assert entry["mime_type"] == entry["mime-type"] and entry["mime_type"]
        response = requests.get(entry["uri"], timeout=60)
        assert response.status_code == 200, entry["uri"]
        files[entry["id"]] = response.content
    return document, files


def exception_report(error):
    """(exceptionCode, locator, text) of the ExceptionReport OWSLib raised as ServiceException."""
    root = ET.fromstring(str(error.value.args[0] if hasattr(error, "value") else error).encode())
    exception = root.find(f"{OWS}Exception")
    return exception.get("exceptionCode"), exception.get("locator"), exception.find(f"{OWS}ExceptionText").text


def job_state(server):
    """Everything that shows a job: rows of the job database, job folders, status documents."""
    with sqlite3.connect(server.home / "jobs.sqlite") as db:
        rows = db.execute("select count(*) from pywps_requests where operation = 'execute'").fetchone()[0]
    folders = set((server.home / "work" / "jobs").glob("*")) if (server.home / "work" / "jobs").exists() else set()
    return rows, folders, set(server.outputpath.glob("*.xml"))


def lonlat_box(scene_uri, fraction=0.8):
    """The central ``fraction`` of a scene's DEM, as a CWT lat/lon domain and a shapely box in lon/lat."""
    import rasterio

    with rasterio.open(scene_uri[len("file://"):]) as src:
        xmin, ymin, xmax, ymax = src.bounds
    margin_x, margin_y = (xmax - xmin) * (1 - fraction) / 2, (ymax - ymin) * (1 - fraction) / 2
    lon0, lat0, lon1, lat1 = transform_bounds("EPSG:2959", "EPSG:4326", xmin + margin_x, ymin + margin_y,
                                              xmax - margin_x, ymax - margin_y)
    domain = {"id": "d0", "lat": {"start": lat1, "end": lat0, "step": 1, "crs": "values"},
              "lon": {"start": lon0, "end": lon1, "step": 1, "crs": "values"}}
    return domain, box(lon0, lat0, lon1, lat1)


# ---------------------------------------------------------------------------------------------
# listing and describing: open to all


def test_capabilities_and_descriptions_without_token(server):
    wps = client(server.url)
    identifiers = [p.identifier for p in wps.processes]
    assert {"LAKES.train", "LAKES.detect", "LAKES.split", "train", "detect", "split"} <= set(identifiers)
    for process in wps.processes:
        assert process.identifier.count(".") <= 1, process.identifier  # two dots anywhere break the client
        assert process.abstract, process.identifier
    for identifier in ("LAKES.train", "LAKES.detect", "LAKES.split"):
        description = wps.describeprocess(identifier)
        assert description.abstract and description.title
        inputs = {i.identifier: i for i in description.dataInputs}
        assert set(inputs) == {"variable", "domain", "operation"}
        for inp in inputs.values():
            assert inp.dataType == "ComplexData"
            assert [f.mimeType for f in inp.supportedValues] == ["application/json"]
        assert [o.identifier for o in description.processOutputs] == ["output"]
        assert description.processOutputs[0].supportedValues[0].mimeType == "application/json"
        assert description.storeSupported and description.statusSupported


# ---------------------------------------------------------------------------------------------
# running, with a token


def test_split_sync_netcdf_dem_and_latlon_domain(server, library):
    """LAKES.split from detections: synchronous (as the client asks), cut to a lat/lon domain."""
    scene = server.scene
    domain, area = lonlat_box(scene["dem"])
    wps = client(server.url, TOKEN)
    execution, seen = cwt_execute(
        wps, "LAKES.split",
        [{"uri": scene["waterbodies"], "id": "hydro|v0", "domain": "d0"},
         {"uri": scene["true_boxes"], "id": "detections|v1"},
         {"uri": scene["netcdf"], "id": "dem|v2", "mime_type": "application/netcdf"}],
        [domain],
        [{"name": "LAKES.split", "result": "op0", "domain": "d0", "input": ["v0", "v1", "v2"],
          "method": "refined", "score_threshold": "0.5"}])
    assert seen[0][0] == "ProcessSucceeded"  # answered at once, no status location needed
    document, files = read_output(execution)
    ids = [entry["id"] for entry in document]
    assert ids[0] == "hydro|op0" and set(ids) == {"hydro|op0", "lakes|op0", "rivers|op0", "quicklook|op0"}
    assert document[0]["mime_type"] == "application/geo+json"
    hydro = json.loads(files["hydro|op0"])
    assert hydro["type"] == "FeatureCollection" and hydro["features"]
    parts = gpd.GeoDataFrame.from_features(hydro["features"], crs="EPSG:4326")
    assert parts.geometry.within(area.buffer(1e-6)).all()  # cut to the domain before any work
    assert set(parts["TYPECE"]) <= {"10", "21"} and "21" in set(parts["TYPECE"])
    assert files["quicklook|op0"][:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained(server):
    """A short LAKES.train, forced asynchronous though the client sends no async flags."""
    scene = server.scene
    wps = client(server.url, TOKEN)
    execution, seen = cwt_execute(
        wps, "LAKES.train",
        [{"uri": scene["dem"], "id": "dem|v0"}, {"uri": scene["hydro"], "id": "hydro|v1"},
         {"uri": scene["config"], "id": "config|v2"}],
        [],
        [{"name": "LAKES.train", "result": "model", "input": ["v0", "v1", "v2"], "epochs": "1", "device": "cpu"}])
    return execution, seen


def test_train_is_forced_async_and_returns_a_checkpoint(trained):
    execution, seen = trained
    assert seen[0][0] in ("ProcessAccepted", "ProcessStarted") and execution.statusLocation
    assert seen[-1][0] == "ProcessSucceeded" and seen[-1][1] == 100
    document, files = read_output(execution)
    ids = [entry["id"] for entry in document]
    assert ids[0] == "checkpoint|model"
    assert {"metrics|model", "curves|model", "log|model"} <= set(ids)
    assert files["checkpoint|model"][:2] == b"PK"  # a torch.save zip archive
    metrics = [json.loads(line) for line in files["metrics|model"].decode().splitlines() if line.strip()]
    assert metrics and "mAP" in json.dumps(metrics[-1])


def test_detect_async_with_the_trained_checkpoint(server, trained, library):
    """LAKES.detect: the checkpoint uri LAKES.train returned, a NetCDF DEM, cut to a domain."""
    checkpoint = json.loads(trained[0].processOutputs[0].data[0])[0]
    scene = server.scene
    domain, area = lonlat_box(scene["dem"], fraction=0.9)
    wps = client(server.url, TOKEN)
    execution, seen = cwt_execute(
        wps, "LAKES.detect",
        [{"uri": checkpoint["uri"], "id": checkpoint["id"]}, {"uri": scene["netcdf"], "id": "dem|dem"},
         {"uri": scene["waterbodies"], "id": "hydro|water"}],
        [domain],
        [{"name": "LAKES.detect", "result": "lakes", "domain": "d0", "input": ["model", "dem", "water"],
          "score_threshold": "0.0", "tile_size": "256", "tile_overlap": "32"}])
    assert seen[0][0] in ("ProcessAccepted", "ProcessStarted")  # queued: detection runs a model
    document, files = read_output(execution)
    assert [entry["id"] for entry in document] == ["detections|lakes", "quicklook|lakes"]
    detections = json.loads(files["detections|lakes"])
    assert detections["type"] == "FeatureCollection"
    for feature in detections["features"]:
        assert {"confidence", "tile", "id"} <= set(feature["properties"])


def test_split_with_a_checkpoint_is_queued(server, trained, library):
    """Given a checkpoint instead of detections, LAKES.split detects first: queued like LAKES.detect."""
    checkpoint = json.loads(trained[0].processOutputs[0].data[0])[0]
    scene = server.scene
    wps = client(server.url, TOKEN)
    execution, seen = cwt_execute(
        wps, "LAKES.split",
        [{"uri": scene["waterbodies"], "id": "hydro|v0"}, {"uri": checkpoint["uri"], "id": checkpoint["id"]},
         {"uri": scene["dem"], "id": "dem|v2"}],
        [],
        [{"name": "LAKES.split", "result": "op1", "input": ["v0", "model", "v2"], "score_threshold": "0.0"}])
    assert seen[0][0] in ("ProcessAccepted", "ProcessStarted") and execution.statusLocation
    document, files = read_output(execution)
    assert document[0]["id"] == "hydro|op1"
    assert json.loads(files["hydro|op1"])["features"]


def test_jobs_belong_to_the_token_that_started_them(server, trained):
    """Each token of the older form ([esgf] tokens_file) is a user of its own: a job started with one
    is listed to it alone and cannot be dismissed with the other, whatever the protocol."""
    base = server.url.rsplit("/", 1)[0]

    def listed(token):
        response = requests.get(f"{base}/jobs", params={"limit": 1000}, headers={"COMPUTE-TOKEN": token}, timeout=30)
        assert response.status_code == 200, response.text
        return {job["jobID"] for job in response.json()["jobs"]}

    train_id = trained[0].statusLocation.rsplit("/", 1)[1].removesuffix(".xml")
    mine, theirs = listed(TOKEN), listed(OTHER_TOKEN)
    assert train_id in mine and not mine & theirs
    assert requests.get(f"{base}/jobs", timeout=30).status_code == 401
    refused = requests.delete(f"{base}/jobs/{train_id}", headers={"COMPUTE-TOKEN": OTHER_TOKEN}, timeout=30)
    assert refused.status_code == 403 and refused.json()["title"] == "Forbidden"
    wps2 = requests.get(server.url, headers={"COMPUTE-TOKEN": OTHER_TOKEN}, timeout=30, params={
        "service": "WPS", "version": "2.0.0", "request": "Dismiss", "jobID": train_id})
    assert wps2.status_code == 403 and "another user" in wps2.text


def test_split_without_token_on_open_server(live_server, open_scene, library):
    """The same client without a token, on a server with no tokens configured; a pixel domain."""
    wps = client(live_server.url)
    execution, _ = cwt_execute(
        wps, "LAKES.split",
        [{"uri": open_scene["dem"], "id": "dem|v0"}, {"uri": open_scene["waterbodies"], "id": "hydro|v1"},
         {"uri": open_scene["true_boxes"], "id": "detections|v2"}],
        [{"id": "px", "x": {"start": 100, "end": 399, "crs": "indices"}, "y": {"start": 0, "end": 499,
                                                                              "crs": "indices"}}],
        [{"name": "LAKES.split", "result": "cut<&>", "domain": "px", "input": ["v0", "v1", "v2"], "method": "boxes"}])
    document, files = read_output(execution)
    assert document[0]["id"] == "hydro|cut<&>"  # a label with XML's special characters survives the XML response
    hydro = gpd.GeoDataFrame.from_features(json.loads(files["hydro|cut<&>"])["features"], crs="EPSG:4326")
    import rasterio

    with rasterio.open(open_scene["dem"][len("file://"):]) as src:
        left = src.transform.c + 100 * src.transform.a
        right = src.transform.c + 400 * src.transform.a
    xmin, _, xmax, _ = hydro.to_crs("EPSG:2959").total_bounds
    assert xmin >= left - 1e-3 and xmax <= right + 1e-3


# ---------------------------------------------------------------------------------------------
# profile errors: InvalidParameterValue at request time, no job


def bad_request(server, identifier, variables, domains, operations):
    wps = WebProcessingService(server.url, version="1.0.0", skip_caps=True, headers={"COMPUTE-TOKEN": TOKEN})
    with pytest.raises(ServiceException) as caught:
        wps.execute(identifier, cwt_inputs(variables, domains, operations))
    return exception_report(caught)


def test_bad_profile_input_is_refused_naming_the_culprit(server):
    scene = server.scene
    good_vars = [{"uri": scene["waterbodies"], "id": "hydro|v0"}, {"uri": scene["true_boxes"], "id": "detections|v1"}]
    good_op = [{"name": "LAKES.split", "result": "op0", "input": ["v0", "v1"]}]
    before = job_state(server)
    cases = [
        (good_vars, [], [{**good_op[0], "input": ["v0", "v9"]}], "operation", "'v9'"),
        (good_vars, [], [{**good_op[0], "domain": "d7"}], "operation", "'d7'"),
        ([{"uri": scene["waterbodies"], "id": "hydro"}], [], good_op, "variable", "exactly one '|'"),
        ([{"uri": scene["waterbodies"], "id": "hydro|a|b"}], [], good_op, "variable", "exactly one '|'"),
        ([{**good_vars[0], "domain": "nowhere"}], [], good_op, "variable", "'nowhere'"),
        ([{"uri": scene["waterbodies"], "id": "elevation|v0"}], [], good_op, "variable", "'elevation'"),
        (good_vars, [], [{**good_op[0], "score_threshold": "high"}], "operation", "score_threshold"),
        (good_vars, [], [{**good_op[0], "score_threshold": "2"}], "operation", "0.0 to 1.0"),
        (good_vars, [], [{**good_op[0], "method": "magic"}], "operation", "refined, boxes"),
        (good_vars, [], [{**good_op[0], "colour": "blue"}], "operation", "'colour'"),
        (good_vars, [], [{**good_op[0], "name": "LAKES.frobnicate"}], "operation", "'LAKES.frobnicate'"),
        (good_vars, [{"id": "d0", "time": {"start": 0, "end": 1, "crs": "values"}}], good_op, "domain", "'time'"),
        (good_vars, [{"id": "d0", "lat": {"start": "north", "end": 1}}], good_op, "domain", "lat.start"),
        ([{"uri": "file:///etc/passwd", "id": "hydro|v0"}], [], [{**good_op[0], "input": ["v0"]}], "variable",
         "allowed input folders"),
        ([{"uri": "ftp://example.org/x.geojson", "id": "hydro|v0"}], [], [{**good_op[0], "input": ["v0"]}],
         "variable", "http(s)"),
    ]
    for variables, domains, operations, locator, needle in cases:
        code, where, text = bad_request(server, "LAKES.split", variables, domains, operations)
        assert code == "InvalidParameterValue" and where == locator, (needle, code, where, text)
        assert needle in text, (needle, text)
    # not JSON / not a list, sent the way the client sends any input
    wps = WebProcessingService(server.url, version="1.0.0", skip_caps=True, headers={"COMPUTE-TOKEN": TOKEN})
    for raw, needle in (("{not json", "not JSON"), ('{"uri": "x"}', "JSON array")):
        inputs = cwt_inputs(good_vars, [], good_op)
        inputs[0] = ("variable", ComplexDataInput(raw, mimeType="application/json"))
        with pytest.raises(ServiceException) as caught:
            wps.execute("LAKES.split", inputs)
        code, where, text = exception_report(caught)
        assert (code, where) == ("InvalidParameterValue", "variable") and needle in text
    rows, folders, documents = job_state(server)
    assert folders == before[1] and documents == before[2]  # no job was created


def test_domain_outside_the_data_fails_the_job_naming_it(server):
    scene = server.scene
    wps = client(server.url, TOKEN)
    execution, _ = cwt_execute(
        wps, "LAKES.split",
        [{"uri": scene["waterbodies"], "id": "hydro|v0"}, {"uri": scene["true_boxes"], "id": "detections|v1"}],
        [{"id": "faraway", "lat": {"start": 10, "end": 11, "crs": "values"},
          "lon": {"start": 20, "end": 21, "crs": "values"}}],
        [{"name": "LAKES.split", "result": "op0", "domain": "faraway", "input": ["v0", "v1"]}])
    # PyWPS nests its report in ProcessFailed as wps:ExceptionReport, which OWSLib reads as "Exception"
    assert execution.status in ("ProcessFailed", "Exception") and not execution.isSucceded()
    message = execution.errors[0].text
    assert "domain faraway" in message and "waterbodies.geojson" in message
    assert str(server.home) not in message and "Traceback" not in message


# ---------------------------------------------------------------------------------------------
# access control


def test_execute_needs_a_token_in_every_protocol(server):
    scene = server.scene
    inputs = cwt_inputs([{"uri": scene["waterbodies"], "id": "hydro|v0"}], [],
                        [{"name": "LAKES.split", "result": "op0", "input": ["v0"]}])
    before = job_state(server)
    for headers, status in (({}, 401), ({"COMPUTE-TOKEN": "wrong"}, 403), ({"Authorization": "Bearer nope"}, 403)):
        wps = WebProcessingService(server.url, version="1.0.0", skip_caps=True, headers=headers)
        with pytest.raises(ServiceException) as caught:
            wps.execute("LAKES.split", inputs)
        code, locator, text = exception_report(caught)
        assert code == "NoApplicableCode" and "token" in text.lower()
        raw = requests.post(server.url, data=execute_xml("LAKES.split", inputs), headers=headers, timeout=30)
        assert raw.status_code == status, headers
        assert "xml" in raw.headers["Content-Type"] and "ExceptionReport" in raw.text
        if status == 401:
            assert raw.headers["WWW-Authenticate"].startswith("Bearer")
    base = server.url.rsplit("/", 1)[0]
    refused = [
        requests.get(server.url, params={"service": "WPS", "version": "1.0.0", "request": "Execute",
                                         "identifier": "split", "DataInputs": "method=boxes"}, timeout=30),
        requests.get(server.url, params={"service": "WPS", "version": "2.0.0", "request": "Dismiss",
                                         "jobId": "00000000-0000-0000-0000-000000000000"}, timeout=30),
        requests.post(server.url, data=b'<?xml version="1.0"?><wps:Execute xmlns:wps="http://www.opengis.net/wps/'
                      b'2.0" xmlns:ows="http://www.opengis.net/ows/2.0" service="WPS" version="2.0.0" mode="sync" '
                      b'response="document"><ows:Identifier>split</ows:Identifier></wps:Execute>', timeout=30),
        requests.post(server.url, json={"operation": "execute", "identifier": "split"}, timeout=30),
        requests.post(server.url, data=b"not a WPS request", timeout=30),
    ]
    for response in refused:
        assert response.status_code == 401 and "ExceptionReport" in response.text, response.request.url
    for response in (requests.post(f"{base}/processes/split/execution", json={"inputs": {}}, timeout=30),
                     requests.delete(f"{base}/jobs/00000000-0000-0000-0000-000000000000", timeout=30)):
        assert response.status_code == 401, response.request.url
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.json()["status"] == 401
    wrong = requests.post(f"{base}/processes/split/execution", json={"inputs": {}}, timeout=30,
                          headers={"COMPUTE-TOKEN": "wrong"})
    assert wrong.status_code == 403 and wrong.json()["title"] == "Forbidden"
    assert job_state(server) == before  # nothing reached the service: no request logged, no job

    # reads stay open: capabilities by POST, descriptions, the OGC API lists
    capabilities = requests.post(server.url, data=b'<?xml version="1.0"?><wps:GetCapabilities xmlns:wps="http://'
                                 b'www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1" '
                                 b'service="WPS" language="en-US"/>', timeout=30)
    assert capabilities.status_code == 200 and b"LAKES.split" in capabilities.content
    assert requests.get(f"{base}/processes", timeout=30).status_code == 200
    assert requests.get(server.url, params={"service": "WPS", "version": "1.0.0", "request": "DescribeProcess",
                                            "identifier": "LAKES.detect"}, timeout=30).status_code == 200


def test_token_as_bearer_or_api_key_and_never_shown(server):
    """Every way of sending a valid token passes the guard (a bad profile input then answers 400, not
    401); no token appears in any response, log or file the server keeps."""
    scene = server.scene
    body = execute_xml("LAKES.split", cwt_inputs([{"uri": scene["waterbodies"], "id": "hydro"}], [],
                                                 [{"name": "LAKES.split", "result": "op0"}]))
    responses = [
        requests.post(server.url, data=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30),
        requests.post(server.url, data=body, params={"api_key": OTHER_TOKEN}, timeout=30),
        requests.post(server.url, data=body, headers={"COMPUTE-TOKEN": OTHER_TOKEN}, timeout=30),
    ]
    for response in responses:
        assert response.status_code == 400 and "InvalidParameterValue" in response.text
    # an open request with a token in the query: served, and the token cut out before any log
    capabilities = requests.get(server.url, params={"service": "WPS", "request": "GetCapabilities",
                                                    "api_key": TOKEN}, timeout=30)
    assert capabilities.status_code == 200
    for response in responses + [capabilities]:
        assert TOKEN not in response.text and OTHER_TOKEN not in response.text
    time.sleep(1.0)  # gunicorn writes its access log after the response
    leaks = []
    for path in server.home.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            content = path.read_bytes()
            if TOKEN.encode() in content or OTHER_TOKEN.encode() in content:
                leaks.append(path.name)
    assert not leaks
    access_log = (server.home / "access.log").read_text()
    assert re.search(r"POST /wps\?", access_log) and "request=GetCapabilities" in access_log


def test_token_store_rotation_and_request_plumbing(tmp_path):
    """The guard's parts on their own: tokens read again when the file changes; a query keeps every
    other byte when api_key is cut out; POST bodies told apart by their operation."""
    from wps_lakes.service.auth import TokenStore, body_operation, strip_parameter, take_tokens

    tokens = tmp_path / "tokens"
    tokens.write_text("# comment\nfirst\n")
    store = TokenStore("inline-one, inline-two", tokens)
    assert store.enabled and store.accepts("first") and store.accepts("inline-two") and not store.accepts("second")
    tokens.write_text("second third\n")
    assert store.accepts("second") and not store.accepts("first")
    tokens.write_text("")
    empty = TokenStore("", tokens)
    assert empty.enabled and not empty.accepts("")  # set but empty: closed, not open
    assert not TokenStore("", None).enabled

    query = "service=WPS&DataInputs=variable%3D%5B%5D%3Bx=1&API_KEY=abc%2Bd&request=Execute"
    assert strip_parameter(query) == ("service=WPS&DataInputs=variable%3D%5B%5D%3Bx=1&request=Execute", ["abc+d"])
    environ = {"QUERY_STRING": query, "RAW_URI": "/wps?" + query, "HTTP_COMPUTE_TOKEN": "h",
               "HTTP_AUTHORIZATION": "Bearer b"}
    assert sorted(take_tokens(environ)) == ["abc+d", "b", "h"]
    assert "abc" not in environ["QUERY_STRING"] + environ["RAW_URI"]
    assert "HTTP_COMPUTE_TOKEN" not in environ and "HTTP_AUTHORIZATION" not in environ

    assert body_operation(b'  {"operation": "Execute", "identifier": "split"}') == "execute"
    assert body_operation(b'<?xml version="1.0"?><wps:GetCapabilities xmlns:wps="x"/>') == "getcapabilities"
    assert body_operation(b'<!DOCTYPE x [<!ENTITY e "GetCapabilities">]><GetCapabilities/>') == ""
    assert body_operation(b"garbage") == "" and body_operation(b"\xff\xfe<") == ""
