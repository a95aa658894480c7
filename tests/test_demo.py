"""`make demo` against the service as `wps-lakes start` starts it (the default inbox), then the pages it
prints in headless Chromium: the jobs page has progress bars, the job pages show pictures (slow: the
demo takes minutes on two cores)."""
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from .chromium import Browser, find_chromium
from .common import LiveServer

ROOT = Path(__file__).resolve().parent.parent
LOADED = "Array.from(document.querySelectorAll('#pictures img')).filter(i => i.complete && i.naturalWidth > 0).length"


@pytest.mark.slow
def test_demo_then_its_pages(tmp_path):
    executable = find_chromium()
    if executable is None:
        pytest.skip("chromium cannot be installed here")
    server = LiveServer(tmp_path / "home")
    server.cfg.write_text("\n".join(line for line in server.cfg.read_text().splitlines()
                                    if not line.startswith("allowedinputpaths")) + "\n")
    server.start()
    try:
        # birdy sends local paths as file:// references to a localhost URL only
        service = server.url.replace("127.0.0.1", "localhost")
        started = time.monotonic()
        demo = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py")], capture_output=True, text=True,
                              timeout=900, cwd=ROOT, env=dict(server.env, WPS_SERVICE=service))
        seconds = time.monotonic() - started
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        assert seconds < 600, f"the demo took {seconds:.0f} s"
        assert str(server.home / "inbox") in demo.stdout
        pages = re.findall(r"job page: (\S+)", demo.stdout)
        assert len(pages) >= 3, demo.stdout
        base = server.url.rsplit("/", 1)[0]
        browser = Browser(executable)
        try:
            browser.open(f"{base}/jobs?f=html")
            assert browser.wait("document.querySelectorAll('#jobs tbody .bar[role=progressbar]').length", 30) >= 3
            browser.screenshot(tmp_path / "demo-jobs.png")
            pictures = {}
            for url in pages:
                browser.open(url.replace("localhost", "127.0.0.1"))
                time.sleep(2.5)  # one poll of the page's script
                canvas = browser.evaluate("document.querySelector('#curves-figure').hidden ? 0 : 1")
                pictures[url] = browser.evaluate(LOADED) + canvas
                browser.screenshot(tmp_path / f"demo-job-{len(pictures)}.png")
        finally:
            browser.close()
        assert all(count >= 1 for count in pictures.values()), pictures
        assert max(pictures.values()) >= 2, pictures  # a training job: the curves PNG and the canvas
        lakes = re.search(r"(\d+) lake part\(s\)", demo.stdout)
        assert lakes and int(lakes.group(1)) >= 1, demo.stdout
        if "bundled pretrained detector (" in demo.stdout:  # the 8-epoch model of a checkout without it finds none
            detected = re.search(r"(\d+) lake\(s\) detected", demo.stdout)
            assert detected and int(detected.group(1)) >= 1, demo.stdout
        print(demo.stdout, f"\ndemo: {seconds:.0f} s; screenshots in {tmp_path}")
        assert requests.get(f"{base}/jobs?f=html", timeout=30).status_code == 200
    finally:
        server.stop()
