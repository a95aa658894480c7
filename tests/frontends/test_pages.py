"""The job and process pages in a real browser (headless Chromium over the DevTools protocol), on a
service with access tokens: the jobs page's bars follow a training job without a reload, a job's page
shows its pictures (the curves PNG, the canvas drawn from the metrics, quicklooks), checkpoints, log
and inputs, the split form runs a split from uploaded files, and Dismiss sends the user's token."""
import io
import time

import pytest
import requests
from PIL import Image

from ..chromium import Browser, find_chromium
from ..common import LiveServer, scene_with_lake_boxes

ALICE, BOB = "alice-token-3b9e61f0c2", "bob-token-77d1a0e4f5"
TINY_CONFIG = {  # the lightest real session: the CPU model, two iterations an epoch
    "name": "tiny", "datasets": {"a": {"params": {}}, "b": {"params": {}}},
    "loaders": {"batch_size": 2, "train_split": {"a": 1}, "valid_split": {"b": 1}},
    "model": {"type": "fcos_mobilenet_v3_large_fpn", "params": {"image_scale": 0.25}},
    "trainer": {"epochs": 8, "max_iters_per_epoch": 2, "threads": 1},
}
BAR_GREEN = (0x2A, 0x9D, 0x8F)  # .bar > div in lakes.css
SHOTS = []  # screenshots written by this module (their paths are printed at the end)


@pytest.fixture(scope="module")
def chromium():
    executable = find_chromium()
    if executable is None:
        pytest.skip("chromium cannot be installed here (scripts/install-services.sh needs root or sudo and apt)")
    return executable


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("pages")
    (home / "users").write_text(f"alice {ALICE}\nbob {BOB}\n")
    live = LiveServer(home, extra_cfg={"auth": {"tokens_file": str(home / "users")}}).start()
    yield live
    live.stop()


@pytest.fixture(scope="module")
def base(server):
    return server.url.rsplit("/", 1)[0]


@pytest.fixture(scope="module")
def scene(server):
    folder = server.inputs / "scene-pages"
    paths = scene_with_lake_boxes(folder)
    return paths


@pytest.fixture(scope="module")
def browser(chromium, base, tmp_path_factory):
    page = Browser(chromium)
    page.shots = tmp_path_factory.mktemp("screenshots")
    page.open(f"{base}/processes?f=html")
    page.evaluate(f"sessionStorage.setItem('wps-lakes-token', '{ALICE}')")  # as typed into the token field
    yield page
    page.close()
    print("\nscreenshots:", *SHOTS, sep="\n  ")


def shoot(page, name):
    path = page.screenshot(page.shots / f"{name}.png")
    SHOTS.append(path)
    return Image.open(io.BytesIO(path.read_bytes())).convert("RGB")


def has_colour(image, colour, at_least=200):
    return sum(count for count, rgb in image.getcolors(1 << 24) if rgb == colour) >= at_least


def start_train(base, scene, token=ALICE, **trainer):
    config = dict(TINY_CONFIG, trainer=dict(TINY_CONFIG["trainer"], **trainer))
    body = {"inputs": {"config": {"value": config, "mediaType": "application/json"},
                       "raster": {"href": f"file://{scene['dem']}"}, "vector": {"href": f"file://{scene['hydro']}"},
                       "device": "cpu"}}
    response = requests.post(f"{base}/processes/train/execution", json=body, timeout=60,
                             headers={"Authorization": f"Bearer {token}", "Prefer": "respond-async"})
    assert response.status_code == 201, response.text
    return response.json()["jobID"]


def test_json_answers_are_unchanged_and_the_jobs_page_asks_for_a_token(base):
    assert requests.get(f"{base}/jobs", timeout=30).status_code == 401  # the JSON list still needs a token
    listing = requests.get(f"{base}/jobs", headers={"Authorization": f"Bearer {ALICE}"}, timeout=30)
    assert listing.status_code == 200 and listing.headers["Content-Type"] == "application/json"
    page = requests.get(f"{base}/jobs?f=html", timeout=30)  # the page: no jobs in it, a token field
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert 'id="token"' in page.text and "needs an access token" in page.text and "<tr data-job" not in page.text
    assert requests.get(f"{base}/jobs?f=html", headers={"Authorization": "Bearer wrong"}, timeout=30).status_code \
        == 403
    for name in ("common.js", "jobs.js", "job.js", "process.js", "lakes.css"):
        assert requests.get(f"{base}/static/{name}", timeout=30).status_code == 200
    assert requests.get(f"{base}/static/..%2Fpages%2Fjob.html", timeout=30).status_code == 404
    description = requests.get(f"{base}/processes/split", timeout=30)
    assert description.headers["Content-Type"] == "application/json" and "inputs" in description.json()


