"""Load driver: concurrent WPS clients against the live gunicorn service, with honest accounting.

    .venv/bin/python -m benchmarks.load                         # 50 clients for 60 s (about 2 minutes)
    .venv/bin/python -m benchmarks.load --clients 20 --duration 10
    .venv/bin/python -m benchmarks.load --url http://host:5000/wps   # a running service (inputs: see below)

The CLI writes the figures to benchmarks/results/load.json, with ``--machine`` (the machine, in
words) and the date.

``run(duration_s, clients)`` starts the service (``wps-lakes start``, 2 gunicorn workers of 8 threads,
2 job slots, a queue of 100, access tokens on for ``USERS`` users) in a temporary folder with a small
synthetic scene, then runs ``clients`` threads for ``duration_s`` seconds, each issuing requests back
to back (no think time):

- ``submitters`` of them (default 10) submit small asynchronous ``split`` jobs (WPS 1.0.0 XML,
  method=boxes, 1.5 km scene), each as one of the users (its token in the COMPUTE-TOKEN header), and
  poll each job's status document (without a token, as OWSLib does) until it ends, then submit the next;
- the others mix GetCapabilities (WPS 1.0.0 and 2.0.0), DescribeProcess (one process and all),
  status polls (WPS 1.0.0 status documents and WPS 2.0.0 GetStatus of the jobs seen so far) and a
  user's job list (OGC API ``GET /jobs`` with a token).

Afterwards every job must have its complete record (``records``): its submitter as owner, the
process, the client's address, the inputs as given, when it was accepted and started, a final state.

When the time is up no new job is submitted; the driver waits for every job submitted to end.

Accounting: every answer is checked (status code and the document it should be); ``server_errors``
counts every 5xx except a 503 whose ExceptionReport says ServerBusy (the service's answer to a full
queue, by design), which is counted apart as ``busy``; ``bad_answers`` counts 2xx/4xx answers that are
not the expected document; ``client_errors`` counts connection failures and timeouts. With at most
``submitters`` jobs unfinished at any time and a queue of 100, ``busy`` is 0 unless something is wrong.
``torn_status_reads`` counts WPS 1.0.0 status documents read empty or cut short while the job
replaced them, apart from the errors above (PyWPS rewrote them in place; they are now replaced
atomically and served from one open file, so this must be 0).
Latencies are wall-clock per HTTP request, seen by the client, in milliseconds.
"""
import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import requests
from lxml import etree

from tests.common import LiveServer

WPS1 = "http://www.opengis.net/wps/1.0.0"
WPS2 = "http://www.opengis.net/wps/2.0"
OWS_NAMESPACES = ("http://www.opengis.net/ows/1.1", "http://www.opengis.net/ows/2.0")
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
RESULTS = Path(__file__).with_name("results")
USERS = 3  # the local service runs with access tokens for this many users


def prepare_inputs(folder):
    """A 1.5 km synthetic scene and its true lake boxes: the inputs of the split jobs."""
    import geopandas as gpd

    from wps_lakes.geodata import LAKE, make_scene, read_vector, write_geojson

    scene = make_scene(Path(folder) / "scene", seed=7, size_m=1500)
    hydro = read_vector(scene["hydro"])
    lakes = hydro[hydro["TYPECE"] == LAKE]
    boxes = gpd.GeoDataFrame({"confidence": [1.0] * len(lakes)}, geometry=list(lakes.envelope.values),
                             crs=hydro.crs)
    write_geojson(boxes, Path(folder) / "scene" / "boxes.geojson")
    return {"waterbodies": str(scene["waterbodies"]), "boxes": str(Path(folder) / "scene" / "boxes.geojson")}


def split_request(inputs):
    return (f'<?xml version="1.0" encoding="UTF-8"?><wps:Execute service="WPS" version="1.0.0" xmlns:wps="{WPS1}" '
            'xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink">'
            "<ows:Identifier>split</ows:Identifier><wps:DataInputs>"
            '<wps:Input><ows:Identifier>vector</ows:Identifier><wps:Reference xlink:href="file://'
            f'{inputs["waterbodies"]}" mimeType="application/geo+json"/></wps:Input>'
            '<wps:Input><ows:Identifier>detections</ows:Identifier><wps:Reference xlink:href="file://'
            f'{inputs["boxes"]}" mimeType="application/geo+json"/></wps:Input>'
            "<wps:Input><ows:Identifier>method</ows:Identifier><wps:Data><wps:LiteralData>boxes</wps:LiteralData>"
            "</wps:Data></wps:Input></wps:DataInputs><wps:ResponseForm><wps:ResponseDocument "
            'storeExecuteResponse="true" status="true"><wps:Output asReference="true"><ows:Identifier>hydro'
            "</ows:Identifier></wps:Output></wps:ResponseDocument></wps:ResponseForm></wps:Execute>").encode()


