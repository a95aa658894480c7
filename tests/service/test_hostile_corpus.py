"""The corpus of hostile and malformed inputs, sent to the live gunicorn service with real HTTP.

Every case is answered with an OWS ExceptionReport (WPS 1.0.0 and 2.0.0), an RFC 7807 problem (OGC
API - Processes) or a ProcessFailed status, with a message that says what to change, and with no
traceback, internal folder or secret in it. After the corpus the server is still healthy (it runs a
real split job), the SSRF targets on loopback were never contacted, no payload ran, and nothing was
written outside the jobs' own folders.

Request-level cases are refused by the web server; job-level cases (the last group) are accepted and
end as ProcessFailed: they are all submitted at once, asynchronously, and then awaited.
"""
import gzip
import hashlib
import json
import os
import pickle
import re
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import pytest
import rasterio
import requests
from lxml import etree

from wps_lakes.geodata import LAKE, make_scene, read_vector, write_geojson

from ..common import REPO, LiveServer
from .test_hostile_references import LoopbackServer

TOKEN = "corpus-secret-" + uuid.uuid4().hex
MARKER = Path("/tmp") / f"wps-lakes-corpus-pwned-{uuid.uuid4().hex}"
OWS11 = "http://www.opengis.net/ows/1.1"
OWS20 = "http://www.opengis.net/ows/2.0"
WPS1 = "http://www.opengis.net/wps/1.0.0"
WPS1_NS = (f'xmlns:wps="{WPS1}" xmlns:ows="{OWS11}" xmlns:xlink="http://www.w3.org/1999/xlink"')
WPS2_NS = ('xmlns:wps="http://www.opengis.net/wps/2.0" xmlns:ows="http://www.opengis.net/ows/2.0" '
           'xmlns:xlink="http://www.w3.org/1999/xlink"')
GEOJSON = "application/geo+json"
SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
LIMITS = {"max_epochs": "5", "max_download_bytes": "200000", "max_tiles": "3", "max_raster_pixels": "1000000",
          "max_vector_features": "1000"}


# ---------------------------------------------------------------------------------------------
# the service, its SSRF targets and the hostile files


@pytest.fixture(scope="module")
def listener():
    """A loopback server standing for everything a reference must never reach: it should get no request."""
    with LoopbackServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def files():
    """An allowed loopback file server (listed in [references] allowed_hosts) with hostile answers."""
    routes = {
        "/big.geojson": (200, {}, b"[" * 300_000),
        "/bomb.geojson": (200, {"Content-Encoding": "gzip"}, gzip.compress(b" " * (32 << 20), 9)),
        "/to-metadata.geojson": (302, {"Location": "http://169.254.169.254/latest/meta-data/iam/"}, b""),
    }
    with LoopbackServer(routes) as srv:
        yield srv


