"""Service settings read from the PyWPS configuration (sections [limits], [references], ...)."""
from pywps import configuration

from ..limits import Limits
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
    hosts = section("references").get("allowed_hosts", "")
    return ReferencePolicy(
        outputurl=configuration.get_config_value("server", "outputurl"),
        outputpath=configuration.get_config_value("server", "outputpath"),
        allowed_hosts=frozenset(h.strip() for h in hosts.replace(",", " ").split() if h.strip()),
    )


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
