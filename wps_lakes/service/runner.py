"""Job process entry point: ``python -m wps_lakes.service.runner JOB_FOLDER``.

Loads the service configuration the job was submitted under, rebuilds the request from
``JOB_FOLDER/job.json`` and runs it (see jobs.run_job).
"""
import json
import sys
from pathlib import Path


def main(folder):
    doc = json.loads((Path(folder) / "job.json").read_text())
    from .app import load_config

    load_config(doc["cfgfiles"])
    from . import jobs, settings

    settings.CFGFILES[:] = doc["cfgfiles"]
    jobs.run_job(doc)


if __name__ == "__main__":
    main(sys.argv[1])
