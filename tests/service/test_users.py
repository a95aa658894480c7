"""A shared service: users and their tokens, job ownership on every protocol, quotas, a fair queue, an
audit trail, and every job bounded in time and in the raster size it may read.

Two users and an admin on a live server with one job slot: alice's long training holds the slot while
her splits and bob's wait in the queue.
"""
import json
import os
import sqlite3
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import rasterio
import requests
from owslib.wps import ComplexDataInput, WebProcessingService
from rasterio.transform import from_origin

from wps_lakes.geodata import make_scene, read_vector, write_geojson
from wps_lakes.hydro import truth_lake_boxes
from wps_lakes.service.auth import TokenStore, token_user

from ..common import WPS_LAKES, LiveServer
from ..detector.test_inference import fresh_checkpoint
from ..frontends.test_esgf import cwt_execute

TOKENS = {"alice": "alice-7c1e-secret", "bob": "bob-92ad-secret", "root": "root-0f3b-secret"}
LONE_TOKEN = "a-token-without-a-name"
OWS = "{http://www.opengis.net/ows/1.1}"
OWS2 = "{http://www.opengis.net/ows/2.0}"


def as_user(name):
    return {"Authorization": f"Bearer {TOKENS[name]}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    secrets = tmp_path_factory.mktemp("secrets")
    users_file = secrets / "users"
    users_file.write_text("# user token\n" + "".join(f"{u} {t}\n" for u, t in TOKENS.items()) + f"{LONE_TOKEN}\n")
    live = LiveServer(tmp_path_factory.mktemp("shared-server"),
                      extra_cfg={"server": {"parallelprocesses": "1", "maxprocesses": "20"},
                                 "auth": {"tokens_file": str(users_file), "admins": "root",
                                          "max_jobs_per_user": "3"}}).start()
    folder = live.inputs / "scene"
    live.scene = {k: str(v) for k, v in make_scene(folder, seed=11, size_m=1500).items()}
    write_geojson(truth_lake_boxes(read_vector(live.scene["hydro"])), folder / "true_boxes.geojson")
    live.scene["true_boxes"] = str(folder / "true_boxes.geojson")
    live.base = live.url.rsplit("/", 1)[0]
    yield live
    live.stop()


def split_body(scene):
    return {"inputs": {"vector": {"href": f"file://{scene['waterbodies']}"},
                       "detections": {"href": f"file://{scene['true_boxes']}"}, "method": "boxes"}}


def submit_split(server, user):
    return requests.post(f"{server.base}/processes/split/execution", json=split_body(server.scene), timeout=60,
                         headers={"Prefer": "respond-async", **as_user(user)})


def job_ids(server, user):
    response = requests.get(f"{server.base}/jobs", params={"limit": 100}, headers=as_user(user), timeout=30)
    assert response.status_code == 200, response.text
    return {job["jobID"]: job for job in response.json()["jobs"]}


def wait_for(server, job_id, states, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = requests.get(f"{server.url.rsplit('/', 1)[0]}/jobs/{job_id}", timeout=30)
        if status.status_code == 200 and status.json()["status"] in states:
            return status.json()
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} never reached {states}")


@pytest.fixture(scope="module")
def queue(server):
    """alice: a long training (running) and two splits (queued); bob: a split queued after hers (WPS 1.0.0)."""
    scene = server.scene
    train = requests.post(f"{server.base}/processes/train/execution", timeout=60, headers=as_user("alice"),
                          json={"inputs": {"raster": [{"href": f"file://{scene['dem']}"}],
                                           "vector": {"href": f"file://{scene['hydro']}"}, "epochs": 200,
                                           "device": "cpu"}})
    assert train.status_code == 201, train.text
    jobs = {"a1": train.json()["jobID"]}
    wait_for(server, jobs["a1"], ("running",))
    for name in ("a2", "a3"):
        response = submit_split(server, "alice")
        assert response.status_code == 201, response.text
        jobs[name] = response.json()["jobID"]
    wps = WebProcessingService(server.url, version="1.0.0", skip_caps=True,
                               headers={"COMPUTE-TOKEN": TOKENS["bob"]})
    execution = wps.execute("split", [("vector", ComplexDataInput(f"file://{scene['waterbodies']}")),
                                      ("detections", ComplexDataInput(f"file://{scene['true_boxes']}")),
                                      ("method", "boxes")], output=[("hydro", True)])
    assert execution.status == "ProcessAccepted", execution.errors
    jobs["b1"] = execution.statusLocation.rsplit("/", 1)[1].removesuffix(".xml")
    jobs["b1_status_location"] = execution.statusLocation
    return jobs


def test_job_ids_are_random(queue):
    for name in ("a1", "a2", "a3", "b1"):
        assert uuid.UUID(queue[name]).version == 4  # a job's id is the key to its status and outputs


def test_listing_needs_a_user_and_shows_only_their_jobs(server, queue):
    anonymous = requests.get(f"{server.base}/jobs", timeout=30)
    assert anonymous.status_code == 401 and anonymous.headers["Content-Type"] == "application/problem+json"
    assert requests.get(f"{server.base}/jobs", headers={"COMPUTE-TOKEN": "wrong"}, timeout=30).status_code == 403
    alice, bob, root = job_ids(server, "alice"), job_ids(server, "bob"), job_ids(server, "root")
    assert set(alice) == {queue["a1"], queue["a2"], queue["a3"]}
    assert set(bob) == {queue["b1"]}
    assert {queue[n] for n in ("a1", "a2", "a3", "b1")} <= set(root)
    assert all("owner" not in job for job in alice.values())  # owners are shown to admins only
    assert root[queue["b1"]]["owner"] == "bob" and root[queue["a1"]]["owner"] == "alice"
    lone = requests.get(f"{server.base}/jobs", headers={"COMPUTE-TOKEN": LONE_TOKEN}, timeout=30)
    assert lone.status_code == 200 and lone.json()["jobs"] == []  # a token alone is a user of its own
    # status documents and job pages stay reachable by their URLs, without any header (OWSLib, birdy)
    assert requests.get(queue["b1_status_location"], timeout=30).status_code == 200
    assert requests.get(f"{server.base}/jobs/{queue['a2']}", timeout=30).json()["status"] == "accepted"


def test_quota_refuses_with_the_limit_named(server, queue):
    over = submit_split(server, "alice")  # alice has 3 jobs queued or running, the limit
    assert over.status_code == 429 and over.headers["Content-Type"] == "application/problem+json"
    assert "max_jobs_per_user = 3" in over.json()["detail"]
    wps1 = requests.get(server.url, timeout=30, headers={"COMPUTE-TOKEN": TOKENS["alice"]}, params={
        "service": "WPS", "version": "1.0.0", "request": "Execute", "identifier": "split",
        "DataInputs": f"vector=@xlink:href=file://{server.scene['waterbodies']};method=boxes"})
    exception = ET.fromstring(wps1.content).find(f"{OWS}Exception")
    assert wps1.status_code == 429 and exception.get("exceptionCode") == "ServerBusy"
    assert "max_jobs_per_user = 3" in exception.find(f"{OWS}ExceptionText").text
    # no job runs or waits for them; they are in alice's list as refused (the audit trail keeps them)
    alice = job_ids(server, "alice")
    assert {j for j, job in alice.items() if job["status"] != "failed"} == {queue["a1"], queue["a2"], queue["a3"]}
    assert len(alice) == 5


def test_only_the_owner_or_an_admin_dismisses(server, queue):
    refused = requests.delete(f"{server.base}/jobs/{queue['a1']}", headers=as_user("bob"), timeout=30)
    assert refused.status_code == 403 and "another user" in refused.json()["detail"]
    wps2 = requests.get(server.url, headers=as_user("bob"), timeout=30, params={
        "service": "WPS", "version": "2.0.0", "request": "Dismiss", "jobID": queue["a2"]})
    assert wps2.status_code == 403 and b"ExceptionReport" in wps2.content
    assert "another user" in ET.fromstring(wps2.content).find(f".//{OWS2}ExceptionText").text
    assert wait_for(server, queue["a1"], ("running",))["status"] == "running"  # untouched
    # the owner dismisses her training: the slot goes to the queue
    dismissed = requests.delete(f"{server.base}/jobs/{queue['a1']}", headers=as_user("alice"), timeout=60)
    assert dismissed.status_code == 200 and dismissed.json()["status"] == "dismissed"


def test_the_queue_goes_round_robin_between_users(server, queue):
    for name in ("a2", "a3", "b1"):
        assert wait_for(server, queue[name], ("successful", "failed"))["status"] == "successful", name
    with sqlite3.connect(server.home / "jobs.sqlite") as db:
        started = dict(db.execute("select uuid, started from wps_lakes_job_records"))
    order = sorted(("a2", "a3", "b1"), key=lambda name: started[queue[name]])
    assert order == ["b1", "a2", "a3"]  # bob's one job before alice's second and third, queued earlier


def test_audit_trail_from_the_command_line(server, queue):
    env = dict(os.environ, WPS_LAKES_HOME=str(server.home))
    shown = subprocess.run([WPS_LAKES, "jobs", "show", queue["b1"], "-c", str(server.cfg)], env=env,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    lines = dict(line.split(None, 1) for line in shown.stdout.splitlines() if " " in line.strip())
    assert lines["owner"].strip() == "bob" and lines["process"].strip() == "split"
    assert lines["status"].strip() == "succeeded" and lines["address"].strip() == "127.0.0.1"
    assert f"vector = file://{server.scene['waterbodies']}" in shown.stdout and "method = boxes" in shown.stdout
    listed = subprocess.run([WPS_LAKES, "jobs", "list", "--user", "alice", "-c", str(server.cfg)], env=env,
                            capture_output=True, text=True, timeout=120)
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert {row[0] for row in rows} >= {queue["a1"], queue["a2"], queue["a3"]}
    assert {row[2] for row in rows} == {"alice"} and len(rows) == 5  # with the two refused over the quota


def test_token_store_users_admins_and_the_older_form(tmp_path):
    users_file, old_file = tmp_path / "users", tmp_path / "old"
    users_file.write_text("# comment\nalice tok-a\ntok-alone\nanonymous tok-x\none two three\n")
    old_file.write_text("old-1 old-2\n")
    store = TokenStore("inline-1", old_file, users_file, admins=["alice"])
    assert store.user_of(["tok-a"]) == "alice" and "alice" in store.admins
    assert store.user_of(["tok-alone"]) == token_user("tok-alone") and token_user("tok-alone").startswith("token-")
    assert store.user_of(["old-2"]) == token_user("old-2") and store.user_of(["inline-1"]) == token_user("inline-1")
    assert store.user_of(["tok-x"]) is None and store.user_of(["two"]) is None  # lines refused, with a log line
    users_file.write_text("alice tok-b\n")  # read again when it changes
    assert store.user_of(["tok-a"]) is None and store.user_of(["wrong", "tok-b"]) == "alice"


# ---------------------------------------------------------------------------------------------
# every job bounded


@pytest.fixture(scope="module")
def bounded_server(tmp_path_factory):
    live = LiveServer(tmp_path_factory.mktemp("bounded-server"),
                      extra_cfg={"server": {"parallelprocesses": "1"}, "limits": {"max_job_seconds": "1"}}).start()
    live.scene = {k: str(v) for k, v in make_scene(live.inputs / "scene", seed=5, size_m=1500).items()}
    live.checkpoint = fresh_checkpoint(live.inputs / "fresh.pth")
    yield live
    live.stop()


def test_a_job_past_max_job_seconds_fails_naming_it_and_frees_its_slot(bounded_server):
    base = bounded_server.url.rsplit("/", 1)[0]
    scene = bounded_server.scene
    body = {"inputs": {"checkpoint": {"href": f"file://{bounded_server.checkpoint}"},
                       "raster": [{"href": f"file://{scene['dem']}"}], "vector": {"href": f"file://{scene['hydro']}"}}}
    ids = []
    for _ in range(2):  # one slot: the second waits for the first to be stopped
        response = requests.post(f"{base}/processes/detect/execution", json=body, timeout=60,
                                 headers={"Prefer": "respond-async"})
        assert response.status_code == 201, response.text
        ids.append(response.json()["jobID"])
    started = time.monotonic()
    for job_id in ids:
        status = wait_for(bounded_server, job_id, ("successful", "failed"), timeout=120)
        assert status["status"] == "failed" and "max_job_seconds = 1 s" in status["message"], status
    assert time.monotonic() - started < 90


def sparse_dem(path, scene_dem, pixels=200_000):
    """A GeoTIFF of a few kB that declares pixels x pixels (40 G) over the scene's extent."""
    with rasterio.open(scene_dem) as src:
        left, bottom, right, top = src.bounds
        crs = src.crs
    size = (right - left) / pixels
    with rasterio.open(path, "w", driver="GTiff", width=pixels, height=pixels, count=1, dtype="float32", crs=crs,
                       transform=from_origin(left, top, size, size), nodata=np.float32(-9999), tiled=True,
                       blockxsize=4096, blockysize=4096, sparse_ok=True, BIGTIFF="YES"):
        pass
    assert path.stat().st_size < 1 << 20
    return path


def test_a_raster_declaring_40g_pixels_is_refused_within_seconds_everywhere(live_server):
    folder = live_server.inputs / "huge"
    scene = {k: str(v) for k, v in make_scene(folder, seed=2, size_m=1200).items()}
    huge = str(sparse_dem(folder / "huge.tif", scene["dem"]))
    checkpoint = fresh_checkpoint(folder / "fresh.pth")
    base = live_server.url.rsplit("/", 1)[0]
    requests_by_process = {
        "split": {"vector": {"href": f"file://{scene['waterbodies']}"}, "raster": [{"href": f"file://{huge}"}]},
        "detect": {"checkpoint": {"href": f"file://{checkpoint}"}, "raster": [{"href": f"file://{huge}"}],
                   "vector": {"href": f"file://{scene['hydro']}"}},
        "train": {"raster": [{"href": f"file://{huge}"}], "vector": {"href": f"file://{scene['hydro']}"},
                  "epochs": 1},
    }
    for process, inputs in requests_by_process.items():
        started = time.monotonic()
        response = requests.post(f"{base}/processes/{process}/execution", json={"inputs": inputs}, timeout=120,
                                 headers={"Prefer": "respond-async"})
        assert response.status_code == 201, response.text
        status = wait_for(live_server, response.json()["jobID"], ("successful", "failed"), timeout=120)
        assert status["status"] == "failed" and "max_raster_pixels" in status["message"], (process, status)
        assert "200,000 x 200,000" in status["message"]
        assert time.monotonic() - started < 60, process
    # the ESGF profile cuts the DEM to the domain first: that read is bounded the same way
    started = time.monotonic()
    wps = WebProcessingService(live_server.url, version="1.0.0", skip_caps=True)
    execution, _ = cwt_execute(
        wps, "LAKES.split",
        [{"uri": f"file://{huge}", "id": "dem|v0"}, {"uri": f"file://{scene['waterbodies']}", "id": "hydro|v1"}],
        [], [{"name": "LAKES.split", "result": "op0", "input": ["v0", "v1"], "method": "refined"}], timeout=120)
    assert not execution.isSucceded()
    assert "max_raster_pixels" in json.dumps([e.text for e in execution.errors] + [execution.statusMessage])
    assert time.monotonic() - started < 60
