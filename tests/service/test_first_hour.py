"""A new user's first hour (issue 20): the service as `make start` starts it takes files from its
inbox ($WPS_LAKES_HOME/inbox) by file:// and nothing outside; a WPS 1.0.0 ResponseDocument gets only
the outputs it names; a refused Execute's job record keeps the reason its client was given."""
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from lxml import etree

from ..common import LiveServer, scene_with_lake_boxes

NS = {"wps": "http://www.opengis.net/wps/1.0.0", "ows": "http://www.opengis.net/ows/1.1"}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The service with the default configuration's allowedinputpaths (the inbox) left as it is."""
    home = tmp_path_factory.mktemp("first-hour")
    live = LiveServer(home)
    live.cfg.write_text("\n".join(line for line in live.cfg.read_text().splitlines()
                                  if not line.startswith("allowedinputpaths")) + "\n")
    live.start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def scene(server):
    folder = server.home / "inbox" / "scene"
    paths = scene_with_lake_boxes(folder)
    return paths


def execute_xml(vector, detections, outputs=()):
    names = "".join(f'<wps:Output asReference="true"><ows:Identifier>{o}</ows:Identifier></wps:Output>'
                    for o in outputs)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0"
  xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink">
 <ows:Identifier>split</ows:Identifier>
 <wps:DataInputs>
  <wps:Input><ows:Identifier>vector</ows:Identifier>
   <wps:Reference xlink:href="{vector}" mimeType="application/geo+json"/></wps:Input>
  <wps:Input><ows:Identifier>detections</ows:Identifier><wps:Reference xlink:href="{detections}"/></wps:Input>
  <wps:Input><ows:Identifier>method</ows:Identifier><wps:Data><wps:LiteralData>boxes</wps:LiteralData></wps:Data>
  </wps:Input>
 </wps:DataInputs>
 <wps:ResponseForm><wps:ResponseDocument>{names}</wps:ResponseDocument></wps:ResponseForm>
</wps:Execute>"""


def outputs_of(response):
    assert response.status_code == 200, response.text
    doc = etree.fromstring(response.content)
    assert doc.find(".//wps:ProcessSucceeded", NS) is not None, response.text
    return {e.text for e in doc.findall(".//wps:Output/ows:Identifier", NS)}


def test_inbox_is_created_and_allowed_by_default(server, scene):
    assert (server.home / "inbox").is_dir()
    response = requests.post(server.url, data=execute_xml(f"file://{scene['waterbodies']}",
                                                          f"file://{scene['true_boxes']}"), timeout=300)
    assert outputs_of(response) == {"lakes", "rivers", "hydro", "quicklook", "output"}  # none named: all


def test_response_document_gets_the_outputs_it_names(server, scene):
    response = requests.post(server.url, data=execute_xml(f"file://{scene['waterbodies']}",
                                                          f"file://{scene['true_boxes']}", ("lakes", "rivers")),
                             timeout=300)
    assert outputs_of(response) == {"lakes", "rivers"}


def test_files_outside_the_inbox_are_refused_and_the_record_says_why(server, scene, tmp_path):
    outside = server.home / "outputs"  # a folder of the service, beside the inbox
    target = outside / "elsewhere.geojson"
    target.write_bytes(Path(scene["waterbodies"]).read_bytes())
    link = server.home / "inbox" / "link.geojson"  # a link out of the inbox is followed, and refused
    link.symlink_to(target)
    for href in (f"file://{target}", f"file://{link}", f"file://{server.home}/inbox/../jobs.sqlite"):
        response = requests.post(server.url, data=execute_xml(href, f"file://{scene['true_boxes']}"), timeout=60)
        assert response.status_code == 400 and b"FileURLNotSupported" in response.content, response.text
        assert b"allowed input folders" in response.content
    # The refused job's record: the same reason the client was given, not PyWPS's generic words.
    listing = subprocess.run([sys.executable, "-m", "wps_lakes.cli", "jobs", "list", "-c", str(server.cfg)],
                             env=server.env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert listing.returncode == 0, listing.stderr
    assert "Request rejected due to exception" not in listing.stdout
    assert "Request rejected: file:// reference" in listing.stdout, listing.stdout
