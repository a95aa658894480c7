"""Jobs on real Celery workers with a real Redis broker: no job lost, none run twice, dismissal."""
import json
import subprocess
import time

import pytest
import requests
from owslib.wps import ComplexDataInput, WebProcessingService

from wps_lakes.geodata import make_scene, read_vector, write_geojson
from wps_lakes.hydro import truth_lake_boxes

from ..common import WPS_LAKES, LiveServer, RedisServer, Worker

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
    from ..common import free_port

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


def test_max_jobs_per_user_holds_on_celery(tmp_path):
    """The broker's queue is first in, first out: what keeps a user from filling it is the cap, checked
    by the web server against the job records before a task is published (no worker needed)."""
    (tmp_path / "redis").mkdir()
    redis = RedisServer(tmp_path / "redis").start()
    server = LiveServer(tmp_path / "server", extra_cfg={
        "processing": {"mode": "celery"}, "celery": dict(CELERY, broker_url=redis.url),
        "auth": {"max_jobs_per_user": "2"}}).start()
    try:
        folder = server.inputs / "scene"
        paths = make_scene(folder, seed=5, size_m=1500)
        write_geojson(truth_lake_boxes(read_vector(paths["hydro"])), folder / "boxes.geojson")
        scene = {"waterbodies": paths["waterbodies"], "boxes": folder / "boxes.geojson"}
        queued = [submit_split(server, scene) for _ in range(2)]  # no worker: both wait in the broker
        over = requests.get(server.url, params={
            "service": "WPS", "version": "1.0.0", "request": "Execute", "identifier": "split",
            "DataInputs": f"vector=@xlink:href=file://{scene['waterbodies']};method=boxes",
            "storeExecuteResponse": "true", "status": "true"}, timeout=60)
        assert over.status_code == 429 and "ServerBusy" in over.text and "max_jobs_per_user = 2" in over.text
        assert all(job_record(server, job_id).get("status") == "accepted" for job_id in queued)
    finally:
        server.stop()
        redis.stop()


def submit_train(server, scene, epochs):
    """An async train on the small scene (the light CPU model, one iteration an epoch); the job id."""
    response = requests.get(server.url, params={
        "service": "WPS", "version": "1.0.0", "request": "Execute", "identifier": "train",
        "DataInputs": f"raster=@xlink:href=file://{scene['dem']};vector=@xlink:href=file://{scene['hydro']};"
                      f"epochs={epochs};device=cpu",
        "storeExecuteResponse": "true", "status": "true"}, timeout=60)
    assert "ProcessAccepted" in response.text, response.text
    return response.text.split('statusLocation="')[1].split('"')[0].rsplit("/", 1)[1].removesuffix(".xml")


def wait_for_checkpoint(server, job_id, timeout=300):
    """Wait until the job's status lists a checkpoint written while it trains; returns its record."""
    deadline = time.monotonic() + timeout
    while "latest_checkpoint" not in job_record(server, job_id).get("outputs", {}):
        assert job_record(server, job_id).get("status") in ("accepted", "running", None), job_record(server, job_id)
        assert time.monotonic() < deadline, "no checkpoint was listed"
        time.sleep(0.5)
    return job_record(server, job_id)


def session_log(server, job_id):
    logs = list((server.home / "outputs" / job_id).glob("*/logs/trainer.log"))
    assert len(logs) == 1, logs
    return logs[0].read_text()


def test_worker_killed_mid_training_resumes_on_a_new_worker(cluster, scene):
    for worker in cluster.workers:
        worker.stop()
    doomed = cluster.start_worker("w4")
    job_id = submit_train(cluster, scene, epochs=8)
    wait_for_checkpoint(cluster, job_id)
    doomed.kill()
    assert job_record(cluster, job_id)["status"] == "running"
    cluster.start_worker("w5")
    record = wait_for(cluster, [job_id], timeout=600)[job_id]
    runs = runs_of(cluster, job_id)
    assert len(runs) == 2 and "started" in runs[0] and "redelivered" in runs[1], runs
    log = session_log(cluster, job_id)
    assert "resumed from ckpt.0" in log, log
    # at most the epoch in progress was lost: every epoch recorded once, in order
    metrics = (cluster.home / "outputs" / job_id).glob("*/logs/metrics.jsonl")
    records = [json.loads(line) for line in next(metrics).read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(8))
    assert {"best_checkpoint", "latest_checkpoint", "log"} <= set(record["outputs"])


def test_dismissing_a_running_training_stops_it_and_frees_the_worker(cluster, scene):
    job_id = submit_train(cluster, scene, epochs=400)
    wait_for_checkpoint(cluster, job_id)
    started = time.monotonic()
    out = run_cli_dismiss(cluster, job_id)
    assert out.returncode == 0 and "dismissed" in out.stdout, out.stdout + out.stderr
    wait_for(cluster, [job_id], states=("failed", "dismissed"), timeout=30)
    assert (cluster.home / "work" / "jobs" / job_id / "dismissed").exists()
    worker_log = cluster.workers[-1].log_path
    while f"run_job[{job_id}] succeeded" not in worker_log.read_text():  # the task ended: the slot is free
        assert time.monotonic() - started < 60, worker_log.read_text()[-3000:]
        time.sleep(0.2)
    stopped_s = time.monotonic() - started
    assert stopped_s < 10, f"dismissal took {stopped_s:.1f} s"
    status_xml = requests.get(f"http://127.0.0.1:{cluster.port}/outputs/{job_id}.xml", timeout=30).text
    assert "ProcessFailed" in status_xml and "ismissed" in status_xml
    # the only worker (concurrency 1) takes the next job at once
    split_id = submit_split(cluster, scene)
    wait_for(cluster, [split_id], timeout=60)
    print(f"dismissal of a running training: {stopped_s:.1f} s")


def run_cli_dismiss(server, job_id):
    return subprocess.run([WPS_LAKES, "jobs", "dismiss", job_id, "-c", str(server.cfg)], env=server.env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_worker_refuses_an_output_path_it_cannot_write(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the shared output folder should be")
    cfg = tmp_path / "worker.cfg"
    cfg.write_text(f"[processing]\nmode = celery\n[server]\noutputpath = {blocker}/outputs\n"
                   f"workdir = {tmp_path}/work\n")
    out = subprocess.run([WPS_LAKES, "worker", "--queue", "cpu", "-c", str(cfg)], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode != 0
    assert f"outputpath = {blocker}/outputs is not a writable folder" in out.stderr + out.stdout
    assert "Traceback" not in out.stderr
