"""Jobs on real Celery workers with a real Redis broker: no job lost, none run twice, dismissal."""
import json
import subprocess
import time

import pytest
import requests
from owslib.wps import ComplexDataInput, WebProcessingService

from wps_lakes.geodata import make_scene, read_vector, write_geojson
from wps_lakes.hydro import truth_lake_boxes

from .common import WPS_LAKES, LiveServer, RedisServer, Worker

# Short lock and watchdog periods so that a dead worker's job is taken over within seconds here.
CELERY = {"lock_ttl": "6", "watchdog_interval": "2", "visibility_timeout": "3600"}


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, redis_server):
    """A web server in celery mode; the tests start and stop its workers."""
    server = LiveServer(tmp_path_factory.mktemp("celery-server"), extra_cfg={
        "processing": {"mode": "celery"}, "celery": dict(CELERY, broker_url=redis_server.url),
        "server": {"maxprocesses": "100"}}).start()
    server.workers = []

    def start_worker(name):
        server.workers.append(Worker(server, name).start())
        return server.workers[-1]

    server.start_worker = start_worker
    yield server
    for worker in server.workers:
        worker.stop()
    server.stop()


@pytest.fixture(scope="module")
def scene(cluster):
    folder = cluster.inputs / "scene"
    paths = make_scene(folder, seed=5, size_m=1500)
    write_geojson(truth_lake_boxes(read_vector(paths["hydro"])), folder / "boxes.geojson")
    return {"waterbodies": folder / "waterbodies.geojson", "boxes": folder / "boxes.geojson",
            "dem": paths["dem"], "hydro": paths["hydro"]}


def submit_split(server, scene):
    """An async split by KVP; returns the job id."""
    response = requests.get(server.url, params={
        "service": "WPS", "version": "1.0.0", "request": "Execute", "identifier": "split",
        "DataInputs": f"vector=@xlink:href=file://{scene['waterbodies']};"
                      f"detections=@xlink:href=file://{scene['boxes']};method=boxes",
        "ResponseDocument": "hydro=@asReference=true", "storeExecuteResponse": "true", "status": "true"},
        timeout=60)
    assert response.status_code == 200, response.text
    assert "ProcessAccepted" in response.text, response.text
    return response.text.split('statusLocation="')[1].split('"')[0].rsplit("/", 1)[1].removesuffix(".xml")


def job_record(server, job_id):
    path = server.home / "work" / "jobs" / job_id / "status.json"
    return json.loads(path.read_text()) if path.exists() else {}


def wait_for(server, job_ids, states=("succeeded",), timeout=180):
    deadline = time.monotonic() + timeout
    while True:
        records = {job_id: job_record(server, job_id) for job_id in job_ids}
        if all(r.get("status") in states for r in records.values()):
            return records
        assert time.monotonic() < deadline, {k: v.get("status") for k, v in records.items()}
        time.sleep(0.5)


def runs_of(server, job_id):
    log = server.home / "work" / "jobs" / job_id / "runner.log"
    return [line for line in log.read_text().splitlines() if line.startswith("--- ")]


def test_async_execute_runs_on_a_worker(cluster, scene):
    cluster.start_worker("w1")
    wps = WebProcessingService(cluster.url, version="1.0.0")
    execution = wps.execute("split", [("vector", ComplexDataInput(f"file://{scene['waterbodies']}")),
                                      ("detections", ComplexDataInput(f"file://{scene['boxes']}"))],
                            output=[("hydro", True)])
    while not execution.isComplete():
        execution.checkStatus(sleepSecs=0.5)
    assert execution.isSucceded(), execution.errors
    job_id = execution.statusLocation.rsplit("/", 1)[1].removesuffix(".xml")
    runs = runs_of(cluster, job_id)
    assert len(runs) == 1 and "started on worker" in runs[0]


def test_twenty_jobs_on_two_workers_none_twice(cluster, scene):
    cluster.start_worker("w2")  # w1 from the test above
    started = time.monotonic()
    job_ids = [submit_split(cluster, scene) for _ in range(20)]
    wait_for(cluster, job_ids, timeout=300)
    elapsed = time.monotonic() - started
    for job_id in job_ids:
        assert len(runs_of(cluster, job_id)) == 1, runs_of(cluster, job_id)
    print(f"20 split jobs on 2 workers: {elapsed:.1f} s, {20 / elapsed * 60:.1f} jobs/min")


def test_web_server_restart_with_jobs_queued(cluster, scene):
    for worker in cluster.workers:
        worker.stop()
    job_ids = [submit_split(cluster, scene) for _ in range(5)]
    assert {job_record(cluster, j).get("status") for j in job_ids} == {"accepted"}
    cluster.stop()
    cluster.start()  # same folders, same broker
    cluster.start_worker("w3")
    wait_for(cluster, job_ids, timeout=180)
    for job_id in job_ids:
        assert len(runs_of(cluster, job_id)) == 1


def test_broker_unreachable_is_server_busy(tmp_path):
    from .common import free_port

    server = LiveServer(tmp_path, extra_cfg={
        "processing": {"mode": "celery"}, "celery": {"broker_url": f"redis://127.0.0.1:{free_port()}/0"}}).start()
    try:
        waterbodies = make_scene(server.inputs, seed=5, size_m=1500)["waterbodies"]
        started = time.monotonic()
        response = requests.get(server.url, params={
            "service": "WPS", "version": "1.0.0", "request": "Execute", "identifier": "split",
            "DataInputs": f"vector=@xlink:href=file://{waterbodies}", "storeExecuteResponse": "true",
            "status": "true"}, timeout=60)
        assert time.monotonic() - started < 30  # an answer, not a hang
        assert "ServerBusy" in response.text and "Redis" in response.text
        assert server.is_healthy()
    finally:
        server.stop()


def run_cli_dismiss(server, job_id):
    return subprocess.run([WPS_LAKES, "jobs", "dismiss", job_id, "-c", str(server.cfg)], env=server.env,
                          capture_output=True, text=True, timeout=120, check=False)
