"""Job process entry points.

``python -m wps_lakes.jobs.runner JOB_FOLDER`` runs a job in a fresh interpreter (the Celery
workers do this); ``detached(JOB_FOLDER)`` runs it in a process forked from the job fork server of
the local backend. Both load the configuration the job was submitted under, rebuild the request from
``JOB_FOLDER/job.json`` and run it (see ``dispatch.run_job``).
"""
import json
import os
import sys
from pathlib import Path

# What the fork server imports once, so that each job starts without paying for these imports.
# Not torch: train and detect import it in their own process, and the server stays small.
PRELOAD = ["wps_lakes.jobs.runner", "wps_lakes.jobs.dispatch", "wps_lakes.processes.train",
           "wps_lakes.processes.detect", "wps_lakes.processes.split", "wps_lakes.hydro.split", "wps_lakes.geodata",
           "pywps.app.Service", "geopandas", "rasterio", "scipy.ndimage", "matplotlib.pyplot"]


def main(folder):
    doc = json.loads((Path(folder) / "job.json").read_text())
    from ..runtime import settings
    from .dispatch import run_job

    settings.load_service_config(doc["cfgfiles"])
    settings.CFGFILES[:] = doc["cfgfiles"]
    run_job(doc)


def detached(folder):
    """A forked job: its own session (so dismissal can end its whole group), output to runner.log."""
    os.setsid()
    log = os.open(Path(folder) / "runner.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.chdir(folder)
    main(folder)


if __name__ == "__main__":
    main(sys.argv[1])
