"""WSGI entry point.

``PYWPS_CFG=my.cfg gunicorn wps_lakes.wsgi:application`` serves /wps and /outputs with the
default configuration (plus $PYWPS_CFG); ``wps_lakes.wsgi:create_app(['a.cfg', 'b.cfg'])`` adds
config files. Precedence: default.cfg < files given in order < $PYWPS_CFG.
"""
from pathlib import Path

DEFAULT_CFG = Path(__file__).with_name("default.cfg")


def config_files(cfgfiles=None):
    """default.cfg then the given files; pywps itself appends $PYWPS_CFG last when loading."""
    return [str(DEFAULT_CFG)] + [str(f) for f in (cfgfiles or [])]


def create_app(cfgfiles=None):
    from .service.app import ServiceApp
    from .service.auth import protect

    # Access tokens ([esgf] tokens) guard every request that starts or ends a job.
    return protect(ServiceApp(config_files(cfgfiles)))


def __getattr__(name):
    # `application` is built on first access so that importing this module (e.g. for
    # create_app) does not load a configuration twice.
    if name == "application":
        global application
        application = create_app()
        return application
    raise AttributeError(name)
