"""train, detect and split over HTTP with the real clients: OWSLib 0.35 and birdy 0.10."""
import io
import json
import os
import shutil
import subprocess
import time

import pytest
import requests
import torch
from owslib.wps import SYNC, ComplexDataInput, WebProcessingService

from wps_lakes.geodata import make_scene, read_vector, write_geojson
from wps_lakes.hydro import truth_lake_boxes

from ..common import WPS_LAKES

PROCESSES = ("train", "detect", "split")


@pytest.fixture(scope="module")
def scene(live_server):
    """A small synthetic scene in the server's allowed input folder, with true lake boxes."""
    folder = live_server.inputs / "scene"
    paths = make_scene(folder, seed=7, size_m=1500)
    write_geojson(truth_lake_boxes(read_vector(paths["hydro"])), folder / "true_boxes.geojson")
    paths["true_boxes"] = folder / "true_boxes.geojson"
    return {name: str(path) for name, path in paths.items()}


@pytest.fixture(scope="module")
def wps(live_server):
    return WebProcessingService(live_server.url, version="1.0.0")


def file_ref(path):
    return ComplexDataInput(f"file://{path}")


def run_to_end(execution, timeout=600):
    """Poll an OWSLib execution until it ends; return the documents seen (for their states)."""
    seen = []
    deadline = time.monotonic() + timeout
    while not execution.isComplete():
        assert time.monotonic() < deadline, f"job did not end: {execution.statusMessage}"
        execution.checkStatus(sleepSecs=1)
        seen.append((execution.status, execution.percentCompleted, execution.statusMessage))
    return seen


def is_failed(execution):
    # OWSLib reports a ProcessFailed document carrying an ExceptionReport as status "Exception".
    return execution.status in ("ProcessFailed", "Exception") and execution.errors


def download(url):
    response = requests.get(url, timeout=60)
    assert response.status_code == 200, url
    return response.content


def test_describe_processes(wps):
    for identifier in PROCESSES:
        process = wps.describeprocess(identifier)
        assert process.title and process.abstract
        inputs = {i.identifier: i for i in process.dataInputs}
        outputs = {o.identifier for o in process.processOutputs}
        assert "output" in outputs  # Phoenix convention
        for inp in inputs.values():
            assert inp.title and inp.abstract, (identifier, inp.identifier)
            assert "-" not in inp.identifier  # birdy ignores hyphenated names
        if "raster" in inputs:
            mimetypes = {f.mimeType for f in inputs["raster"].supportedValues}
            assert {"image/tiff; subtype=geotiff", "image/tiff"} <= mimetypes
            assert inputs["raster"].maxOccurs == 1 and inputs["adjacent_raster"].maxOccurs == 19
        if "checkpoint" in inputs:
            assert inputs["checkpoint"].supportedValues[0].mimeType == "application/octet-stream"
    split = {i.identifier: i for i in wps.describeprocess("split").dataInputs}
    assert split["method"].defaultValue == "refined" and set(split["method"].allowedValues) == {"refined", "boxes"}
    train = {i.identifier: i for i in wps.describeprocess("train").dataInputs}
    assert {"config", "raster", "vector", "checkpoint", "model", "epochs", "batch_size", "learning_rate",
            "device"} <= set(train)
    detect = {i.identifier: i for i in wps.describeprocess("detect").dataInputs}
    assert {"checkpoint", "raster", "vector", "score_threshold", "tile_size", "tile_overlap", "crs"} <= set(detect)


def test_split_async_owslib(wps, scene):
    execution = wps.execute(
        "split",
        [("vector", file_ref(scene["waterbodies"])), ("detections", file_ref(scene["true_boxes"])),
         ("raster", file_ref(scene["dem"])), ("method", "refined")],
        output=[("hydro", True), ("lakes", True), ("rivers", True), ("quicklook", True)])
    assert execution.statusLocation
    run_to_end(execution)
    assert execution.isSucceded(), execution.errors
    outputs = {o.identifier: o for o in execution.processOutputs}
    assert set(outputs) == {"lakes", "rivers", "hydro", "quicklook"}  # the ResponseDocument's, no more
    hydro = json.loads(download(outputs["hydro"].reference))
    assert hydro["type"] == "FeatureCollection" and "crs" not in hydro
    types = {f["properties"]["TYPECE"] for f in hydro["features"]}
    assert types == {"10", "21"}
    assert all("id" in f["properties"] for f in hydro["features"])  # waterbody properties kept
    lakes = json.loads(download(outputs["lakes"].reference))
    assert lakes["features"] and {f["properties"]["TYPECE"] for f in lakes["features"]} == {"21"}
    assert download(outputs["quicklook"].reference)[:8] == b"\x89PNG\r\n\x1a\n"


