"""Headless Chromium for the page tests, driven over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: JSON messages ending in NUL on file descriptors 3 and 4), so no
WebSocket client is needed. Debian's ``chromium`` is installed by scripts/install-services.sh."""
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def find_chromium(install=True):
    """The chromium executable; installed with the project's service installer when missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and install:
        subprocess.run(["bash", str(ROOT / "scripts" / "install-services.sh")], check=False, timeout=900)
        found = shutil.which("chromium") or shutil.which("chromium-browser")
    return found


class Browser:
    """One headless Chromium with one page (tab)."""

    def __init__(self, executable, width=1280, height=1000):
        self.profile = tempfile.mkdtemp(prefix="wps-lakes-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def pipes():  # in the child: the protocol pipes on fds 3 (read) and 4 (write)
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
             f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "--remote-debugging-pipe",
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=pipes, pass_fds=(3, 4), close_fds=True)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": False}, session=True)

    # -- protocol ----------------------------------------------------------------------------

    def _read_message(self, deadline):
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed its DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method, params=None, session=False, timeout=60):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._read_message(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    # -- page --------------------------------------------------------------------------------

    def open(self, url, wait_for="document.readyState === 'complete'", timeout=60):
        self.call("Page.navigate", {"url": url}, session=True)
        self.wait(wait_for, timeout)

    def evaluate(self, expression, timeout=60):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session=True, timeout=timeout)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait(self, expression, timeout=60, interval=0.25):
        """Wait until ``expression`` is truthy in the page; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(expression)
            except RuntimeError:
                value = None  # the page is navigating
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"page never had {expression}")
            time.sleep(interval)

    def set_file(self, selector, path):
        found = self.call("Runtime.evaluate", {"expression": f"document.querySelector({json.dumps(selector)})"},
                          session=True)
        self.call("DOM.setFileInputFiles", {"files": [str(path)], "objectId": found["result"]["objectId"]},
                  session=True)

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=True)
        import base64

        Path(path).write_bytes(base64.b64decode(data["data"]))
        return Path(path)

    def close(self):
        try:
            self.call("Browser.close", timeout=10)
        except Exception:  # noqa: BLE001 - it is going away anyway
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)


def dump_dom(executable, url, budget_ms=5000, timeout=60):
    """The DOM of ``url`` after its scripts ran for ``budget_ms`` of virtual time (chromium --dump-dom)."""
    with tempfile.TemporaryDirectory(prefix="wps-lakes-chromium-") as profile:
        done = subprocess.run([executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                               f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", "--dump-dom",
                               url], capture_output=True, text=True, timeout=timeout)
    return done.stdout