# ---------------------------------------------------------------------------------------------
# the clients


class Recorder:
    """Thread-safe record of every request: operation, status, latency, verdict."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = defaultdict(list)  # operation -> [ms]
        self.statuses = Counter()
        self.verdicts = Counter()          # ok | server_error | busy | bad_answer | client_error
        self.examples = {}                 # verdict -> one example, for the report

    def flag(self, verdict, example):
        """A wrong answer found on a closer look at a response already counted as ok."""
        with self.lock:
            self.verdicts[verdict] += 1
            self.verdicts["ok"] -= 1
            self.examples.setdefault(verdict, example)

    def add(self, operation, status, ms, verdict, example=""):
        with self.lock:
            self.latencies[operation].append(ms)
            self.statuses[status] += 1
            self.verdicts[verdict] += 1
            if verdict != "ok" and verdict not in self.examples:
                self.examples[verdict] = f"{operation}: HTTP {status} {example}"


def _root(response):
    try:
        return etree.fromstring(response.content, PARSER)
    except etree.XMLSyntaxError:
        return None


def _verdict(response, expected):
    """ok, busy, server_error or bad_answer, from the status and the document."""
    if expected == "JobList":
        if response.status_code >= 500:
            return "server_error"
        try:
            return "ok" if response.status_code == 200 and isinstance(response.json()["jobs"], list) else "bad_answer"
        except (ValueError, KeyError, TypeError):
            return "bad_answer"
    root = _root(response)
    if response.status_code >= 500:
        codes = [e.get("exceptionCode") for e in root.iter("{*}Exception")] if root is not None else []
        return "busy" if response.status_code == 503 and codes == ["ServerBusy"] else "server_error"
    if response.status_code != 200 or root is None or etree.QName(root).localname != expected:
        return "bad_answer"
    return "ok"


def _gist(response):
    """What an unexpected answer says: its exception code and text, or its first bytes."""
    root = _root(response)
    if root is not None and etree.QName(root).localname == "ExceptionReport":
        return "; ".join(f"{e.get('exceptionCode')}: {''.join(e.itertext()).strip()}"
                         for e in root.iter("{*}Exception"))
    return response.text[:300]


def _status_of(root):
    status = root.find(f"{{{WPS1}}}Status")
    if status is None or not len(status):
        return None
    return etree.QName(status[0]).localname  # ProcessAccepted | ProcessStarted | ProcessSucceeded | ProcessFailed


class Load:
    def __init__(self, url, inputs, duration_s, clients, submitters, seed, tokens=None):
        self.url = url
        self.tokens = list((tokens or {}).items())  # [(user, token)]: jobs are submitted as these users
        self.job_owners = {}      # job id -> the user who submitted it
        self.base = url.rsplit("/", 1)[0]
        self.body = split_request(inputs)
        self.duration_s = duration_s
        self.clients = clients
        self.submitters = min(submitters, clients)
        self.rng = random.Random(seed)
        self.record = Recorder()
        self.jobs = {}            # status URL -> {"submitted": t, "ended": t, "state": ...}
        self.job_ids = []
        self.jobs_lock = threading.Lock()
        self.stop_at = None

    def request(self, session, operation, expected, method, url, **kwargs):
        started = time.perf_counter()
        try:
            response = session.request(method, url, timeout=120, **kwargs)
        except requests.exceptions.ChunkedEncodingError as exc:
            # the status document changed size while it was sent (PyWPS rewrites it in place)
            verdict = "torn_status" if operation == "status_poll" else "client_error"
            self.record.add(operation, "error", (time.perf_counter() - started) * 1000, verdict, type(exc).__name__)
            return None
        except requests.RequestException as exc:
            self.record.add(operation, "error", (time.perf_counter() - started) * 1000, "client_error",
                            type(exc).__name__)
            return None
        ms = (time.perf_counter() - started) * 1000
        verdict = _verdict(response, expected)
        if verdict == "bad_answer" and operation == "status_poll" and response.status_code == 200:
            verdict = "torn_status"  # an empty or half-written status document
        self.record.add(operation, response.status_code, ms, verdict, _gist(response) if verdict != "ok" else "")
        return response if verdict == "ok" else None

    # -- the two kinds of client ----------------------------------------------------------------

    def user_headers(self, index):
        if not self.tokens:
            return "anonymous", {}
        user, token = self.tokens[index % len(self.tokens)]
        return user, {"COMPUTE-TOKEN": token}

    def submitter(self, index):
        session = requests.Session()
        user, headers = self.user_headers(index)
        while time.monotonic() < self.stop_at:
            response = self.request(session, "execute_split", "ExecuteResponse", "POST", self.url, data=self.body,
                                    headers={"Content-Type": "text/xml", **headers})
            if response is None:
                time.sleep(0.5)
                continue
            root = _root(response)
            location = root.get("statusLocation")
            job = {"submitted": time.monotonic(), "ended": None, "state": _status_of(root)}
            with self.jobs_lock:
                self.jobs[location] = job
                self.job_ids.append(location.rsplit("/", 1)[-1][:-4])
                self.job_owners[self.job_ids[-1]] = user
            self.follow(session, location, job, deadline=None)

    def follow(self, session, location, job, deadline):
        """Poll one job's status document until it ends (or ``deadline``)."""
        while job["state"] not in ("ProcessSucceeded", "ProcessFailed"):
            if deadline is not None and time.monotonic() > deadline:
                return
            time.sleep(0.5)
            response = self.request(session, "status_poll", "ExecuteResponse", "GET", location)
            if response is not None:
                job["state"] = _status_of(_root(response))
        job["ended"] = job["ended"] or time.monotonic()

    def reader(self, index):
        session = requests.Session()
        rng = random.Random(index)
        while time.monotonic() < self.stop_at:
            choice = rng.random()
            if choice < 0.25:
                self.request(session, "getcapabilities", "Capabilities", "GET", self.url,
                             params={"service": "WPS", "request": "GetCapabilities"})
            elif choice < 0.35:
                self.request(session, "getcapabilities_2.0", "Capabilities", "GET", self.url,
                             params={"service": "WPS", "request": "GetCapabilities", "version": "2.0.0"})
            elif choice < 0.55:
                self.request(session, "describeprocess", "ProcessDescriptions", "GET", self.url,
                             params={"service": "WPS", "request": "DescribeProcess", "version": "1.0.0",
                                     "identifier": rng.choice(["split", "detect", "train"])})
            elif choice < 0.6 and self.tokens and rng.random() < 0.5:
                user, headers = self.user_headers(index)
                response = self.request(session, "job_list", "JobList", "GET", f"{self.base}/jobs",
                                        params={"limit": 1000}, headers=headers)
                with self.jobs_lock:
                    listed = {job["jobID"] for job in response.json()["jobs"]} if response is not None else set()
                    others = [j for j in listed if self.job_owners.get(j, user) != user]
                if others:  # another user's job in this user's list
                    self.record.flag("bad_answer", f"job_list: {user} was shown another user's job {others[0]}")
            elif choice < 0.6:
                self.request(session, "describeprocess_all", "ProcessDescriptions", "GET", self.url,
                             params={"service": "WPS", "request": "DescribeProcess", "version": "1.0.0",
                                     "identifier": "all"})
            else:
                with self.jobs_lock:
                    locations = list(self.jobs)
                    ids = list(self.job_ids)
                if not locations:
                    time.sleep(0.05)
                    continue
                if choice < 0.85:
                    self.request(session, "status_poll", "ExecuteResponse", "GET", rng.choice(locations))
                else:
                    self.request(session, "getstatus_2.0", "StatusInfo", "GET", self.url,
                                 params={"service": "WPS", "version": "2.0.0", "request": "GetStatus",
                                         "jobid": rng.choice(ids)})

    def run(self, drain_timeout_s=600):
        started = time.monotonic()
        self.stop_at = started + self.duration_s
        threads = [threading.Thread(target=self.submitter if i < self.submitters else self.reader, args=(i,),
                                    daemon=True) for i in range(self.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=self.duration_s + drain_timeout_s)
        loaded = time.monotonic() - started
        session = requests.Session()
        deadline = time.monotonic() + drain_timeout_s
        for location, job in list(self.jobs.items()):
            self.follow(session, location, job, deadline)
        return self.summary(loaded, time.monotonic() - started)

    def summary(self, loaded_s, total_s):
        everything = sorted(ms for values in self.record.latencies.values() for ms in values)
        states = Counter(job["state"] for job in self.jobs.values())
        job_seconds = sorted(job["ended"] - job["submitted"] for job in self.jobs.values() if job["ended"])
        return {
            "duration_s": self.duration_s, "clients": self.clients, "submitters": self.submitters,
            "load_s": round(loaded_s, 1), "total_s": round(total_s, 1),
            "requests": len(everything), "requests_per_s": round(len(everything) / max(loaded_s, 1e-9), 1),
            "latency_ms": _percentiles(everything),
            "by_operation": {op: {"requests": len(v), **_percentiles(sorted(v))}
                             for op, v in sorted(self.record.latencies.items())},
            "status_codes": {str(k): v for k, v in sorted(self.record.statuses.items(), key=lambda kv: str(kv[0]))},
            "server_errors": self.record.verdicts["server_error"],
            "busy_503": self.record.verdicts["busy"],
            "bad_answers": self.record.verdicts["bad_answer"],
            "client_errors": self.record.verdicts["client_error"],
            "torn_status_reads": self.record.verdicts["torn_status"],
            "examples": self.record.examples,
            "jobs": {"submitted": len(self.jobs), "succeeded": states["ProcessSucceeded"],
                     "failed": states["ProcessFailed"],
                     "unfinished": len(self.jobs) - states["ProcessSucceeded"] - states["ProcessFailed"],
                     "seconds": _percentiles(job_seconds, scale=1, digits=1)},
        }


def _percentiles(values, scale=1, digits=0):
    if not values:
        return {}

    def at(q):
        return round(values[min(len(values) - 1, int(q * len(values)))] * scale, digits)

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": round(values[-1] * scale, digits),
            "mean": round(statistics.fmean(values) * scale, digits)}


