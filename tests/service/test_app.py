"""The service shell: configuration, WSGI routes, the CLI, and real clients on a live server."""
import os
import subprocess

import pytest
import requests
from owslib.wps import WebProcessingService
from pywps import configuration

from wps_lakes.service.registry import get_processes
from wps_lakes.wsgi import create_app

from ..common import WPS_LAKES, LiveServer, client_for, free_port, write_cfg

REGISTRY = [p.identifier for p in get_processes()]


def test_config_precedence(tmp_path, monkeypatch):
    """default.cfg < CLI-generated config < -c PATH < $PYWPS_CFG."""
    monkeypatch.setenv("WPS_LAKES_HOME", str(tmp_path))
    cli = write_cfg(tmp_path / "cli.cfg", server={"maxprocesses": "3", "parallelprocesses": "3", "language": "fr-CA"})
    user = write_cfg(tmp_path / "user.cfg", server={"parallelprocesses": "4", "language": "en-CA"})
    env = write_cfg(tmp_path / "env.cfg", server={"language": "de-DE"})
    monkeypatch.setenv("PYWPS_CFG", str(env))
    create_app([cli, user])
    assert configuration.get_config_value("server", "maxprocesses") == "3"       # CLI over default (20)
    assert configuration.get_config_value("server", "parallelprocesses") == "4"  # -c over CLI
    assert configuration.get_config_value("server", "language") == "de-DE"      # $PYWPS_CFG over all
    assert configuration.get_config_value("server", "outputpath") == str(tmp_path / "outputs")
    assert (tmp_path / "outputs").is_dir() and (tmp_path / "work").is_dir()
    monkeypatch.delenv("PYWPS_CFG")
    create_app()
    assert configuration.get_config_value("server", "parallelprocesses") == "2"


def test_capabilities_in_process(tmp_path, monkeypatch):
    monkeypatch.setenv("WPS_LAKES_HOME", str(tmp_path))
    resp = client_for().get("/wps?service=WPS&request=GetCapabilities&version=1.0.0")
    assert resp.status_code == 200
    listed = resp.xpath_text("/wps:Capabilities/wps:ProcessOfferings/wps:Process/ows:Identifier").split()
    assert listed == REGISTRY


def test_owslib_capabilities_live(live_server):
    wps = WebProcessingService(live_server.url, version="1.0.0")
    ident = wps.identification
    assert ident.title == "wps_lakes: lake and river differentiation"
    assert "detect lakes" in ident.abstract and "lake and river features" in ident.abstract
    assert {"hydrography", "lakes", "rivers", "DEM"} <= set(ident.keywords)
    assert wps.provider.name == "wps_lakes project"
    assert wps.provider.contact.email == "wps-lakes@example.org"
    assert [p.identifier for p in wps.processes] == REGISTRY


def test_birdy_cli_live(live_server):
    env = dict(os.environ, WPS_SERVICE=live_server.url)
    birdy = os.path.join(os.path.dirname(WPS_LAKES), "birdy")
    out = subprocess.run([birdy, "-h"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for identifier in REGISTRY:
        assert identifier in out.stdout


def test_outputs_route_refuses_escape(live_server):
    base = live_server.url.rsplit("/", 1)[0]
    (live_server.outputpath / "probe.txt").write_text("served")
    assert requests.get(f"{base}/outputs/probe.txt", timeout=10).text == "served"
    for path in ("/outputs/../test.cfg", "/outputs/%2e%2e/test.cfg", "/outputs//etc/passwd"):
        resp = requests.get(base + path, timeout=10)
        assert resp.status_code == 404, path
        assert b"[server]" not in resp.content and b"root:" not in resp.content


def test_unknown_path_is_404(live_server):
    base = live_server.url.rsplit("/", 1)[0]
    assert requests.get(f"{base}/no/such/thing", timeout=10).status_code == 404


def test_cli_start_status_stop(tmp_path):
    env = dict(os.environ, WPS_LAKES_HOME=str(tmp_path))
    env.pop("PYWPS_CFG", None)
    port = free_port()

    def run(*args):
        return subprocess.run([WPS_LAKES, *args], env=env, capture_output=True, text=True, timeout=180)

    assert run("status").returncode == 1
    started = run("start", "--daemon", "--port", str(port))
    assert started.returncode == 0, started.stderr
    try:
        assert run("start", "--daemon", "--port", str(port)).returncode == 1  # already running
        status = run("status")
        assert status.returncode == 0 and f":{port}/wps" in status.stdout
        wps = WebProcessingService(f"http://127.0.0.1:{port}/wps")
        assert wps.identification.title.startswith("wps_lakes")
        assert (tmp_path / "jobs.sqlite").is_file()  # file-backed job database
    finally:
        assert run("stop").returncode == 0
    assert run("status").returncode == 1
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/wps", timeout=5)


def test_bad_config_file_is_reported(tmp_path):
    env = dict(os.environ, WPS_LAKES_HOME=str(tmp_path))
    out = subprocess.run([WPS_LAKES, "start", "-c", str(tmp_path / "missing.cfg")], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "config file not found" in out.stderr


def test_live_server_fixture_isolated(tmp_path):
    """A second server with its own folders runs beside the first."""
    server = LiveServer(tmp_path).start()
    try:
        assert server.is_healthy()
        assert (tmp_path / "jobs.sqlite").is_file()
    finally:
        server.stop()
