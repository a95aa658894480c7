"""Service benchmark: what WPS adds to a library call, and how many small requests gunicorn answers.

    .venv/bin/python -m benchmarks.bench_service            # 3 km scene, 5 repetitions, 10 s per request rate
    .venv/bin/python -m benchmarks.bench_service --quick    # 1.5 km scene, 3 repetitions, 5 s

Overhead: the same ``split`` (refined, true lake boxes as detections, with the DEM) run as a direct
library call (``split_to_files``), as a synchronous WPS Execute, and as an asynchronous one polled
every 0.1 s until it succeeds, against a real gunicorn server on loopback. The added latency is the
median WPS time minus the median direct time: a job process starting, fetching the file:// inputs,
writing the status document.

Request rates: GetCapabilities and DescribeProcess (all processes) from 8 client threads for a fixed
time, under the default 2 gunicorn workers x 8 threads on this machine's 2 cores.
"""
import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import requests

from tests.common import LiveServer
from wps_lakes.geodata import make_scene, read_vector, write_geojson
from wps_lakes.hydro import split_to_files, truth_lake_boxes


def split_inputs(server_inputs, size_m):
    paths = make_scene(Path(server_inputs) / "scene", seed=21, size_m=size_m)
    boxes = Path(server_inputs) / "scene" / "boxes.geojson"
    write_geojson(truth_lake_boxes(read_vector(paths["hydro"])), boxes)
    return paths["waterbodies"], boxes, paths["dem"]


def execute_params(waterbodies, boxes, dem, asynchronous):
    params = {"service": "WPS", "version": "1.0.0", "request": "Execute", "identifier": "split",
              "DataInputs": f"vector=@xlink:href=file://{waterbodies};detections=@xlink:href=file://{boxes};"
                            f"raster=@xlink:href=file://{dem};method=refined",
              "ResponseDocument": "lakes=@asReference=true"}
    if asynchronous:
        params.update(storeExecuteResponse="true", status="true")
    return params


def timed_sync(url, params):
    started = time.perf_counter()
    response = requests.get(url, params=params, timeout=600)
    elapsed = time.perf_counter() - started
    if "ProcessSucceeded" not in response.text:
        raise RuntimeError(f"sync split failed: {response.text[-500:]}")
    return elapsed


def timed_async(url, params):
    started = time.perf_counter()
    response = requests.get(url, params=params, timeout=600)
    location = response.text.split('statusLocation="')[1].split('"')[0]
    while True:
        document = requests.get(location, timeout=60).text
        if "ProcessSucceeded" in document:
            return time.perf_counter() - started
        if "ProcessFailed" in document:
            raise RuntimeError(f"async split failed: {document[-500:]}")
        time.sleep(0.1)


def request_rate(url, params, seconds, threads=8):
    """Requests per second answered 200 by ``threads`` clients in a loop for ``seconds``."""
    counts, errors = [0] * threads, [0] * threads
    deadline = time.monotonic() + seconds

    def client(index):
        session = requests.Session()
        while time.monotonic() < deadline:
            ok = session.get(url, params=params, timeout=60).status_code == 200
            counts[index] += ok
            errors[index] += not ok

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return {"requests_per_s": round(sum(counts) / (time.monotonic() - started), 1), "errors": sum(errors)}


def run(quick=False):
    repeats, seconds, size_m = (3, 5, 1500) if quick else (5, 10, 3000)
    with tempfile.TemporaryDirectory(prefix="bench-service-") as home:
        server = LiveServer(home).start()
        try:
            waterbodies, boxes, dem = split_inputs(server.inputs, size_m)
            direct = []
            for index in range(repeats):
                started = time.perf_counter()
                split_to_files(waterbodies, Path(home) / f"direct{index}", detections=boxes, rasters=[dem])
                direct.append(time.perf_counter() - started)
            sync = [timed_sync(server.url, execute_params(waterbodies, boxes, dem, False)) for _ in range(repeats)]
            asynchronous = [timed_async(server.url, execute_params(waterbodies, boxes, dem, True))
                            for _ in range(repeats)]
            caps = request_rate(server.url, {"service": "WPS", "request": "GetCapabilities"}, seconds)
            describe = request_rate(server.url, {"service": "WPS", "version": "1.0.0", "request": "DescribeProcess",
                                                 "identifier": "all"}, seconds)
        finally:
            server.stop()
    direct_s, sync_s, async_s = (statistics.median(v) for v in (direct, sync, asynchronous))
    return {
        "scene_m": size_m, "repeats": repeats,
        "split_direct_s": round(direct_s, 3), "split_wps_sync_s": round(sync_s, 3),
        "split_wps_async_s": round(async_s, 3),
        "added_latency_sync_s": round(sync_s - direct_s, 3), "added_latency_async_s": round(async_s - direct_s, 3),
        "getcapabilities": caps, "describeprocess_all": describe, "client_threads": 8,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller scene, fewer repetitions")
    args = parser.parse_args(argv)
    print(json.dumps(run(quick=args.quick), indent=1))


if __name__ == "__main__":
    main()