@pytest.fixture(scope="module")
def server(tmp_path_factory, files):
    home = tmp_path_factory.mktemp("corpus-server")
    srv = LiveServer(home, extra_cfg={
        "server": {"maxrequestsize": "1mb", "parallelprocesses": "2", "maxprocesses": "60"},
        "limits": LIMITS,
        "references": {"allowed_hosts": f"127.0.0.1:{files.port}"},
        "esgf": {"tokens": TOKEN}}).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def paths(server):
    """The scene and the hostile files, in the server's allowed input folder."""
    scene = make_scene(server.inputs / "scene", seed=7, size_m=1500)
    hostile = server.inputs / "hostile"
    hostile.mkdir()
    out = {name: str(path) for name, path in scene.items()}
    hydro = read_vector(scene["hydro"])
    lakes = hydro[hydro["TYPECE"] == LAKE]
    boxes = lakes.envelope
    write_geojson(boxes.to_frame("geometry").assign(confidence=1.0), hostile / "boxes.geojson")
    write_geojson(boxes.translate(200_000, 0).to_frame("geometry").assign(confidence=1.0),
                  hostile / "boxes_elsewhere.geojson")
    out["boxes"] = str(hostile / "boxes.geojson")
    out["boxes_elsewhere"] = str(hostile / "boxes_elsewhere.geojson")

    dem = Path(scene["dem"]).read_bytes()
    write = {
        "truncated.tif": dem[:len(dem) // 3],
        "png.tif": b"\x89PNG\r\n\x1a\n" + bytes(200),
        "text.tif": b"elevation: 42 m\n",
        "invalid.geojson": b'{"type": "FeatureCollection", "features": [{"type": "Feature", ',
        "not_fc.geojson": b'{"type": "Polygon", "coordinates": [[[-75, 45], [-74.9, 45], [-74.9, 45.1], [-75, 45]]]}',
        "self_intersecting.geojson": json.dumps({"type": "FeatureCollection", "features": [{
            "type": "Feature", "properties": {"OBJECTID": 7}, "geometry": {"type": "Polygon", "coordinates": [
                [[-75, 45], [-74.99, 45.01], [-75, 45], [-74.99, 45.01], [-75, 45]]]}}]}).encode(),
        "empty.geojson": b'{"type": "FeatureCollection", "features": []}',
        "points.geojson": json.dumps({"type": "FeatureCollection", "features": [{
            "type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [-75, 45]}}]}).encode(),
        "nested.geojson": b'{"type": "FeatureCollection", "features": ' + b"[" * 200_000,
        "not_json.geojson": b"\xff\xfe\x00garbage",
        "notes.pth": b"not a checkpoint at all",
        "config_not_json.json": b"name: lakes\nmodel: os.system\n",
    }
    for name, data in write.items():
        (hostile / name).write_bytes(data)
    # 10 million vertices (60 MB): refused by max_vector_vertices before the file is parsed
    with open(hostile / "ten_million.geojson", "wb") as handle:
        handle.write(b'{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, '
                     b'"geometry": {"type": "Polygon", "coordinates": [[')
        handle.write(b"[-75,45]," * 10_000_000)
        handle.write(b"[-75,45]]]}}]}")
    features = [{"type": "Feature", "properties": {"OBJECTID": i},
                 "geometry": {"type": "Polygon", "coordinates": [[[-75 + i * 1e-4, 45], [-75 + i * 1e-4, 45.0001],
                                                                  [-74.99995 + i * 1e-4, 45], [-75 + i * 1e-4, 45]]]}}
                for i in range(1001)]
    (hostile / "many_features.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    with rasterio.open(scene["dem"]) as src:
        profile, values, transform = src.profile, src.read(1), src.transform
    with rasterio.open(hostile / "no_crs.tif", "w", **{**profile, "crs": None}) as dst:
        dst.write(values, 1)
    nan_profile = {**profile, "dtype": "float32", "nodata": float("nan")}
    with rasterio.open(hostile / "nan.tif", "w", **nan_profile) as dst:
        dst.write(np.full(values.shape, np.nan, dtype="float32"), 1)
    far = rasterio.Affine(transform.a, 0, transform.c + 300_000, 0, transform.e, transform.f)
    with rasterio.open(hostile / "elsewhere.tif", "w", **{**profile, "transform": far}) as dst:
        dst.write(values, 1)
    with rasterio.open(hostile / "too_large.tif", "w", driver="GTiff", width=1200, height=1200, count=1,
                       dtype="float32", crs=profile["crs"], transform=transform, tiled=True, compress="deflate") as dst:
        dst.write(np.ones((1, 1200, 1200), dtype="float32"))
    os.symlink("/etc/passwd", hostile / "passwd.geojson")
    sibling = Path(str(server.inputs) + "-evil")
    sibling.mkdir()
    (sibling / "x.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    out["sibling"] = str(sibling / "x.geojson")
    out.update({p.stem if p.suffix != ".tif" else p.stem + "_tif": str(p) for p in hostile.iterdir()})
    out.update(checkpoints(hostile))
    return out


def checkpoints(folder):
    """A real (untrained) checkpoint of the lightest model, and two that would run code when unpickled."""
    import torch

    from wps_lakes.detector.checkpoints import save_checkpoint
    from wps_lakes.detector.zoo import build_model, qualified_name

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {MARKER}",)

    torch.manual_seed(0)
    params = {"image_scale": 0.5}
    model = build_model("fcos_mobilenet_v3_large_fpn", params)
    fresh = save_checkpoint(folder / "fresh.pth", {
        "name": "fresh", "epoch": 0, "iter": 0, "model": model.state_dict(),
        "model_type": qualified_name("fcos_mobilenet_v3_large_fpn"), "model_params": params,
        "input": {"scaling": "minmax", "px_size": 3.0, "srs": "EPSG:2959"}})
    torch.save({"model": Payload()}, folder / "pickle_bomb.pth")
    (folder / "legacy_pickle_bomb.pth").write_bytes(pickle.dumps({"model": Payload()}, protocol=2))
    return {"fresh": str(fresh), "pickle_bomb": str(folder / "pickle_bomb.pth"),
            "legacy_pickle_bomb": str(folder / "legacy_pickle_bomb.pth")}


# ---------------------------------------------------------------------------------------------
# what the test checks in every answer


def snapshot(root):
    """{relative path: (size, sha256)} of the files under ``root`` (links by their target text)."""
    out = {}
    for path in Path(root).rglob("*"):
        if path.is_symlink():
            out[str(path.relative_to(root))] = ("link", os.readlink(path))
        elif path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.stat().st_size < (1 << 20) else \
                path.stat().st_mtime_ns
            out[str(path.relative_to(root))] = (path.stat().st_size, digest)
    return out


@pytest.fixture(scope="module")
def before(server, paths):
    """The server's folders before the corpus (after the scene and the hostile files were written)."""
    return snapshot(server.home)


@dataclass
class Answer:
    status: int
    kind: str           # "ows1.1", "ows2.0", "problem", "failed"
    code: str
    text: str
    body: str
    headers: dict


def answer_of(response):
    body = response.text
    content_type = response.headers.get("Content-Type", "")
    if "json" in content_type:
        problem = response.json()
        return Answer(response.status_code, "problem", problem.get("type", ""),
                      f"{problem.get('title', '')}: {problem.get('detail', '')}", body, dict(response.headers))
    root = etree.fromstring(response.content, SAFE_PARSER)
    qname = etree.QName(root)
    if qname.localname == "ExceptionReport":
        exception = root.find("{*}Exception")
        return Answer(response.status_code, "ows1.1" if qname.namespace == OWS11 else "ows2.0",
                      exception.get("exceptionCode"), "".join(exception.itertext()).strip(), body,
                      dict(response.headers))
    failed = root.find(f"{{{WPS1}}}Status/{{{WPS1}}}ProcessFailed")
    if failed is not None:
        exception = failed.find(f"{{*}}ExceptionReport/{{{OWS11}}}Exception")
        return Answer(response.status_code, "failed", exception.get("exceptionCode") or "",
                      "".join(exception.itertext()).strip(), body, dict(response.headers))
    return Answer(response.status_code, "document", qname.localname, "", body, dict(response.headers))


def assert_no_leak(answer, server, sent=""):
    for secret in (TOKEN, "Traceback", 'File "/', "site-packages", str(REPO), str(server.home / "work"),
                   str(server.home / "outputs"), "root:x:0:0", "/etc/passwd" if "/etc/passwd" not in sent else TOKEN):
        assert secret not in answer.body, f"{secret!r} in the answer: {answer.body[:800]}"
    if str(server.home) not in sent:
        assert str(server.home) not in answer.body, answer.body[:800]


# ---------------------------------------------------------------------------------------------
# building requests


def literal(identifier, value):
    return (f"<wps:Input><ows:Identifier>{identifier}</ows:Identifier><wps:Data><wps:LiteralData>{escape(value)}"
            "</wps:LiteralData></wps:Data></wps:Input>")


def ref(identifier, href, mime=None, extra="", inner=""):
    mime_attr = f" mimeType={quoteattr(mime)}" if mime else ""
    return (f"<wps:Input><ows:Identifier>{identifier}</ows:Identifier><wps:Reference xlink:href={quoteattr(href)}"
            f"{mime_attr}{extra}>{inner}</wps:Reference></wps:Input>")


def inline(identifier, data, mime=GEOJSON):
    return (f"<wps:Input><ows:Identifier>{identifier}</ows:Identifier><wps:Data><wps:ComplexData "
            f"mimeType={quoteattr(mime)}><![CDATA[{data}]]></wps:ComplexData></wps:Data></wps:Input>")


def execute1(process, *inputs, asynchronous=False, prolog='<?xml version="1.0" encoding="UTF-8"?>'):
    form = ('<wps:ResponseForm><wps:ResponseDocument storeExecuteResponse="true" status="true"/></wps:ResponseForm>'
            if asynchronous else "")
    return (f'{prolog}<wps:Execute service="WPS" version="1.0.0" {WPS1_NS}><ows:Identifier>{process}'
            f'</ows:Identifier><wps:DataInputs>{"".join(inputs)}</wps:DataInputs>{form}</wps:Execute>')


def execute2(process, *inputs):
    return (f'<?xml version="1.0" encoding="UTF-8"?><wps:Execute {WPS2_NS} service="WPS" version="2.0.0" '
            f'mode="sync" response="document"><ows:Identifier>{process}</ows:Identifier>{"".join(inputs)}'
            '<wps:Output id="hydro" transmission="reference"/></wps:Execute>')


def input2(identifier, href=None, inner=""):
    return (f'<wps:Input id="{identifier}"><wps:Reference xlink:href={quoteattr(href)} mimeType="{GEOJSON}">'
            f"{inner}</wps:Reference></wps:Input>")


BOXES = "{boxes}"
XXE_DOCTYPE = '<!DOCTYPE wps:Execute [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
LAUGHS = ('<!DOCTYPE lolz [<!ENTITY lol "lol">'
          + "".join(f'<!ENTITY lol{i} "{("&lol;" if i == 1 else f"&lol{i - 1};") * 10}">' for i in range(1, 10))
          + "]>")


@dataclass
class Case:
    name: str
    send: tuple         # (method, path, body or None, headers, params)
    status: tuple       # HTTP statuses accepted
    kind: str           # ows1.1 | ows2.0 | problem
    code: str           # exception code ("" = any)
    text: str           # a regular expression the message must match (what to change)


def xml_post(body, **headers):
    return ("POST", "/wps", body, {"Content-Type": "text/xml", **headers}, None)


def kvp(**params):
    return ("GET", "/wps", None, {}, params)


REQUEST_CASES = [
    # XML bodies: entities, DTDs, encodings, size
    Case("xml-xxe-file-entity", xml_post(execute1("split", literal("method", "&xxe;"),
                                                  prolog='<?xml version="1.0"?>' + XXE_DOCTYPE)),
         (400,), "ows1.1", "InvalidParameterValue", "DOCTYPE"),
    Case("xml-external-dtd", xml_post('<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://127.0.0.1:{listener}/x.dtd">'
                                      + execute1("split")[38:]),
         (400,), "ows1.1", "InvalidParameterValue", "DOCTYPE"),
    Case("xml-billion-laughs", xml_post(execute1("split", literal("method", "&lol9;"),
                                                 prolog='<?xml version="1.0"?>' + LAUGHS)),
         (400,), "ows1.1", "InvalidParameterValue", "DOCTYPE"),
    Case("xml-xxe-utf16", xml_post(("\ufeff" + '<?xml version="1.0" encoding="UTF-16"?>' + XXE_DOCTYPE
                                    + execute1("split", literal("method", "&xxe;"))[38:]).encode("utf-16-le")),
         (400,), "ows1.1", "InvalidParameterValue", "DOCTYPE"),
    Case("xml-doctype-after-comments", xml_post('<?xml version="1.0"?><!-- hello --><?pi x?>\n' + XXE_DOCTYPE
                                                + execute1("split")[38:]),
         (400,), "ows1.1", "InvalidParameterValue", "DOCTYPE"),
    Case("xml-utf7", xml_post('<?xml version="1.0" encoding="UTF-7"?>+ADw-!DOCTYPE x+AD4-'
                              + execute1("split")[38:]),
         (400,), "ows1.1", "InvalidParameterValue", "UTF-7.*UTF-8"),
    Case("xml-oversized", xml_post(execute1("split", inline("vector", "x" * (3 << 19)))),
         (413,), "ows1.1", "FileSizeExceeded", r"maxrequestsize = 1 MB"),
    Case("xml-oversized-chunked", ("POST", "/wps", "CHUNKED:" + execute1("split", inline("vector", "x" * (3 << 19))),
                                   {"Content-Type": "text/xml"}, None),
         (413,), "ows1.1", "FileSizeExceeded", r"maxrequestsize = 1 MB"),
    Case("xml-truncated", xml_post(execute1("split")[:120]), (400,), "ows1.1", "NoApplicableCode", "."),
    Case("xml-not-xml", xml_post(b"\x00\x01binary junk \xff"), (400,), "ows1.1", "", "."),
    # processes, inputs, literals
    Case("xml-unknown-process", xml_post(execute1("drain_the_lake", literal("method", "refined"))),
         (400,), "ows1.1", "InvalidParameterValue", "Unknown process"),
    Case("xml-unknown-input", xml_post(execute1("split", ref("vector", "file://{waterbodies}", GEOJSON),
                                                literal("colour", "blue"))),
         (400,), "ows1.1", "InvalidParameterValue", "has no input 'colour'; its inputs are vector"),
    Case("xml-literal-wrong-type", xml_post(execute1("split", ref("vector", "file://{waterbodies}", GEOJSON),
                                                     literal("score_threshold", "high"))),
         (400,), "ows1.1", "InvalidParameterValue", "'high' is not a valid float"),
    Case("xml-literal-out-of-range", xml_post(execute1("split", ref("vector", "file://{waterbodies}", GEOJSON),
                                                       literal("score_threshold", "7"))),
         (400,), "ows1.1", "InvalidParameterValue", "not allowed; allowed: 0.0 to 1.0"),
    Case("xml-literal-not-allowed", xml_post(execute1("split", ref("vector", "file://{waterbodies}", GEOJSON),
                                                      literal("method", "quantum"))),
         (400,), "ows1.1", "InvalidParameterValue", "allowed: refined, boxes"),
    Case("xml-literal-nan", xml_post(execute1("detect", ref("vector", "file://{waterbodies}", GEOJSON),
                                              literal("tile_size", "NaN"))),
         (400,), "ows1.1", "InvalidParameterValue", "not a valid integer"),
    Case("xml-missing-input", xml_post(execute1("split", literal("method", "boxes"))),
         (400,), "ows1.1", "MissingParameterValue", "vector"),
    Case("xml-too-many-values", xml_post(execute1("split", ref("vector", "file://{waterbodies}", GEOJSON),
                                                  ref("vector", "file://{hydro}", GEOJSON))),
         (400,), "ows1.1", "InvalidParameterValue", "at most 1 value"),
    Case("xml-literal-by-reference", xml_post(execute1("split", ref("vector", "file://{waterbodies}", GEOJSON),
                                                       ref("method", "http://example.org/m.txt"))),
         (400,), "ows1.1", "InvalidParameterValue", "give it inline"),
    Case("xml-unsupported-mimetype", xml_post(execute1("split", ref("vector", "file://{waterbodies}", "text/x-evil"))),
         (400,), "ows1.1", "InvalidParameterValue", "mimeType"),
    # train and detect: their literals and references are checked the same way
    Case("xml-train-epochs-out-of-range", xml_post(execute1("train", literal("epochs", "0"))),
         (400,), "ows1.1", "InvalidParameterValue", "allowed: 1 to 10000"),
    Case("xml-train-model-not-allowed", xml_post(execute1("train", literal("model", "os.system"))),
         (400,), "ows1.1", "InvalidParameterValue", "allowed: .*fasterrcnn_resnet50_fpn"),
    Case("xml-train-config-href-metadata", xml_post(execute1("train", ref(
        "config", "http://169.254.169.254/latest/user-data", "application/json"))),
        (400,), "ows1.1", "InvalidParameterValue", "169.254.169.254.*not a public address"),
    Case("xml-detect-checkpoint-outside", xml_post(execute1("detect", ref(
        "checkpoint", "file:///root/.ssh/id_rsa", "application/octet-stream"))),
        (400,), "ows1.1", "FileURLNotSupported", "outside the server's allowed input folders"),
    Case("kvp-detect-tile-size-wrong-type", kvp(service="WPS", request="Execute", version="1.0.0", identifier="detect",
                                                DataInputs="tile_size=huge"),
         (400,), "ows1.1", "InvalidParameterValue", "'huge' is not a valid integer"),
    # references: POST, non-public hosts, schemes, file://
    Case("xml-post-bodyreference", xml_post(execute1("split", ref(
        "vector", "http://example.org/x.geojson", GEOJSON, ' method="POST"',
        '<wps:BodyReference xlink:href="http://127.0.0.1:{listener}/body"/>'))),
        (400,), "ows1.1", "InvalidParameterValue", "POST references"),
    Case("xml-post-body", xml_post(execute1("split", ref("vector", "http://example.org/x.geojson", GEOJSON,
                                                         ' method="POST"', "<wps:Body>q=1</wps:Body>"))),
         (400,), "ows1.1", "InvalidParameterValue", "POST references"),
    Case("xml-href-loopback", xml_post(execute1("split", ref("vector", "http://127.0.0.1:{listener}/x.geojson",
                                                             GEOJSON))),
         (400,), "ows1.1", "InvalidParameterValue", "not a public address.*allowed_hosts"),
    Case("xml-href-metadata", xml_post(execute1("split", ref("vector", "http://169.254.169.254/latest/meta-data/iam/",
                                                             GEOJSON))),
         (400,), "ows1.1", "InvalidParameterValue", "169.254.169.254.*not a public address"),
    Case("xml-href-private", xml_post(execute1("split", ref("vector", "http://10.0.0.1/lakes.geojson", GEOJSON))),
         (400,), "ows1.1", "InvalidParameterValue", "not a public address"),
    Case("xml-href-ipv6-loopback", xml_post(execute1("split", ref("vector", "http://[::1]:{listener}/x", GEOJSON))),
         (400,), "ows1.1", "InvalidParameterValue", "not a public address"),
    Case("xml-href-ipv4-mapped", xml_post(execute1("split", ref("vector", "http://[::ffff:169.254.169.254]/x",
                                                                GEOJSON))),
         (400,), "ows1.1", "InvalidParameterValue", "not a public address"),
    Case("xml-href-decimal-ip", xml_post(execute1("split", ref("vector", "http://2130706433:{listener}/x", GEOJSON))),
         (400,), "ows1.1", "InvalidParameterValue", "not a public address"),
    Case("xml-href-localhost", xml_post(execute1("split", ref("vector", "http://localhost:{listener}/x", GEOJSON))),
         (400,), "ows1.1", "InvalidParameterValue", "not a public address"),
    Case("xml-href-gopher", xml_post(execute1("split", ref("vector", "gopher://127.0.0.1:{listener}/_x", GEOJSON))),
         (400,), "ows1.1", "InvalidParameterValue", "must be http or https"),
    Case("xml-file-etc-passwd", xml_post(execute1("split", ref("vector", "file:///etc/passwd", GEOJSON))),
         (400,), "ows1.1", "FileURLNotSupported", "outside the server's allowed input folders"),
    Case("xml-file-sibling-prefix", xml_post(execute1("split", ref("vector", "file://{sibling}", GEOJSON))),
         (400,), "ows1.1", "FileURLNotSupported", "outside the server's allowed input folders"),
    Case("xml-file-symlink-out", xml_post(execute1("split", ref("vector", "file://{passwd}", GEOJSON))),
         (400,), "ows1.1", "FileURLNotSupported", "links are followed"),
    Case("xml-file-dotdot", xml_post(execute1("split", ref("vector", "file://{inputs}/../test.cfg", GEOJSON))),
         (400,), "ows1.1", "FileURLNotSupported", "outside"),
    Case("xml-file-other-host", xml_post(execute1("split", ref("vector", "file://files.example.org/etc/hosts",
                                                               GEOJSON))),
         (400,), "ows1.1", "FileURLNotSupported", "not on host"),
    Case("xml-file-missing", xml_post(execute1("split", ref("vector", "file://{inputs}/nothing.geojson", GEOJSON))),
         (400,), "ows1.1", "FileURLNotSupported", "names no readable file"),
    # KVP
    Case("kvp-href-metadata", kvp(service="WPS", request="Execute", version="1.0.0", identifier="split",
                                  DataInputs="vector=@xlink:href=http://169.254.169.254/latest/meta-data/"
                                             "@mimeType=application/geo+json"),
         (400,), "ows1.1", "InvalidParameterValue", "not a public address"),
    Case("kvp-post-bodyreference", kvp(service="WPS", request="Execute", version="1.0.0", identifier="split",
                                       DataInputs="vector=@xlink:href=http://example.org/x@method=POST"
                                                  "@bodyreference=http://127.0.0.1:{listener}/b"),
         (400,), "ows1.1", "InvalidParameterValue", "POST references"),
    Case("kvp-file-outside", kvp(service="WPS", request="Execute", version="1.0.0", identifier="split",
                                 DataInputs="vector=@xlink:href=file:///proc/self/environ"),
         (400,), "ows1.1", "FileURLNotSupported", "outside"),
    Case("kvp-unknown-operation", kvp(service="WPS", request="DeleteEverything", version="1.0.0"),
         (400, 501), "ows1.1", "", "."),
    Case("kvp-unknown-identifier", kvp(service="WPS", request="DescribeProcess", version="1.0.0",
                                       identifier="../../etc/passwd"),
         (400,), "ows1.1", "InvalidParameterValue", "."),
    Case("kvp-missing-service", kvp(request="GetCapabilities"), (400,), "ows1.1", "MissingParameterValue", "."),
    Case("kvp-control-characters", kvp(service="WPS", request="GetCapabilities", SERVICE="\x1f\x08"),
         (400,), "ows1.1", "", "."),
    Case("kvp-wps2-jobid-traversal", kvp(service="WPS", version="2.0.0", request="GetStatus",
                                         jobid="../../jobs.sqlite"),
         (400,), "ows2.0", "NoSuchJob", "No job"),
    # JSON bodies (PyWPS's JSON binding)
    Case("json-bodyreference", ("POST", "/wps", json.dumps({
        "identifier": "split", "inputs": {"vector": {"type": "reference", "href": "http://example.org/x.geojson",
                                                     "method": "POST",
                                                     "bodyreference": "http://127.0.0.1:{listener}/b"}}}),
        {"Content-Type": "application/json"}, None),
        (400,), "ows1.1", "InvalidParameterValue", "POST references"),
    Case("json-file-outside", ("POST", "/wps", json.dumps({
        "identifier": "split", "inputs": {"vector": {"type": "reference", "href": "file:///etc/shadow"}}}),
        {"Content-Type": "application/json"}, None),
        (400,), "ows1.1", "FileURLNotSupported", "outside"),
    Case("json-nested-too-deep", ("POST", "/wps", "[" * 100_000, {"Content-Type": "application/json"}, None),
         (400,), "ows1.1", "NoApplicableCode", "."),
    # WPS 2.0.0
    Case("wps2-doctype", xml_post('<?xml version="1.0"?>' + XXE_DOCTYPE + execute2("split")[38:]),
         (400,), "ows2.0", "InvalidParameterValue", "DOCTYPE"),
    Case("wps2-href-metadata", xml_post(execute2("split", input2("vector", "http://169.254.169.254/latest/"))),
         (400,), "ows2.0", "InvalidParameterValue", "not a public address"),
    Case("wps2-file-outside", xml_post(execute2("split", input2("vector", "file:///etc/passwd"))),
         (400,), "ows2.0", "InvalidParameterValue", "outside"),
    Case("wps2-body-reference", xml_post(execute2("split", input2(
        "vector", "http://example.org/x", '<wps:BodyReference xlink:href="http://127.0.0.1:{listener}/b"/>'))),
        (400,), "ows2.0", "InvalidParameterValue", "POST references"),
    Case("wps2-oversized", xml_post(execute2("split", '<wps:Input id="vector"><wps:Data mimeType="text/plain">'
                                             + "x" * (3 << 19) + "</wps:Data></wps:Input>")),
         (413,), "ows2.0", "SizeExceeded", "maxrequestsize"),
    # OGC API - Processes
    Case("ogc-href-loopback", ("POST", "/processes/split/execution", json.dumps({
        "inputs": {"vector": {"href": "http://127.0.0.1:{listener}/x.geojson", "type": GEOJSON}}}),
        {"Content-Type": "application/json"}, None), (400,), "problem", "", "not a public address"),
    Case("ogc-file-outside", ("POST", "/processes/split/execution", json.dumps({
        "inputs": {"vector": {"href": "file:///etc/passwd", "type": GEOJSON}}}),
        {"Content-Type": "application/json"}, None), (400,), "problem", "", "outside"),
    Case("ogc-not-json", ("POST", "/processes/split/execution", "{inputs: nope", {"Content-Type": "application/json"},
                          None), (400,), "problem", "", "not JSON"),
    Case("ogc-unknown-process", ("POST", "/processes/drain/execution", "{}", {"Content-Type": "application/json"},
                                 None), (404,), "problem", "", "."),
    Case("ogc-oversized", ("POST", "/processes/split/execution", json.dumps({"inputs": {"vector": "x" * (3 << 19)}}),
                           {"Content-Type": "application/json"}, None), (413,), "problem", "", "."),
    # paths built from the request
    Case("outputs-traversal", ("GET", "/outputs/..%2fjobs.sqlite", None, {}, None), (404,), "", "", ""),
    Case("outputs-dotdot", ("GET", "/outputs/%2e%2e/test.cfg", None, {}, None), (404,), "", "", ""),
    Case("ogc-job-traversal", ("GET", "/jobs/..%2f..%2fjobs.sqlite", None, {"Accept": "application/json"}, None),
         (404,), "", "", ""),
]


def fill(text, ctx):
    if isinstance(text, bytes):
        return text
    for key, value in ctx.items():
        text = text.replace("{" + key + "}", str(value))
    return text


def send(server, ctx, spec, session=None):
    method, path, body, headers, params = spec
    session = session or requests.Session()
    headers = {"COMPUTE-TOKEN": TOKEN, **headers}
    params = {k: fill(v, ctx) for k, v in (params or {}).items()}
    url = server.url[:-len("/wps")] + path
    if isinstance(body, str) and body.startswith("CHUNKED:"):
        data = fill(body[len("CHUNKED:"):], ctx).encode()
        body = (data[i:i + 65536] for i in range(0, len(data), 65536))
    elif isinstance(body, str):
        body = fill(body, ctx).encode()
    return session.request(method, url, data=body, headers=headers, params=params, timeout=120)


@pytest.fixture(scope="module")
def ctx(server, paths, listener, files):
    values = dict(paths)
    values.update(listener=listener.port, files=files.port, inputs=server.inputs, passwd=paths["passwd"])
    return values


@pytest.mark.parametrize("case", REQUEST_CASES, ids=[c.name for c in REQUEST_CASES])
def test_request_is_refused(case, server, ctx, before):
    started = time.monotonic()
    response = send(server, ctx, case.send)
    assert response.status_code in case.status, (response.status_code, response.text[:1000])
    assert time.monotonic() - started < 30
    if not case.kind:  # a plain 404: nothing served
        assert b"SQLite format" not in response.content and "[server]" not in response.text
        return
    answer = answer_of(response)
    assert answer.kind == case.kind, answer.body[:800]
    if case.code:
        assert answer.code == case.code, answer.body[:800]
    assert re.search(case.text, answer.text, re.S), answer.text
    assert_no_leak(answer, server, sent=str(case.send) + json.dumps({k: str(v) for k, v in ctx.items()}))


# ---------------------------------------------------------------------------------------------
# job-level cases: accepted, then ProcessFailed with the reason


def split_with(vector="file://{waterbodies}", detections="file://{boxes}", raster=None, extra=()):
    inputs = [ref("vector", vector, GEOJSON)]
    if detections:
        inputs.append(ref("detections", detections, GEOJSON))
    if raster:
        inputs.append(ref("raster", raster, "image/tiff; subtype=geotiff"))
    return execute1("split", *inputs, *extra, asynchronous=True)


def detect_with(checkpoint="file://{fresh}", raster="file://{dem}", vector="file://{hydro}"):
    return execute1("detect", ref("checkpoint", checkpoint, "application/octet-stream"),
                    ref("raster", raster, "image/tiff; subtype=geotiff"), ref("vector", vector, GEOJSON),
                    asynchronous=True)


def train_with(config=None, checkpoint=None, extra=()):
    inputs = [ref("raster", "file://{dem}", "image/tiff; subtype=geotiff"), ref("vector", "file://{hydro}", GEOJSON)]
    if config is not None:
        inputs.append(inline("config", json.dumps(config), "application/json") if isinstance(config, dict)
                      else ref("config", config, "application/json"))
    if checkpoint:
        inputs.append(ref("checkpoint", checkpoint, "application/octet-stream"))
    inputs.append(literal("device", "cpu"))
    return execute1("train", *inputs, *extra, asynchronous=True)


JOB_CASES = [
    # rasters (split refines with the DEM)
    ("raster-truncated", split_with(raster="file://{truncated_tif}"), "truncated or damaged"),
    ("raster-png-as-tif", split_with(raster="file://{png_tif}"), "is not a GeoTIFF"),
    ("raster-text-as-tif", split_with(raster="file://{text_tif}"), "is not a GeoTIFF"),
    ("raster-no-crs", split_with(raster="file://{no_crs_tif}"), "has no coordinate reference system"),
    ("raster-nan-only", split_with(raster="file://{nan_tif}"), "holds no elevation"),
    ("raster-over-pixel-limit", split_with(raster="file://{too_large_tif}"), "max_raster_pixels = 1,000,000"),
    # vectors
    ("vector-invalid-json", split_with(vector="file://{invalid}"), "is not valid JSON"),
    ("vector-not-utf8", split_with(vector="file://{not_json}"), "is not valid JSON"),
    ("vector-not-featurecollection", split_with(vector="file://{not_fc}"), "is not a GeoJSON FeatureCollection"),
    ("vector-self-intersecting", split_with(vector="file://{self_intersecting}"), "could not be repaired"),
    ("vector-empty", split_with(vector="file://{empty}"), "holds no polygon"),
    ("vector-points", split_with(vector="file://{points}"), "are not polygons"),
    ("vector-nested-too-deep", split_with(vector="file://{nested}"), "nested too deeply"),
    ("vector-ten-million-vertices", split_with(vector="file://{ten_million}"),
     "10,000,001, over the limit max_vector_vertices = 5,000,000"),
    ("vector-over-feature-limit", split_with(vector="file://{many_features}"),
     "over the limit max_vector_features = 1,000"),
    ("detections-elsewhere", split_with(detections="file://{boxes_elsewhere}"), "none of the .* detections overlaps"),
    # detect: checkpoints, overlap, tiles
    ("checkpoint-pickle-bomb", detect_with(checkpoint="file://{pickle_bomb}"), "could run code"),
    ("checkpoint-legacy-pickle-bomb", detect_with(checkpoint="file://{legacy_pickle_bomb}"),
     "could run code|is not a PyTorch checkpoint"),
    ("checkpoint-not-a-checkpoint", detect_with(checkpoint="file://{notes}"), "is not a PyTorch checkpoint"),
    ("dem-hydro-no-overlap", detect_with(raster="file://{elsewhere_tif}"), "do not overlap"),
    ("detect-over-tile-limit", detect_with(), "over the limit max_tiles = 3"),
    # train: configs naming code, limits
    ("config-type-os-system", train_with({"model": {"type": "os.system", "params": {"command": f"touch {MARKER}"}}}),
     "'os.system' is not allowed"),
    ("config-optimizer-eval", train_with({"trainer": {"optimization": {"optimizer": {"type": "builtins.eval"}}}}),
     "'builtins.eval' is not allowed"),
    ("config-dataset-import", train_with({"datasets": {"d": {"type": "__import__('os').system('id')"}}}),
     "is not allowed"),
    ("config-not-json", train_with("file://{config_not_json}"), "the config is not valid JSON"),
    ("train-over-epoch-limit", train_with({}, extra=(literal("epochs", "50"),)), "over the limit max_epochs = 5"),
    ("train-checkpoint-pickle-bomb", train_with({"trainer": {"epochs": 1}}, checkpoint="file://{pickle_bomb}"),
     "could run code"),
    # references fetched by the job
    ("ref-name-resolving-to-loopback", split_with(vector="http://vm:{listener}/lakes.geojson"),
     "resolves to\\) 127.0.0.1, which is not a public address"),
    ("ref-redirect-to-metadata", split_with(vector="http://127.0.0.1:{files}/to-metadata.geojson"),
     "169.254.169.254.*not a public address"),
    ("ref-over-download-limit", split_with(vector="http://127.0.0.1:{files}/big.geojson"),
     "max_download_bytes = 200,000"),
    ("ref-gzip-bomb", split_with(vector="http://127.0.0.1:{files}/bomb.geojson"), "max_download_bytes = 200,000"),
]


@pytest.fixture(scope="module")
def submitted(server, ctx, before):
    """Every job-level case, submitted at once (asynchronously): {name: status URL}."""
    out = {}
    for name, body, _ in JOB_CASES:
        response = send(server, ctx, xml_post(body))
        assert response.status_code == 200, (name, response.text[:800])
        root = etree.fromstring(response.content, SAFE_PARSER)
        assert root.find(f"{{{WPS1}}}Status/{{{WPS1}}}ProcessAccepted") is not None, (name, response.text[:800])
        out[name] = root.get("statusLocation")
    return out


def socket_resolves(name):
    try:
        return bool(socket.getaddrinfo(name, 80))
    except socket.gaierror:
        return False


def wait_for(url, timeout=600):
    deadline = time.monotonic() + timeout
    while True:
        response = requests.get(url, timeout=30)
        try:
            root = etree.fromstring(response.content, SAFE_PARSER)
        except etree.XMLSyntaxError:
            # PyWPS rewrites the status file in place (open "w", then write): a poll can catch it
            # empty. Known, reported; read it again.
            assert time.monotonic() < deadline
            time.sleep(0.2)
            continue
        answer = answer_of(response)
        status = root.find(f"{{{WPS1}}}Status")
        if status is not None and (status.find(f"{{{WPS1}}}ProcessFailed") is not None
                                   or status.find(f"{{{WPS1}}}ProcessSucceeded") is not None):
            return answer
        assert time.monotonic() < deadline, f"the job did not end: {response.text[:500]}"
        time.sleep(0.5)


@pytest.mark.parametrize("name,body,text", JOB_CASES, ids=[c[0] for c in JOB_CASES])
def test_job_fails_with_the_reason(name, body, text, submitted, server):
    if name == "ref-name-resolving-to-loopback" and not socket_resolves("vm"):
        pytest.skip("the name vm does not resolve on this machine")
    answer = wait_for(submitted[name])
    assert answer.kind == "failed", answer.body[:1000]
    assert re.search(text, answer.text), answer.text
    assert "Internal error" not in answer.text
    assert_no_leak(answer, server)


# ---------------------------------------------------------------------------------------------
# afterwards


def test_targets_were_never_contacted_and_no_payload_ran(submitted, server, listener, files):
    for url in submitted.values():
        wait_for(url)
    assert listener.hits == []
    assert {hit["path"] for hit in files.hits} <= {"/big.geojson", "/bomb.geojson", "/to-metadata.geojson"}
    assert not MARKER.exists()


def test_server_is_healthy_afterwards(server, paths, submitted):
    for url in submitted.values():
        wait_for(url)
    assert server.is_healthy()
    response = requests.get(server.url, params={"service": "WPS", "request": "DescribeProcess", "version": "1.0.0",
                                                "identifier": "split,detect,train"}, timeout=60)
    assert response.status_code == 200 and response.text.count("<ProcessDescription") == 3
    body = execute1("split", ref("vector", f"file://{paths['waterbodies']}", GEOJSON),
                    ref("detections", f"file://{paths['boxes']}", GEOJSON), literal("method", "boxes"))
    response = requests.post(server.url, data=body.encode(), headers={"COMPUTE-TOKEN": TOKEN}, timeout=300)
    root = etree.fromstring(response.content, SAFE_PARSER)
    assert root.find(f"{{{WPS1}}}Status/{{{WPS1}}}ProcessSucceeded") is not None, response.text[:1500]


JOB_PATHS = re.compile(r"^(outputs/[0-9a-f-]{36}(/.*|\.xml)|work/jobs/[0-9a-f-]{36}(/.*)?|"
                       r"work/pywps_process_[^/]+(/.*)?)$")
SERVICE_FILES = re.compile(r"^(access\.log|gunicorn\.log|pywps\.log|server\.out|gunicorn\.pid|jobs\.sqlite.*)$")


def test_nothing_written_outside_the_jobs_folders(server, before, submitted):
    for url in submitted.values():
        wait_for(url)
    after = snapshot(server.home)
    changed = {path for path in after if before.get(path) != after[path]}
    stray = sorted(p for p in changed if not JOB_PATHS.match(p) and not SERVICE_FILES.match(p))
    assert stray == [], stray
    assert {p for p in before if p.startswith("inputs")} == {p for p in after if p.startswith("inputs")}
    assert not (server.home.parent / "escape.geojson").exists()


@pytest.fixture
def busy_server(tmp_path):
    """One job slot and no queue: the second job gets ServerBusy."""
    srv = LiveServer(tmp_path, extra_cfg={"server": {"parallelprocesses": "1", "maxprocesses": "0"}}).start()
    yield srv
    srv.stop()


def test_full_queue_is_503_server_busy_in_every_protocol(busy_server, paths):
    """ServerBusy is HTTP 503 with Retry-After (PyWPS says 400): a client may retry, the request was fine."""
    shutil.copy(paths["waterbodies"], busy_server.inputs / "w.geojson")
    shutil.copy(paths["boxes"], busy_server.inputs / "b.geojson")
    body = execute1("split", ref("vector", f"file://{busy_server.inputs}/w.geojson", GEOJSON),
                    ref("detections", f"file://{busy_server.inputs}/b.geojson", GEOJSON), asynchronous=True)
    first = requests.post(busy_server.url, data=body.encode(), timeout=120)
    status_url = etree.fromstring(first.content, SAFE_PARSER).get("statusLocation")
    answers = [requests.post(busy_server.url, data=body.encode(), timeout=120),
               requests.post(busy_server.url, data=execute2("split", input2(
                   "vector", f"file://{busy_server.inputs}/w.geojson")).encode(), timeout=120),
               requests.post(busy_server.url[:-4] + "/processes/split/execution", timeout=120, json={
                   "inputs": {"vector": {"href": f"file://{busy_server.inputs}/w.geojson", "type": GEOJSON}}})]
    assert [a.status_code for a in answers] == [503, 503, 503], [a.text[:300] for a in answers]
    report = answer_of(answers[0])
    assert report.kind == "ows1.1" and report.code == "ServerBusy" and answers[0].headers["Retry-After"] == "30"
    assert answer_of(answers[1]).code == "ServerBusy"
    assert wait_for(status_url).kind in ("failed", "document")
