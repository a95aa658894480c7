"""Job backends: submit-to-start latency and throughput of short jobs, Celery workers against local jobs.

    .venv/bin/python -m benchmarks.bench_celery            # 5 latency samples, 20 throughput jobs
    .venv/bin/python -m benchmarks.bench_celery --quick    # 3 samples, 10 jobs

Both backends run on this machine: the local backend (a job process per job, ``parallelprocesses=2``)
and Celery with a Redis broker and 2 workers (``wps-lakes worker``), behind the same gunicorn server
setup. Latency: from the moment the Execute answer (ProcessAccepted) arrives to the job's status
turning running, for one job at a time. Throughput: short ``split`` jobs (boxes method, 1.5 km scene)
submitted at once, until the last one succeeds.
"""
import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from tests.common import LiveServer, RedisServer, Worker
from tests.jobs.test_celery import job_record, submit_split
from wps_lakes.geodata import make_scene, read_vector, write_geojson
from wps_lakes.hydro import truth_lake_boxes


def scene_in(server):
    folder = server.inputs / "scene"
    paths = make_scene(folder, seed=5, size_m=1500)
    write_geojson(truth_lake_boxes(read_vector(paths["hydro"])), folder / "boxes.geojson")
    return {"waterbodies": paths["waterbodies"], "boxes": folder / "boxes.geojson"}


def wait_status(server, job_id, wanted, timeout=300):
    deadline = time.monotonic() + timeout
    while job_record(server, job_id).get("status") not in wanted:
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} stuck at {job_record(server, job_id).get('status')}")
        time.sleep(0.02)


def measure(server, scene, samples, jobs):
    latencies = []
    for _ in range(samples):
        job_id = submit_split(server, scene)
        accepted = time.perf_counter()
        wait_status(server, job_id, ("running", "succeeded", "failed"))
        latencies.append(time.perf_counter() - accepted)
        wait_status(server, job_id, ("succeeded",))
    started = time.perf_counter()
    job_ids = [submit_split(server, scene) for _ in range(jobs)]
    for job_id in job_ids:
        wait_status(server, job_id, ("succeeded",))
    elapsed = time.perf_counter() - started
    return {"submit_to_start_s": round(statistics.median(latencies), 3),
            "jobs": jobs, "jobs_elapsed_s": round(elapsed, 1), "jobs_per_min": round(jobs / elapsed * 60, 1)}


def run(quick=False):
    samples, jobs = (3, 10) if quick else (5, 20)
    figures = {}
    with tempfile.TemporaryDirectory(prefix="bench-celery-") as home:
        local = LiveServer(Path(home) / "local", extra_cfg={"server": {"parallelprocesses": "2",
                                                                          "maxprocesses": "100"}}).start()
        try:
            figures["local"] = measure(local, scene_in(local), samples, jobs)
        finally:
            local.stop()
        redis_server = RedisServer(home).start()
        server = LiveServer(Path(home) / "celery", extra_cfg={
            "processing": {"mode": "celery"}, "celery": {"broker_url": redis_server.url},
            "server": {"maxprocesses": "100"}}).start()
        workers = [Worker(server, f"bench{i}").start() for i in range(2)]
        try:
            figures["celery"] = measure(server, scene_in(server), samples, jobs)
        finally:
            for worker in workers:
                worker.stop()
            server.stop()
            redis_server.stop()
    figures["workers"] = 2
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer samples and jobs")
    args = parser.parse_args(argv)
    print(json.dumps(run(quick=args.quick), indent=1))


if __name__ == "__main__":
    main()
