import pytest

from .common import LiveServer


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """One real gunicorn server for the session's tests that need HTTP."""
    server = LiveServer(tmp_path_factory.mktemp("live-server")).start()
    yield server
    server.stop()