def test_split_sync_inline_vector(wps, scene):
    """Inline GeoJSON input, synchronous request, result inline in the response."""
    with open(scene["waterbodies"]) as handle:
        waterbodies = handle.read()
    execution = wps.execute(
        "split", [("vector", ComplexDataInput(waterbodies, mimeType="application/geo+json")),
                  ("detections", file_ref(scene["true_boxes"])), ("method", "boxes")],
        output=[("lakes", False)], mode=SYNC)
    assert execution.isSucceded(), execution.errors
    lakes = {o.identifier: o for o in execution.processOutputs}["lakes"]
    collection = json.loads(lakes.data[0])
    assert collection["type"] == "FeatureCollection" and collection["features"]


def test_split_without_detections_uses_the_dem(wps, scene):
    """No boxes at all: the refined split still finds the hydro-flattened lakes."""
    execution = wps.execute("split", [("vector", file_ref(scene["waterbodies"])), ("raster", file_ref(scene["dem"]))],
                            output=[("lakes", True)])
    run_to_end(execution)
    assert execution.isSucceded(), execution.errors
    lakes = json.loads(download({o.identifier: o for o in execution.processOutputs}["lakes"].reference))
    assert lakes["features"]


def test_split_failure_message_is_for_the_user(wps, scene):
    execution = wps.execute("split", [("vector", file_ref(scene["waterbodies"])),
                                      ("detections", file_ref(scene["true_boxes"])),
                                      ("checkpoint", file_ref(scene["true_boxes"]))], output=[("hydro", True)])
    run_to_end(execution)
    assert is_failed(execution)
    message = execution.errors[0].text
    assert "detections" in message and "checkpoint" in message
    assert "server error log" not in message and "/" + "tmp" not in message


def test_train_partial_checkpoint_feeds_detect(wps, scene, live_server):
    """A checkpoint listed in a ProcessStarted document runs detect while training goes on."""
    train = wps.execute(
        "train", [("raster", file_ref(scene["dem"])), ("vector", file_ref(scene["hydro"])), ("epochs", "6"),
                  ("model", "fasterrcnn_mobilenet_v3_large_320_fpn"), ("device", "cpu")],
        output=[("best_checkpoint", True), ("latest_checkpoint", True), ("metrics", True), ("curves", True),
                ("log", True)])
    partial = None
    messages = []
    deadline = time.monotonic() + 600
    while partial is None:
        assert time.monotonic() < deadline, "no checkpoint was published while training ran"
        train.checkStatus(sleepSecs=1)
        assert not train.isComplete() or train.isSucceded(), train.errors
        messages.append(train.statusMessage)
        if train.status == "ProcessStarted":
            listed = {o.identifier: o.reference for o in train.processOutputs}
            partial = listed.get("latest_checkpoint")
    assert train.status == "ProcessStarted" and 0 < train.percentCompleted < 100
    assert any("epoch" in (m or "").lower() for m in messages)

    detect = wps.execute(
        "detect", [("checkpoint", ComplexDataInput(partial)), ("raster", file_ref(scene["dem"])),
                   ("vector", file_ref(scene["waterbodies"])), ("score_threshold", "0.05"), ("crs", "EPSG:2959")],
        output=[("detections", True), ("quicklook", True)])
    run_to_end(detect)
    assert detect.isSucceded(), detect.errors
    detections = json.loads(download({o.identifier: o for o in detect.processOutputs}["detections"].reference))
    assert detections["type"] == "FeatureCollection"
    assert detections["crs"]["properties"]["name"].endswith("2959")
    for feature in detections["features"]:
        assert {"confidence", "tile", "id"} <= set(feature["properties"])

    seen = run_to_end(train)
    assert train.isSucceded(), train.errors
    assert train.statusMessage.startswith("Training done: 6 epoch(s), best mAP"), train.statusMessage
    assert any(status == "ProcessStarted" for status, _, _ in seen)
    outputs = {o.identifier: o.reference for o in train.processOutputs}
    assert set(outputs) == {"best_checkpoint", "latest_checkpoint", "metrics", "curves", "log"}  # those asked for
    checkpoint_file = live_server.home / "best.pth"
    checkpoint_file.write_bytes(download(outputs["best_checkpoint"]))
    checkpoint = torch.load(checkpoint_file, weights_only=True)
    records = [json.loads(line) for line in download(outputs["metrics"]).decode().splitlines()]
    assert [r["epoch"] for r in records] == list(range(6))
    assert "model" in checkpoint and checkpoint["monitor_best_epoch"] in range(6)
    assert checkpoint["monitor_best"] == pytest.approx(max(r["mAP"] for r in records))
    assert download(outputs["curves"])[:8] == b"\x89PNG\r\n\x1a\n"
    assert download(outputs["log"])