def test_jobs_page_bars_move_without_a_reload(browser, base, scene):
    job = start_train(base, scene)
    browser.open(f"{base}/jobs?f=html")
    browser.evaluate("window.sameDocument = true")
    row = f"document.querySelector('#jobs tr[data-job=\"{job}\"]')"
    browser.wait(f"!!{row}", timeout=30)
    values, shot = [], None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        value = int(browser.evaluate(f"{row}.querySelector('.bar').getAttribute('aria-valuenow')"))
        if not values or values[-1] != value:
            values.append(value)
        if shot is None and 20 <= value < 100:
            time.sleep(0.6)  # the bar's width eases in over 0.5 s
            shot = shoot(browser, "jobs-running")
        if value == 100 and browser.evaluate(f"{row}.querySelector('.state').textContent") == "successful":
            break
        time.sleep(0.3)
    assert values == sorted(values) and values[-1] == 100, values
    assert len([v for v in values if 0 < v < 100]) >= 2, f"the bar did not move while the job ran: {values}"
    assert browser.evaluate("window.sameDocument === true"), "the page was reloaded"
    assert browser.evaluate(f"{row}.querySelector('.owner').textContent") == "you"
    assert shot is not None and has_colour(shot, BAR_GREEN), "no progress bar drawn in the screenshot"
    # The job's page: the curves PNG and the canvas drawn from the metrics, checkpoints, log, inputs.
    browser.evaluate(f"{row}.querySelector('a').click()")
    browser.wait(f"location.pathname.endsWith('/jobs/{job}')", timeout=30)
    loaded = "Array.from(document.querySelectorAll('#pictures img')).filter(i => i.complete && i.naturalWidth > 0)"
    assert browser.wait(f"{loaded}.length >= 1", timeout=30)
    assert browser.wait("document.querySelector('#curves').dataset.epochs === '8'", timeout=30)
    assert not browser.evaluate("document.querySelector('#curves-figure').hidden")
    assert browser.evaluate("document.querySelectorAll('#checkpoints a[download]').length") >= 2
    assert "training ended" in browser.evaluate("document.querySelector('#log').textContent")
    inputs = browser.evaluate("document.querySelector('table.inputs').textContent")
    assert f"file://{scene['dem']}" in inputs and "inline data (application/json)" in inputs
    assert browser.evaluate("document.querySelector('#state').textContent") == "successful"
    image = shoot(browser, "train-job")
    assert image.size[0] >= 1000 and len(image.getcolors(1 << 24)) > 50  # pictures, not a blank page


def test_the_form_runs_a_split_and_its_quicklook_loads(browser, base, scene):
    """One file uploaded (sent inline), one given by URL (a file:// in the allowed folder)."""
    browser.open(f"{base}/processes/split?f=html")
    browser.set_file("#in-vector", scene["waterbodies"])
    browser.evaluate(f"document.querySelector('#url-detections').value = 'file://{scene['true_boxes']}'")
    browser.evaluate("document.querySelector('#in-method').value = 'boxes'")
    browser.evaluate("document.querySelector('#submit').click()")
    browser.wait("location.pathname.startsWith('/jobs/')", timeout=60)
    state = browser.wait("['successful', 'failed'].includes(document.querySelector('#state').textContent) && "
                         "document.querySelector('#state').textContent", timeout=120)
    assert state == "successful", browser.evaluate("document.querySelector('#message').textContent")
    assert browser.wait("Array.from(document.querySelectorAll('#pictures img'))"
                        ".filter(i => i.complete && i.naturalWidth > 300).length", timeout=30) >= 1
    outputs = browser.evaluate("document.querySelector('#outputs').textContent")
    assert "lakes" in outputs and "rivers" in outputs and "quicklook" in outputs
    inputs = browser.evaluate("document.querySelector('table.inputs').textContent")
    assert "inline data (application/geo+json)" in inputs and "boxes" in inputs  # the upload, the method
    assert f"file://{scene['true_boxes']}" in inputs  # the URL
    shoot(browser, "split-job")


def test_a_failed_job_shows_the_reason_its_client_got(browser, base, scene):
    body = {"inputs": {"raster": {"href": f"file://{scene['dem']}"}, "vector": {"href": f"file://{scene['hydro']}"},
                       "resume": True}}
    response = requests.post(f"{base}/processes/train/execution", json=body, timeout=60,
                             headers={"Authorization": f"Bearer {ALICE}"})
    job = response.json()["jobID"]
    deadline = time.monotonic() + 120
    while (status := requests.get(f"{base}/jobs/{job}", timeout=30).json())["status"] != "failed":
        assert time.monotonic() < deadline and status["status"] != "successful", status
        time.sleep(0.5)
    browser.open(f"{base}/jobs/{job}?f=html")
    assert browser.evaluate("document.querySelector('#state').textContent") == "failed"
    assert browser.evaluate("document.querySelector('#message').textContent") == status["message"]
    assert "resume=true needs a checkpoint" in status["message"]


def test_dismiss_sends_the_token(browser, base, scene):
    job = start_train(base, scene, epochs=500)
    browser.open(f"{base}/jobs/{job}?f=html")
    browser.evaluate("sessionStorage.setItem('wps-lakes-token', '')")  # no token: refused, the job goes on
    browser.evaluate("document.querySelector('#dismiss').click()")
    refused = browser.wait("document.querySelector('#dismiss-state').textContent.startsWith('Dismiss refused') && "
                           "document.querySelector('#dismiss-state').textContent", timeout=30)
    assert "token" in refused
    browser.evaluate(f"sessionStorage.setItem('wps-lakes-token', '{BOB}')")  # another user's token: refused
    browser.evaluate("document.querySelector('#dismiss').click()")
    assert "another user" in browser.wait("document.querySelector('#dismiss-state').textContent.includes("
                                          "'another user') && document.querySelector('#dismiss-state').textContent",
                                          timeout=30)
    browser.evaluate(f"sessionStorage.setItem('wps-lakes-token', '{ALICE}')")
    browser.evaluate("document.querySelector('#dismiss').click()")
    browser.wait("document.querySelector('#state').textContent === 'dismissed'", timeout=60)
    shoot(browser, "dismissed-job")
    assert requests.get(f"{base}/jobs/{job}", timeout=30).status_code == 404
    listing = requests.get(f"{base}/jobs", headers={"Authorization": f"Bearer {ALICE}"}, timeout=30).json()
    assert job not in [j["jobID"] for j in listing["jobs"]]
