"""Helpers shared by the tests: an in-process WPS client and a live gunicorn server."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from pywps.tests import WpsClient, WpsTestResponse

from wps_lakes.wsgi import create_app

REPO = Path(__file__).resolve().parents[1]
WPS_LAKES = str(Path(sys.executable).with_name("wps-lakes"))


def client_for(cfgfiles=None):
    """An in-process WPS client over the real WSGI application (no HTTP)."""
    return WpsClient(create_app(cfgfiles), WpsTestResponse)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_cfg(path, **sections):
    """Write a PyWPS config file from {section: {option: value}}."""
    lines = []
    for section, options in sections.items():
        lines.append(f"[{section.replace('__', ':')}]")
        lines += [f"{key} = {value}" for key, value in options.items()]
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def scene_with_lake_boxes(folder, seed=7, size_m=1500):
    """A small synthetic scene plus ``true_boxes.geojson``: each lake's envelope, confidence 1 (paths)."""
    import geopandas as gpd

    from wps_lakes.geodata import LAKE, make_scene, read_vector, write_geojson

    paths = make_scene(folder, seed=seed, size_m=size_m)
    hydro = read_vector(paths["hydro"])
    lakes = hydro[hydro["TYPECE"] == LAKE]
    boxes = gpd.GeoDataFrame({"confidence": [1.0] * len(lakes)}, geometry=list(lakes.envelope.values), crs=hydro.crs)
    paths["true_boxes"] = write_geojson(boxes, Path(folder) / "true_boxes.geojson")
    return paths


class LiveServer:
    """The real service under gunicorn on a free loopback port, with its own folders.

    Started through `wps-lakes start` in the foreground, the way a user starts it.
    """

    def __init__(self, home, extra_cfg=None, env=None, workers=2, threads=8):
        self.home = Path(home)
        self.gunicorn_workers, self.gunicorn_threads = workers, threads
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/wps"
        self.outputpath = self.home / "outputs"
        self.inputs = self.home / "inputs"  # file:// references are allowed from here
        self.inputs.mkdir(parents=True, exist_ok=True)
        options = {"server": {"url": self.url, "outputurl": f"http://127.0.0.1:{self.port}/outputs",
                              "allowedinputpaths": str(self.inputs)},
                   "logging": {"level": "INFO"}}
        for section, values in (extra_cfg or {}).items():
            options.setdefault(section, {}).update(values)
        self.cfg = write_cfg(self.home / "test.cfg", **options)
        self.env = dict(os.environ, WPS_LAKES_HOME=str(self.home), **(env or {}))
        self.env.pop("PYWPS_CFG", None)
        self.proc = None

    def start(self, timeout=120):
        self.log = open(self.home / "server.out", "ab")
        self.proc = subprocess.Popen(
            [WPS_LAKES, "start", "--port", str(self.port), "--workers", str(self.gunicorn_workers), "--threads",
             str(self.gunicorn_threads), "-c", str(self.cfg)],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {(self.home / 'server.out').read_text()[-3000:]}")
            try:
                if requests.get(self.url, params={"service": "WPS", "request": "GetCapabilities"},
                                timeout=30).status_code == 200:
                    return self
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError("server did not answer in time")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()

    def is_healthy(self):
        response = requests.get(self.url, params={"service": "WPS", "request": "GetCapabilities"}, timeout=10)
        return response.status_code == 200 and b"Capabilities" in response.content


class RedisServer:
    """A real redis-server on a free loopback port, without persistence (installed by `make services`)."""

    def __init__(self, folder):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.folder = Path(folder)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        import redis

        client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class Worker:
    """A real `wps-lakes worker` process serving both queues for a live server's configuration."""

    def __init__(self, server, name):
        self.server, self.name = server, name
        self.log_path = server.home / f"worker-{name}.log"
        self.proc = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [WPS_LAKES, "worker", "--queue", "gpu,cpu", "--concurrency", "1", "-c", str(self.server.cfg),
                 "--name", f"{self.name}@%h", "--loglevel", "INFO"], env=self.server.env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while b"ready." not in self.log_path.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        return self

    def kill(self):
        """SIGKILL to the worker and its pool processes, as when a node dies."""
        os.killpg(self.proc.pid, 9)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
