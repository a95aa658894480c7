"""OGC API - Processes - Part 1: Core 1.0 on the live server: resources, process descriptions from
the PyWPS definitions, execution and jobs, with plain requests, OWSLib's ``owslib.ogcapi.processes``,
``ogc-api-processes-client`` and schemathesis; and one job seen over WPS 1.0.0, 2.0.0 and OGC API."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from lxml import etree

from wps_lakes.service.registry import get_processes

from ..common import LiveServer, scene_with_lake_boxes

REGISTRY = [p.identifier for p in get_processes()]
EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
REL = "http://www.opengis.net/def/rel/ogc/1.0/"
CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/"
FINAL = ("successful", "failed", "dismissed")


@pytest.fixture(scope="module")
def base(live_server):
    return live_server.url.rsplit("/", 1)[0]


@pytest.fixture(scope="module")
def scene(live_server):
    folder = live_server.inputs / "scene-ogcapi"
    paths = scene_with_lake_boxes(folder)
    return {name: str(path) for name, path in paths.items()}


def needs_split():
    from wps_lakes.hydro import split

    if not hasattr(split, "split_to_files"):
        pytest.skip("the split library call (hydro.split.split_to_files) has not landed yet")


def split_request(scene, **extra):
    body = {"inputs": {"vector": {"href": f"file://{scene['waterbodies']}", "type": "application/geo+json"},
                       "detections": {"href": f"file://{scene['true_boxes']}"},
                       "method": "boxes"}}
    body.update(extra)
    return body


def assert_problem(response, status, type_):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == type_ and problem["status"] == status and problem["title"]
    assert "Traceback" not in response.text and "/tmp/" not in problem.get("detail", "")
    return problem


def poll(base, job_id, timeout=300):
    deadline = time.monotonic() + timeout
    while True:
        status = requests.get(f"{base}/jobs/{job_id}", timeout=30).json()
        assert status["type"] == "process" and status["jobID"] == job_id
        assert 0 <= status["progress"] <= 100
        if status["status"] in FINAL:
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.5)


# ---------------------------------------------------------------------------------------------
# landing page, conformance, API definition, HTML


def test_landing_conformance_api(base):
    landing = requests.get(base + "/", timeout=30)
    assert landing.status_code == 200 and landing.headers["Content-Type"] == "application/json"
    doc = landing.json()
    assert doc["title"] == "wps_lakes: lake and river differentiation"
    rels = {link["rel"]: link for link in doc["links"]}
    assert {"self", "alternate", "service-desc", "service-doc", REL + "conformance", REL + "processes",
            REL + "job-list"} <= set(rels)
    assert rels["service-desc"]["type"] == "application/vnd.oai.openapi+json;version=3.0"
    conformance = requests.get(rels[REL + "conformance"]["href"], timeout=30).json()
    assert {CONF + c for c in ("core", "ogc-process-description", "json", "html", "oas30", "job-list",
                               "dismiss")} <= set(conformance["conformsTo"])
    api = requests.get(rels["service-desc"]["href"], timeout=30)
    assert api.headers["Content-Type"] == "application/vnd.oai.openapi+json;version=3.0"
    openapi = api.json()
    assert openapi["openapi"].startswith("3.0")
    assert {"/", "/conformance", "/api", "/processes", "/processes/{processID}", "/processes/{processID}/execution",
            "/jobs", "/jobs/{jobID}", "/jobs/{jobID}/results"} == set(openapi["paths"])
    assert set(openapi["paths"]["/jobs/{jobID}"]) == {"get", "delete"}


def test_html_views_for_browsers(base):
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    for path, text in (("/", "wps_lakes"), ("/processes", "split"), ("/processes/split", "Waterbodies"),
                       ("/jobs", "Jobs"), ("/conformance", "conf/core")):
        response = requests.get(base + path, headers=browser, timeout=30)
        assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html"), path
        assert "<!DOCTYPE html>" in response.text and text in response.text, path
    assert requests.get(base + "/processes?f=html", timeout=30).headers["Content-Type"].startswith("text/html")
    assert requests.get(base + "/processes", headers=browser, params={"f": "json"}, timeout=30).json()["processes"]
    missing = requests.get(base + "/processes/nope", headers=browser, timeout=30)
    assert missing.status_code == 404 and "No such process" in missing.text


# ---------------------------------------------------------------------------------------------
# processes


def test_process_list_and_descriptions(base):
    listing = requests.get(base + "/processes", timeout=30).json()
    assert [p["id"] for p in listing["processes"]] == REGISTRY
    assert any(link["rel"] == "self" for link in listing["links"])
    definitions = {p.identifier: p for p in get_processes()}
    for summary in listing["processes"]:
        assert summary["outputTransmission"] == ["value", "reference"]
        expected = ["async-execute", "dismiss"] if definitions[summary["id"]].always_async else \
            ["sync-execute", "async-execute", "dismiss"]
        assert summary["jobControlOptions"] == expected
        description = requests.get(f"{base}/processes/{summary['id']}", timeout=30).json()
        definition = definitions[summary["id"]]
        assert description["title"] == definition.title and description["description"] == definition.abstract
        assert list(description["inputs"]) == [i.identifier for i in definition.inputs]
        assert list(description["outputs"]) == [o.identifier for o in definition.outputs]
        for inpt in definition.inputs:
            entry = description["inputs"][inpt.identifier]
            assert entry["minOccurs"] == inpt.min_occurs and entry["maxOccurs"] == inpt.max_occurs
            assert entry["title"] == inpt.title and "schema" in entry
        rels = {link["rel"]: link["href"] for link in description["links"]}
        assert rels[REL + "execute"] == f"{base}/processes/{summary['id']}/execution"
    split = requests.get(base + "/processes/split", timeout=30).json()
    assert split["inputs"]["method"]["schema"] == {"type": "string", "enum": ["refined", "boxes"], "default": "refined"}
    # no default: the checkpoint's calibrated threshold is used when none is given (issue 18)
    assert split["inputs"]["score_threshold"]["schema"] == {"type": "number", "minimum": 0.0, "maximum": 1.0}
    raster = split["inputs"]["raster"]
    assert raster["maxOccurs"] == 1 and raster["minOccurs"] == 0
    assert split["inputs"]["adjacent_raster"]["maxOccurs"] == 19
    assert raster["schema"]["oneOf"][0] == {"type": "string", "contentEncoding": "base64",
                                            "contentMediaType": "image/tiff; subtype=geotiff"}
    vector = split["inputs"]["vector"]["schema"]["oneOf"]
    assert vector[0] == {"type": "object", "contentMediaType": "application/geo+json"}
    assert {"type": "string", "contentEncoding": "base64", "contentMediaType": "application/x-zipped-shp"} in vector
    assert split["outputs"]["lakes"]["schema"] == {"type": "object", "contentMediaType": "application/geo+json"}
    train = requests.get(base + "/processes/train", timeout=30).json()
    assert train["inputs"]["resume"]["schema"] == {"type": "boolean", "default": False}
    assert train["inputs"]["epochs"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 10000}
    detect = requests.get(base + "/processes/detect", timeout=30).json()
    assert detect["inputs"]["tile_size"]["schema"]["default"] == 500


def test_errors_are_problem_documents(base, scene):
    assert_problem(requests.get(base + "/processes/nope", timeout=30), 404, EXC + "no-such-process")
    assert_problem(requests.get(base + "/jobs/nope", timeout=30), 404, EXC + "no-such-job")
    assert_problem(requests.get(base + "/jobs/nope/results", timeout=30), 404, EXC + "no-such-job")
    assert_problem(requests.delete(base + "/jobs/nope", timeout=30), 404, EXC + "no-such-job")
    assert_problem(requests.post(base + "/processes/nope/execution", json={}, timeout=30), 404,
                   EXC + "no-such-process")
    response = requests.delete(base + "/processes/split", timeout=30)
    assert response.status_code == 405 and response.headers["Allow"] == "GET"
    validation = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/req/core/process-execute-input-validation"
    execute = f"{base}/processes/split/execution"
    bad = split_request(scene)
    bad["inputs"]["method"] = "magic"
    detail = assert_problem(requests.post(execute, json=bad, timeout=30), 400, validation)["detail"]
    assert "magic" in detail and "refined" in detail
    bad = split_request(scene)
    bad["inputs"]["score_threshold"] = "high"
    assert "number" in assert_problem(requests.post(execute, json=bad, timeout=30), 400, validation)["detail"]
    bad = split_request(scene)
    bad["inputs"]["score_threshold"] = 1.5
    assert_problem(requests.post(execute, json=bad, timeout=30), 400, validation)
    bad = split_request(scene)
    del bad["inputs"]["vector"]
    assert "vector" in assert_problem(requests.post(execute, json=bad, timeout=30), 400, validation)["detail"]
    bad = split_request(scene)
    bad["inputs"]["raster"] = ["not base64!"]
    assert_problem(requests.post(execute, json=bad, timeout=30), 400, validation)
    bad = split_request(scene)
    bad["inputs"]["vector"] = {"href": "ftp://example.org/x.geojson"}
    assert_problem(requests.post(execute, json=bad, timeout=30), 400, validation)
    response = requests.post(execute, data="not json", headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 400
    response = requests.post(execute, data="<xml/>", headers={"Content-Type": "application/xml"}, timeout=30)
    assert response.status_code == 415


# ---------------------------------------------------------------------------------------------
# execution and jobs


def test_sync_execute_document_raw_and_job(base, scene):
    needs_split()
    with open(scene["waterbodies"]) as handle:
        waterbodies = json.load(handle)
    body = split_request(scene, response="document",
                         outputs={"lakes": {"transmissionMode": "value"}, "rivers": {"transmissionMode": "reference"},
                                  "quicklook": {"transmissionMode": "value"}})
    body["inputs"]["vector"] = {"value": waterbodies, "mediaType": "application/geo+json"}  # inline GeoJSON object
    response = requests.post(f"{base}/processes/split/execution", json=body, timeout=300)
    assert response.status_code == 200, response.text
    results = response.json()
    assert set(results) == {"lakes", "rivers", "quicklook"}
    assert results["lakes"]["mediaType"] == "application/geo+json"
    assert {f["properties"]["TYPECE"] for f in results["lakes"]["value"]["features"]} == {"21"}
    assert results["rivers"]["href"].startswith(base + "/outputs/") and results["rivers"]["type"] == \
        "application/geo+json"
    assert results["quicklook"]["encoding"] == "base64" and results["quicklook"]["mediaType"] == "image/png"
    monitor = response.headers["Link"]
    assert 'rel="monitor"' in monitor
    job_url = monitor.split(">")[0].lstrip("<")
    status = requests.get(job_url, timeout=30).json()
    assert status["status"] == "successful" and status["processID"] == "split" and status["progress"] == 100
    assert any(link["rel"] == REL + "results" for link in status["links"])
    results = requests.get(job_url + "/results", timeout=30).json()
    assert set(results) == {"lakes", "rivers", "quicklook"}
    # raw, one output by value: the GeoJSON itself
    body = split_request(scene, outputs={"rivers": {"transmissionMode": "value"}})
    response = requests.post(f"{base}/processes/split/execution", json=body, timeout=300)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/geo+json"
    assert {f["properties"]["TYPECE"] for f in response.json()["features"]} == {"10"}
    # raw, every output by reference: 204 with Link headers
    body = split_request(scene, outputs={"lakes": {"transmissionMode": "reference"},
                                         "hydro": {"transmissionMode": "reference"}})
    response = requests.post(f"{base}/processes/split/execution", json=body, timeout=300)
    assert response.status_code == 204
    links = response.headers["Link"]
    assert 'title="lakes"' in links and 'title="hydro"' in links and 'rel="monitor"' in links


def test_async_execute_and_dismiss(base, scene):
    needs_split()
    body = split_request(scene, response="document", outputs={"hydro": {"transmissionMode": "reference"}})
    response = requests.post(f"{base}/processes/split/execution", json=body, headers={"Prefer": "respond-async"},
                             timeout=60)
    assert response.status_code == 201, response.text
    assert response.headers["Preference-Applied"] == "respond-async"
    status = response.json()
    assert response.headers["Location"] == f"{base}/jobs/{status['jobID']}"
    assert status["status"] in ("accepted", "running", "successful") and status["type"] == "process"
    final = poll(base, status["jobID"])
    assert final["status"] == "successful"
    results = requests.get(f"{base}/jobs/{status['jobID']}/results", timeout=30).json()
    assert list(results) == ["hydro"] and results["hydro"]["href"].endswith(".geojson")
    listing = requests.get(f"{base}/jobs", params={"processID": "split", "status": "successful", "limit": 100},
                           timeout=30).json()
    assert status["jobID"] in [j["jobID"] for j in listing["jobs"]]
    assert all(j["processID"] == "split" and j["status"] == "successful" for j in listing["jobs"])
    # train always runs asynchronously: without Prefer it still answers 201 with a job
    train = {"inputs": {"raster": [{"href": f"file://{scene['dem']}"}], "vector": {"href": f"file://{scene['hydro']}"},
                        "epochs": 50, "device": "cpu"}}
    response = requests.post(f"{base}/processes/train/execution", json=train, timeout=60)
    assert response.status_code == 201, response.text
    job = response.json()["jobID"]
    assert_problem(requests.get(f"{base}/jobs/{job}/results", timeout=30), 404, EXC + "result-not-ready")
    dismissed = requests.delete(f"{base}/jobs/{job}", timeout=60)
    assert dismissed.status_code == 200 and dismissed.json()["status"] == "dismissed"
    assert_problem(requests.get(f"{base}/jobs/{job}", timeout=30), 404, EXC + "no-such-job")
    assert job not in [j["jobID"] for j in requests.get(f"{base}/jobs", params={"limit": 1000}, timeout=30)
                       .json()["jobs"]]


def test_one_job_over_three_protocols(base, scene, live_server):
    """A job started over OGC API is the same job for WPS 2.0.0 GetStatus and the WPS 1.0.0 status document."""
    needs_split()
    response = requests.post(f"{base}/processes/split/execution", json=split_request(scene),
                             headers={"Prefer": "respond-async"}, timeout=60)
    job = response.json()["jobID"]
    assert poll(base, job)["status"] == "successful"
    wps2 = requests.get(live_server.url, params={"service": "WPS", "version": "2.0.0", "request": "GetStatus",
                                                 "JobID": job}, timeout=30)
    root = etree.fromstring(wps2.content)
    assert root.findtext("{http://www.opengis.net/wps/2.0}Status") == "Succeeded"
    wps1 = requests.get(f"{base}/outputs/{job}.xml", timeout=30)
    assert wps1.status_code == 200 and b"ProcessSucceeded" in wps1.content


# ---------------------------------------------------------------------------------------------
# real clients


def test_owslib_ogcapi_processes_cycle(base, scene):
    needs_split()
    from owslib.ogcapi.processes import Processes

    api = Processes(base)
    try:
        assert [p["id"] for p in api.processes()] == REGISTRY
        assert api.process("split")["inputs"]["method"]["schema"]["enum"] == ["refined", "boxes"]
        assert "conformsTo" in api.conformance()
        status = api.execute("split", split_request(scene)["inputs"],
                             outputs={"lakes": {"transmissionMode": "reference"}}, async_=True)
        assert status["status"] in ("accepted", "running", "successful")
        assert api.response_headers["Location"].endswith(status["jobID"])
        # OWSLib 0.35 has no job methods: poll the job's URL with its own request helper
        deadline = time.monotonic() + 300
        while status["status"] not in FINAL:
            assert time.monotonic() < deadline
            time.sleep(0.5)
            status = api._request(path=f"jobs/{status['jobID']}")
        assert status["status"] == "successful"
        results = api._request(path=f"jobs/{status['jobID']}/results")
        assert requests.get(results["lakes"]["href"], timeout=30).json()["type"] == "FeatureCollection"
    finally:
        api.headers.pop("Prefer", None)  # OWSLib keeps headers in a module-level dict


def test_ogc_api_processes_client_cycle(base, scene):
    needs_split()
    from ogc_api_processes_client.api_client_wrapper import ApiClientWrapper
    from ogc_api_processes_client.configuration import Configuration

    client = ApiClientWrapper(Configuration(host=base))
    assert [p.id for p in client.get_processes().processes] == REGISTRY
    description = client.get_process_description("split")  # typed: validates our description
    assert description.inputs["vector"].min_occurs == 1 and description.id == "split"
    assert client.get_conformance_classes().conforms_to
    assert client.get_landing_page().links
    status = client.execute_simple("split", {**split_request(scene), "response": "document",
                                             "outputs": {"hydro": {"transmissionMode": "reference"}}},
                                   _headers={"Prefer": "respond-async", "Content-Type": "application/json"})
    deadline = time.monotonic() + 300
    while status.status.value not in FINAL:
        assert time.monotonic() < deadline
        time.sleep(0.5)
        status = client.get_status(status.job_id)
    assert status.status.value == "successful" and status.process_id == "split"
    results = client.get_result(status.job_id)
    assert results["hydro"].actual_instance.href.endswith(".geojson")
    assert status.job_id in [j.job_id for j in client.get_jobs().jobs]
    second = client.execute_simple("split", split_request(scene), _headers={"Prefer": "respond-async",
                                                                            "Content-Type": "application/json"})
    assert client.dismiss(second.job_id).status.value == "dismissed"


def test_schemathesis_finds_no_server_error(tmp_path):
    """schemathesis against /api: no server error, responses as documented, invalid input refused.

    On a server of its own, so that its stateful phase sees only the jobs it creates.
    """
    server = LiveServer(tmp_path / "server").start()
    try:
        run_schemathesis(server.url.rsplit("/", 1)[0], tmp_path)
    finally:
        server.stop()


def run_schemathesis(base, tmp_path):
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[checks]\nenabled = true\n"
        "[checks.negative_data_rejection]\n"
        # 413/414: the HTTP server's own limits also refuse a request that breaks the schema
        'expected-statuses = ["400", "404", "405", "406", "413", "414", "415", "422"]\n'
        "[[operations]]\n"
        'include-name = "POST /processes/{processID}/execution"\n'
        # the schema of an execute request cannot say which inputs each process requires
        "checks.positive_data_acceptance.enabled = false\n")
    st = Path(sys.executable).with_name("schemathesis")
    result = subprocess.run([str(st), "--config-file", str(config), "run", f"{base}/api",
                             "--max-examples", "15", "--seed", "1", "--no-color"],
                            capture_output=True, text=True, timeout=540, cwd=tmp_path)
    summary = result.stdout[-3000:]
    assert result.returncode == 0, summary
    assert "Server error" not in result.stdout and "ST101" not in result.stdout, summary
