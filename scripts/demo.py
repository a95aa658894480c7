"""`make demo`: a synthetic scene -> detect and split with the bundled pretrained model -> a short
fine-tune of it (partial checkpoints listed as they come), against the service `make start` started,
as it is. A checkout without the bundled model trains a small detector first instead.

Talks to $WPS_SERVICE (default http://localhost:5000/wps) with birdy's WPSClient. The scene is written
into the service's inbox ($WPS_LAKES_HOME/inbox, the default [server] allowedinputpaths), so birdy
passes the files as file:// references and the service reads them in place; $WPS_LAKES_INBOX names
another folder the service allows. While a job runs, its page (/jobs/<id>?f=html) shows its progress,
quicklooks, curves and checkpoints.
"""
import importlib.util
import json
import os
import shutil
import sys
import time
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import urlopen

from birdy import WPSClient
from owslib.util import ServiceException

from wps_lakes.geodata import make_scene

URL = os.environ.get("WPS_SERVICE", "http://localhost:5000/wps")
ROOT = URL.rsplit("/", 1)[0]
FINE_TUNE_EPOCHS = int(os.environ.get("WPS_LAKES_DEMO_EPOCHS", "6"))


def inbox():
    """The started service's inbox: $WPS_LAKES_INBOX, else the first of its allowedinputpaths."""
    if os.environ.get("WPS_LAKES_INBOX"):
        return Path(os.environ["WPS_LAKES_INBOX"])
    from wps_lakes.cli import started_inbox

    folder = started_inbox()
    if folder is None:
        sys.exit("The started service accepts no file:// references ([server] allowedinputpaths is empty); "
                 "set it, or run the demo against a service started with `make start` as it comes.")
    return folder


def bundled_checkpoint():
    """The pretrained detector shipped with the package (wps_lakes/detector/pretrained/), or None."""
    spec = importlib.util.find_spec("wps_lakes")
    folder = Path(spec.origin).parent / "detector" / "pretrained" if spec and spec.origin else None
    found = sorted(folder.glob("*.pth")) if folder and folder.is_dir() else []
    return found[0] if found else None


def count_features(url):
    """Features of a GeoJSON output of the service."""
    with urlopen(url, timeout=60) as response:
        return len(json.load(response).get("features") or [])


def job_page(execution):
    """The HTML page of a job, from its status location (<outputurl>/<job id>.xml)."""
    location = getattr(execution, "statusLocation", None) or ""
    job_id = Path(urlparse(location).path).stem
    return f"{ROOT}/jobs/{job_id}?f=html" if job_id else f"{ROOT}/jobs?f=html"


def run_async(client, process, say, **inputs):
    """Start a job asynchronously, print its page, wait for it and return its output references."""
    job = getattr(client, process)(**inputs)
    say(f"   job page: {job_page(job)}")
    last, partial = None, set()
    while not job.isComplete():
        job.checkStatus(sleepSecs=2)
        if (job.percentCompleted, job.statusMessage) != last:
            last = (job.percentCompleted, job.statusMessage)
            say(f"   {job.percentCompleted:3}% {job.statusMessage or ''}")
        if not job.isComplete():  # train lists its checkpoints so far while it runs
            for output in job.processOutputs:
                if output.reference and output.reference not in partial:
                    partial.add(output.reference)
                    say(f"   partial result {output.identifier}: {output.reference}")
    if not job.isSucceded():
        messages = "; ".join(str(e.text) for e in job.errors) or job.statusMessage
        sys.exit(f"{process} failed: {messages}")
    return job.get(asobj=False)._asdict()


def main():
    started = time.monotonic()
    try:
        client = WPSClient(URL, progress=False)
        client._mode = "async"  # each job runs asynchronously and gets a page to watch; we poll here
    except Exception as exc:  # noqa: BLE001 - any connection problem gets the same advice
        sys.exit(f"No service answers at {URL} ({exc}). Start it with `make start`.")
    folder = inbox() / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True, exist_ok=True)
    scene = make_scene(folder, seed=11, size_m=2400)

    def say(text):
        print(f"[{time.monotonic() - started:5.0f} s] {text}", flush=True)

    say(f"1. synthetic scene in the service's inbox {folder}: dem.tif, hydro.geojson, waterbodies.geojson")
    say(f"   all jobs: {ROOT}/jobs?f=html")
    try:
        results = run(client, folder, scene, say)
    except ServiceException as exc:
        sys.exit(f"The service refused the demo's request: {exc}")
    print("\nResults")
    for label, refs in results:
        for name, ref in refs.items():
            if name != "output":
                print(f"  {label:10} {name:18} {ref}")
    say("done")


def run(client, folder, scene, say):
    results = []
    model = bundled_checkpoint()
    dem, hydro, water = str(scene["dem"]), str(scene["hydro"]), str(scene["waterbodies"])
    if model is None:
        say("2. no bundled pretrained detector in this checkout: training a small one first (8 epochs)")
        trained = run_async(client, "train", say, raster=dem, vector=hydro, epochs=8, device="auto")
        results.append(("train", trained))
        checkpoint, threshold = trained["best_checkpoint"], {"score_threshold": 0.3}
        say(f"   best checkpoint: {checkpoint}")
    else:
        shutil.copy(model, folder / "pretrained.pth")  # given by file:// like the scene
        checkpoint, threshold = str(folder / "pretrained.pth"), {}
        say(f"2. the bundled pretrained detector ({model.name}) detects and splits")
    say("   detecting lakes")
    detected = run_async(client, "detect", say, checkpoint=checkpoint, raster=dem, vector=water, **threshold)
    results.append(("detect", detected))
    say(f"   {count_features(detected['detections'])} lake(s) detected; quicklook: {detected['quicklook']}")
    say("   splitting the waterbodies into lakes and rivers with these detections")
    split = run_async(client, "split", say, vector=water, detections=detected["detections"], raster=dem,
                      method="refined")
    results.append(("split", split))
    say(f"   {count_features(split['lakes'])} lake part(s), {count_features(split['rivers'])} river part(s); "
        f"quicklook: {split['quicklook']}")
    if model is not None:
        say(f"3. fine-tuning it on this scene for {FINE_TUNE_EPOCHS} epochs (train starts from the bundled model); "
            "its page shows each checkpoint and the curves as they come")
        trained = run_async(client, "train", say, raster=dem, vector=hydro, epochs=FINE_TUNE_EPOCHS, device="auto")
        results.append(("fine-tune", trained))
    return results


if __name__ == "__main__":
    main()
