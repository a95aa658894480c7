"""The CWL application packages (cwl/): generated from the processes, valid, deployable, and run for real.

The agreement checks below read the committed files and compare them field by field with the PyWPS
definitions, the `wps-lakes` argument parser and the OGC API descriptions the service serves: they
do not reuse the generator's mapping code. The end-to-end test trains a checkpoint with train.cwl,
runs detect-split.cwl with `cwltool --no-container` and compares its outputs with a direct
`wps-lakes split --checkpoint` run on the same inputs.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from shapely.geometry import shape
from werkzeug.test import Client

from wps_lakes import cwl
from wps_lakes.__version__ import __version__
from wps_lakes.cli import build_parser
from wps_lakes.geodata import make_scene
from wps_lakes.processes import native_processes
from wps_lakes.wsgi import create_app

from .common import REPO, WPS_LAKES

CWL = REPO / "cwl"
BIN = Path(sys.executable).parent
CWLTOOL = str(BIN / "cwltool")
IANA = "https://www.iana.org/assignments/media-types/"
GEOTIFF_IRI = "http://www.opengis.net/def/media-type/ogc/1.0/geotiff"
TOOLS = ["train", "detect", "split"]
WORKFLOW = "detect-split"
LITERAL_TYPES = {"float": "float", "integer": "int", "boolean": "boolean", "string": "string"}


def load(name):
    return yaml.safe_load((CWL / name).read_text())


@pytest.fixture(scope="module")
def processes():
    return {p.identifier: p for p in native_processes()}


@pytest.fixture(scope="module")
def served():
    """The OGC API - Processes descriptions the service serves, by process id."""
    client = Client(create_app())
    documents = {}
    for name in TOOLS:
        response = client.get(f"/processes/{name}", headers={"Accept": "application/json"})
        assert response.status_code == 200
        documents[name] = json.loads(response.get_data())
    return documents


def media_type(fmt, namespaces):
    prefix, rest = fmt.split(":", 1)
    iri = namespaces[prefix] + rest
    if iri == GEOTIFF_IRI:
        return "image/tiff; subtype=geotiff"
    assert iri.startswith(IANA), iri
    return iri[len(IANA):]


def media_types(formats, namespaces):
    return {media_type(f, namespaces) for f in ([formats] if isinstance(formats, str) else formats)}


def typed(value, cwl_type):
    return {"int": int, "float": float, "boolean": lambda v: str(v).lower() in ("true", "1"), "string": str}[cwl_type](
        value)


def check_input(name, param, definition, namespaces):
    """One CWL input against its PyWPS definition: name, title, abstract, type, occurrences, default, formats."""
    where = f"{name}: input {definition.identifier}"
    assert param["label"] == definition.title and param["doc"] == definition.abstract, where
    kind = param["type"]
    optional = isinstance(kind, list) and "null" in kind
    if optional:
        kind = next(k for k in kind if k != "null")
    many = isinstance(kind, dict) and kind["type"] == "array"
    assert many == (definition.max_occurs > 1), where
    item = kind["items"] if many else kind
    default = getattr(definition, "_default", None)
    if definition.min_occurs >= 1:
        assert not optional and "default" not in param, where
    else:
        assert optional or "default" in param, where
    if type(definition).__name__ == "ComplexInput":
        assert item == "File", where
        assert media_types(param["format"], namespaces) == {f.mime_type for f in definition.supported_formats}, where
        return
    expected = LITERAL_TYPES[definition.data_type]
    if isinstance(item, dict):
        assert item["type"] == "enum" and expected == "string", where
        assert item["symbols"] == [str(v.value) for v in definition.allowed_values], where
    else:
        assert item == expected, where
    if default is None:
        assert "default" not in param, where
    else:
        assert param["default"] == typed(default, expected) and not optional, where


def options_of(command):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {option: action for action in sub._actions for option in action.option_strings}


def test_committed_files_are_the_generated_ones():
    assert cwl.stale() == [], "cwl/ is stale: run `make cwl`"
    expected = {f"{n}.cwl" for n in TOOLS + [WORKFLOW]} | {f"deploy/{n}.json" for n in TOOLS + [WORKFLOW]}
    assert expected | {f"packed/{WORKFLOW}.cwl"} == {str(p.relative_to(CWL)) for p in CWL.rglob("*") if p.is_file()}


@pytest.mark.parametrize("name", TOOLS)
def test_tool_agrees_with_the_process_and_the_command(name, processes):
    process, tool = processes[name], load(f"{name}.cwl")
    namespaces = tool["$namespaces"]
    assert (tool["class"], tool["id"], tool["label"], tool["doc"]) == (
        "CommandLineTool", name, process.title, process.abstract)
    assert tool["s:keywords"] == list(process.keywords) and tool["s:softwareVersion"] == __version__
    assert tool["hints"]["DockerRequirement"]["dockerPull"] == f"ghcr.io/wps-lakes/wps_lakes:{__version__}"
    assert ("cwltool:CUDARequirement" in tool["hints"]) == bool(process.uses_gpu)
    assert tool["baseCommand"] == ["wps-lakes", name]

    assert list(tool["inputs"]) == [i.identifier for i in process.inputs]
    options = options_of(name)
    expressions = " ".join(str(a.get("valueFrom", "")) for a in tool["arguments"])
    for definition in process.inputs:
        param = tool["inputs"][definition.identifier]
        check_input(name, param, definition, namespaces)
        kind = param["type"][-1] if isinstance(param["type"], list) else param["type"]
        binding = kind.get("inputBinding") if isinstance(kind, dict) and kind.get("type") == "array" else None
        prefix = (binding or param.get("inputBinding") or {}).get("prefix")
        if prefix is None:  # passed by an argument expression (train: config, checkpoint, resume)
            assert f"inputs.{definition.identifier}" in expressions, definition.identifier
            continue
        action = options[prefix]  # the command takes the option
        # an array needs an option the command takes repeatedly (raster and adjacent_raster share --raster)
        assert binding is None or type(action).__name__ == "_AppendAction", prefix
        if "default" in param and action.default is not None:
            assert param["default"] == action.default, (prefix, action.default)

    assert list(tool["outputs"]) == [o.identifier for o in process.outputs]
    for definition in process.outputs:
        out = tool["outputs"][definition.identifier]
        assert out["label"] == definition.title and out["doc"] == definition.abstract
        assert media_types(out["format"], namespaces) == {f.mime_type for f in definition.supported_formats}
        assert out["outputBinding"]["glob"]


def test_workflow_agrees_with_its_steps(processes):
    flow = load(f"{WORKFLOW}.cwl")
    assert flow["class"] == "Workflow" and flow["id"] == WORKFLOW and flow["label"] and flow["doc"]
    sources = {"vector": "split", "method": "split"}
    for key, param in flow["inputs"].items():
        process = processes[sources.get(key, "detect")]
        check_input(WORKFLOW, param, next(i for i in process.inputs if i.identifier == key), flow["$namespaces"])
    for step, spec in flow["steps"].items():
        tool = load(spec["run"])
        assert tool["id"] == step
        assert set(spec["in"]) <= set(tool["inputs"]) and set(spec["out"]) <= set(tool["outputs"])
        for source in spec["in"].values():
            assert source in flow["inputs"] or source.split("/")[1] in flow["steps"][source.split("/")[0]]["out"]
    for out in flow["outputs"].values():
        step, output = out["outputSource"].split("/")
        definition = next(o for o in processes[step].outputs if o.identifier == output)
        assert output in flow["steps"][step]["out"] and out["label"] == definition.title


def test_deploy_bodies_carry_the_cwl_and_the_served_description(served):
    from ogc_api_processes_client.models.process import Process

    for name in TOOLS + [WORKFLOW]:
        body = json.loads((CWL / "deploy" / f"{name}.json").read_text())
        assert set(body) == {"processDescription", "executionUnit", "deploymentProfileName"}
        [unit] = body["executionUnit"]
        assert unit["type"] == "application/cwl+json" and unit["unit"] == load(f"{name}.cwl")  # not written twice
        description = body["processDescription"]["process"]
        Process.from_dict(description)  # the OGC API - Processes Part 1 process schema (pydantic)
        assert description["id"] == name
        if name == WORKFLOW:
            assert body["deploymentProfileName"].endswith("/eoc/workflow")
            assert description["title"] == unit["unit"]["label"] and description["description"] == unit["unit"]["doc"]
            assert set(description["inputs"]) == set(unit["unit"]["inputs"])
            for key, value in description["inputs"].items():
                source = served["split" if key in ("vector", "method") else "detect"]
                assert value == source["inputs"][key]
        else:
            assert body["deploymentProfileName"].endswith("/eoc/dockerizedApplication")
            expected = {k: v for k, v in served[name].items() if k != "links"}
            assert description == expected


def run(*args, timeout=300, **kwargs):
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, env=env, **kwargs)


@pytest.mark.parametrize("name", [f"{n}.cwl" for n in TOOLS + [WORKFLOW]] + [f"packed/{WORKFLOW}.cwl"])
def test_cwltool_validates(name):
    done = run(CWLTOOL, "--validate", CWL / name)
    assert done.returncode == 0 and "is valid CWL" in done.stdout, done.stdout + done.stderr
    if name in ("train.cwl", "detect.cwl"):  # the CUDA hint, checked against cwltool's extension schema
        strict = run(CWLTOOL, "--enable-ext", "--validate", CWL / name)
        assert strict.returncode == 0 and "Warning" not in strict.stderr, strict.stderr


def test_ogc_ap_validator_on_the_packed_application_package():
    """The OGC EO Application Package checks (ogc-ap-validator) on the $graph document: no error.

    It applies to a $graph with a Workflow entry point; a lone CommandLineTool fails its req-7 by
    design, and its Directory hints (req-12..14) concern EO products staged as STAC folders, which
    these tools do not take. Version 0.5.0 crashes in its req-12 hint check on an optional array
    input (split's raster), so when check_all fails that way, the other checks are run one by one.
    """
    from ap_validator.app_package import AppPackage

    package = AppPackage.from_url(str(CWL / "packed" / f"{WORKFLOW}.cwl"))
    try:
        result = package.check_all(include=["error", "hint", "note"])
        issues, valid = result["issues"], result["valid"]
    except AttributeError as exc:
        assert "'list' object has no attribute 'items'" in str(exc)
        code, out, err = package.validate_cwl()
        assert code == 0, out + err
        issues = [issue for check in (package.check_req_7, package.check_req_8, package.check_req_9,
                                      package.check_req_10, package.check_req_11, package.check_req_13,
                                      package.check_req_14, package.check_unsupported_cwl) for issue in check()]
        valid = not [i for i in issues if i["type"] == "error"]
    assert valid, issues
    assert {i["req"] for i in issues if i["type"] == "hint"} <= {"req-12", "req-13", "req-14"}


def job_file(path, **inputs):
    """A cwltool job: File inputs as (path, media type) pairs, lists of them, or plain values."""
    def value(item):
        if isinstance(item, tuple):
            return {"class": "File", "path": str(item[0]), "format": IANA + item[1]}
        return [value(i) for i in item] if isinstance(item, list) else item

    path.write_text(json.dumps({key: value(item) for key, item in inputs.items()}, indent=2))
    return path


def cwltool_run(tmp_path, tool, job, name):
    """`cwltool --no-container` on ``tool``; its output object."""
    done = run(CWLTOOL, "--no-container", "--no-compute-checksum", "--tmpdir-prefix", tmp_path / "cwltool-tmp-",
               "--tmp-outdir-prefix", tmp_path / "cwltool-out-", "--outdir", tmp_path / name, tool, job, timeout=500)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def runnable(tmp_path_factory):
    """The committed CWL files without the CUDA hint: cwltool refuses it (even as a hint) where
    nvidia-smi shows no GPU. Nothing else differs, and that is what `--no-cuda` writes."""
    folder = tmp_path_factory.mktemp("cwl")
    cpu_variants = cwl.generate(cuda=False)
    for name in TOOLS + [WORKFLOW]:
        document = load(f"{name}.cwl")
        hint = document.get("hints", {}).pop("cwltool:CUDARequirement", None)
        assert (hint is not None) == (name in ("train", "detect"))
        assert document == yaml.safe_load(cpu_variants[f"{name}.cwl"])
        (folder / f"{name}.cwl").write_text(yaml.safe_dump(document, sort_keys=False))
    return folder


def test_train_refuses_resume_without_a_checkpoint(runnable, tmp_path):
    scene = {"dem": tmp_path / "dem.tif", "hydro": tmp_path / "hydro.geojson"}
    for path in scene.values():
        path.write_bytes(b"\0")
    job = job_file(tmp_path / "job.json", raster=(scene["dem"], "image/tiff"),
                   vector=(scene["hydro"], "application/geo+json"), resume=True)
    done = run(CWLTOOL, "--no-container", runnable / "train.cwl", job)
    assert done.returncode != 0 and "resume=true needs a checkpoint input to resume from" in done.stderr


def features(path):
    return json.loads(Path(path).read_text())["features"]


def test_detect_split_workflow_matches_a_direct_split(runnable, tmp_path):
    scene = make_scene(tmp_path / "scene", seed=3, size_m=1500)
    # The lightest real training: the CPU model, 2 iterations of one epoch; the scene is used for
    # both training and validation (the tool's raster and vector replace every dataset's paths).
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "name": "tiny",
        "datasets": {name: {"params": {"raster_path": "dem.tif", "vector_path": "hydro.geojson"}}
                     for name in ("train_scene", "valid_scene")},
        "loaders": {"batch_size": 2, "train_split": {"train_scene": 1}, "valid_split": {"valid_scene": 1}},
        "model": {"type": "fcos_mobilenet_v3_large_fpn", "params": {"image_scale": 0.5}},
        "trainer": {"max_iters_per_epoch": 2, "warmup_iters": 0, "threads": 1}}))
    trained = cwltool_run(tmp_path, runnable / "train.cwl", job_file(
        tmp_path / "train.json", config=(config, "application/json"), raster=(scene["dem"], "image/tiff"),
        vector=(scene["hydro"], "application/geo+json"), epochs=1, device="cpu"), "trained")
    assert trained["best_checkpoint"]["basename"] == "ckpt.best.pth"
    assert trained["latest_checkpoint"]["basename"].startswith("ckpt.0000.")
    assert len(Path(trained["metrics"]["path"]).read_text().splitlines()) == 1  # one epoch
    checkpoint = trained["best_checkpoint"]["path"]

    # score_threshold 0: every box the barely trained model gives; the boxes method cuts the
    # waterbodies along them, so the split depends on the detections that went from step to step.
    flow = cwltool_run(tmp_path, runnable / f"{WORKFLOW}.cwl", job_file(
        tmp_path / "flow.json", checkpoint=(checkpoint, "application/octet-stream"),
        raster=(scene["dem"], "image/tiff"), vector=(scene["waterbodies"], "application/geo+json"),
        score_threshold=0.0, method="boxes"), "flow")
    direct = tmp_path / "direct"
    done = run(WPS_LAKES, "split", "--vector", scene["waterbodies"], "--checkpoint", checkpoint,
               "--raster", scene["dem"], "--score-threshold", "0", "--method", "boxes", "-o", direct)
    assert done.returncode == 0, done.stderr

    assert Path(flow["quicklook"]["path"]).read_bytes()[:4] == b"\x89PNG"
    assert flow["output"]["basename"] == "hydro.geojson"
    for name in ("detections", "lakes", "rivers", "hydro"):
        ours, theirs = features(flow[name]["path"]), features(direct / f"{name}.geojson")
        assert ours and len(ours) == len(theirs), name
        for a, b in zip(ours, theirs, strict=True):
            assert a["properties"] == b["properties"], name
            assert shape(a["geometry"]).equals_exact(shape(b["geometry"]), 1e-9), name
    assert {f["properties"]["TYPECE"] for f in features(flow["lakes"]["path"])} == {"21"}
    assert {f["properties"]["TYPECE"] for f in features(flow["rivers"]["path"])} == {"10"}