def run(duration_s=60, clients=50, submitters=10, url=None, inputs=None, seed=0, drain_timeout_s=600, home=None):
    """Run the load against ``url`` (or a service started here, in ``home`` or a temporary folder) and
    return the figures (a dict)."""
    if url is not None:
        return Load(url, inputs, duration_s, clients, submitters, seed).run(drain_timeout_s)
    if home is not None:
        return _run_local(Path(home), duration_s, clients, submitters, seed, drain_timeout_s)
    with tempfile.TemporaryDirectory(prefix="wps-lakes-load-") as folder:
        return _run_local(Path(folder), duration_s, clients, submitters, seed, drain_timeout_s)


def _run_local(home, duration_s, clients, submitters, seed, drain_timeout_s):
    tokens = {f"user{i}": f"load-token-{i}-{random.Random(seed + i).getrandbits(64):016x}" for i in range(USERS)}
    home.mkdir(parents=True, exist_ok=True)
    tokens_file = home / "users"
    tokens_file.write_text("".join(f"{user} {token}\n" for user, token in tokens.items()))
    service = LiveServer(home, extra_cfg={"server": {"parallelprocesses": 2, "maxprocesses": 100},
                                          "auth": {"tokens_file": str(tokens_file)},
                                          "logging": {"level": "WARNING"}}).start()
    try:
        inputs = prepare_inputs(service.inputs)
        load = Load(service.url, inputs, duration_s, clients, submitters, seed, tokens)
        result = load.run(drain_timeout_s)
        result["records"] = check_records(home / "jobs.sqlite", load.job_owners)
        result["service"] = {"workers": service.gunicorn_workers, "threads": service.gunicorn_threads, "job_slots": 2,
                             "queue": 100, "users": USERS, "cpus": os.cpu_count()}
        return result
    finally:
        service.stop()


