"""Service settings read from the PyWPS configuration (sections [limits], [references], ...), and the
one way to load that configuration (the web server, job processes and Celery workers alike)."""
import os
from pathlib import Path

from pywps import configuration

from ..limits import Limits
from . import database
from .references import ReferencePolicy

# The config files the running service was built from; job processes load the same ones.
CFGFILES = []


def section(name):
    config = configuration.CONFIG
    if config is None or not config.has_section(name):
        return {}
    # Only the section's own options, not the environment defaults pywps mixes in.
    return {key: config.get(name, key) for key in config.options(name) if key in config._sections[name]}


def limits():
    return Limits.from_mapping(section("limits"))


def reference_policy():
    """The rules for fetching input references: ``[references]`` plus the output URL and folder."""
    return ReferencePolicy.from_config(section("references"), config_value("server", "outputurl"), outputpath())


def outputpath():
    return configuration.get_config_value("server", "outputpath")


def outputurl():
    return configuration.get_config_value("server", "outputurl").rstrip("/")


def workdir():
    return configuration.get_config_value("server", "workdir")


def processing_mode():
    return configuration.get_config_value("processing", "mode") or "default"


def config_value(section_name, option):
    return configuration.get_config_value(section_name, option)


def default_home():
    return os.environ.setdefault("WPS_LAKES_HOME", str(Path.home() / ".local/share/wps-lakes"))


def prepare_folders():
    """Create the folders the configuration names, so a fresh install starts cleanly."""
    for option in ("outputpath", "workdir"):
        folder = Path(configuration.get_config_value("server", option))
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".write-test-{os.getpid()}"
            probe.touch()
            probe.unlink()
        except OSError as exc:
            # Jobs write status documents and outputs here (workers too, on a shared mount).
            raise SystemExit(f"[server] {option} = {folder} is not a writable folder here ({exc.strerror}); "
                             "create it or mount it read-write (workers share it with the web server)") from None
    for root in inbox_folders():
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass  # a folder the operator names must exist already; allowed_file then finds no file there
    database_url = configuration.get_config_value("logging", "database")
    if database_url.startswith("sqlite:///") and ":memory:" not in database_url:
        Path(database_url[len("sqlite:///"):].split("?")[0]).parent.mkdir(parents=True, exist_ok=True)
    logfile = configuration.get_config_value("logging", "file")
    if logfile:
        Path(logfile).parent.mkdir(parents=True, exist_ok=True)


def inbox_folders():
    """The folders of ``[server] allowedinputpaths`` (by default ``$WPS_LAKES_HOME/inbox``): files put
    there may be given to a process as ``file://`` references."""
    paths = configuration.get_config_value("server", "allowedinputpaths") or ""
    return [Path(p.strip()) for p in paths.split(os.pathsep) if p.strip()]


def load_service_config(cfgfiles):
    """Load the PyWPS configuration files (later ones win) and prepare what they name."""
    default_home()
    configuration.load_configuration(list(cfgfiles))
    prepare_folders()
    database.keep_open(configuration.get_config_value("logging", "database"))