def test_train_without_async_flags_is_accepted(wps, scene, live_server):
    """birdy's CLI sends no async flags: train still answers ProcessAccepted with a status location."""
    execution = wps.execute("train", [("raster", file_ref(scene["dem"])), ("vector", file_ref(scene["hydro"])),
                                      ("epochs", "1")], mode=SYNC)
    assert execution.status in ("ProcessAccepted", "ProcessStarted")
    assert execution.statusLocation
    job_id = execution.statusLocation.rsplit("/", 1)[1].removesuffix(".xml")
    env = dict(live_server.env)
    out = subprocess.run([WPS_LAKES, "jobs", "dismiss", job_id, "-c", str(live_server.cfg)], env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0 and "dismissed" in out.stdout
    execution.checkStatus(sleepSecs=0)
    assert is_failed(execution) and "Dismissed" in execution.errors[0].text


def run_birdy(live_server, *args):
    """The birdy CLI (async execution with status polling, as users run it)."""
    env = dict(os.environ, WPS_SERVICE=live_server.url)
    birdy = shutil.which("birdy", path=os.path.dirname(WPS_LAKES))
    out = subprocess.run([birdy, *args], env=env, capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_birdy_cli_split(live_server, scene):
    stdout = run_birdy(live_server, "split", "--vector", f"file://{scene['waterbodies']}", "--detections",
                       f"file://{scene['true_boxes']}", "--method", "boxes",
                       "--output_formats", "hydro", "true", "None")
    assert "hydro" in stdout and "http" in stdout


def test_birdy_cli_train(live_server, scene):
    stdout = run_birdy(live_server, "train", "--raster", f"file://{scene['dem']}", "--vector", f"file://{scene['hydro']}",
                       "--epochs", "1", "--device", "cpu")
    outputs = dict(line.split("=", 1) for line in stdout.splitlines() if "=http" in line)  # name=reference
    # birdy names every output in its ResponseDocument (with --output_formats, only those: WPS 1.0.0)
    assert {"best_checkpoint", "latest_checkpoint", "metrics", "curves", "log", "output"} <= set(outputs), stdout
    assert torch.load(io.BytesIO(download(outputs["best_checkpoint"])), weights_only=True)["epoch"] == 0


def test_birdy_client_local_files(live_server, scene):
    from birdy import WPSClient

    client = WPSClient(live_server.url, progress=True)
    result = client.split(vector=scene["waterbodies"], detections=scene["true_boxes"], method="refined")
    lakes, rivers, hydro, quicklook, output = result.get(asobj=False)
    assert all(isinstance(ref, str) and ref.startswith("http") for ref in (lakes, rivers, hydro, quicklook))
    assert json.loads(download(hydro))["features"]


def test_birdy_cli_repeated_input_gets_a_clear_message(live_server, scene):
    # birdy 0.10's command line sends an input that may occur more than once as the text of a tuple
    stdout = run_birdy(live_server, "split", "--vector", f"file://{scene['waterbodies']}",
                       "--detections", f"file://{scene['true_boxes']}", "--adjacent_raster", f"file://{scene['dem']}")
    assert "Process execution failed" in stdout  # birdy prints no message: the job's status has it
    execution = WebProcessingService(live_server.url, version="1.0.0").execute(
        "split", [("vector", file_ref(scene["waterbodies"])),
                  ("adjacent_raster", ComplexDataInput(str((file_ref(scene["dem"]),)), mimeType="image/tiff"))])
    run_to_end(execution)
    assert is_failed(execution) and "use birdy.WPSClient or OWSLib" in execution.errors[0].text