def check_records(database, job_owners):
    """Every job's record is complete: the submitter as owner, process, address, inputs, accepted and
    started times, and a final state in PyWPS's table."""
    with sqlite3.connect(database) as db:
        rows = {row[0]: row[1:] for row in db.execute(
            "select r.uuid, r.owner, r.process, r.address, r.inputs, r.accepted, r.started, p.status, p.time_end "
            "from wps_lakes_job_records r join pywps_requests p on p.uuid = r.uuid")}
    incomplete = [job for job, owner in job_owners.items()
                  if job not in rows or rows[job][0] != owner or not all(rows[job][1:])
                  or json.loads(rows[job][3]).get("method") != ["boxes"] or rows[job][6] not in (4, 5)]
    return {"jobs": len(job_owners), "complete": len(job_owners) - len(incomplete), "incomplete": incomplete[:5]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument("--submitters", type=int, default=10, help="of which submit split jobs (default 10)")
    parser.add_argument("--url", help="a running service's /wps URL (then --waterbodies and --boxes: file:// paths "
                                      "inside its allowedinputpaths)")
    parser.add_argument("--waterbodies")
    parser.add_argument("--boxes")
    parser.add_argument("--machine", default=f"{os.cpu_count()}-core {platform.machine()} host",
                        help="the machine, in words, recorded with the figures")
    args = parser.parse_args(argv)
    inputs = {"waterbodies": args.waterbodies, "boxes": args.boxes} if args.url else None
    date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result = {"machine": args.machine, "date": date,
              **run(args.duration, args.clients, args.submitters, url=args.url, inputs=inputs)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "load.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0 if not (result["server_errors"] or result["jobs"]["unfinished"]) else 1


if __name__ == "__main__":
    sys.exit(main())
