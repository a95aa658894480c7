"""One Celery worker process: ``python -m wps_lakes.jobs.celery_worker --cfg A --cfg B ...``.

Started by ``wps-lakes worker`` (one per GPU, each seeing only its GPU through
CUDA_VISIBLE_DEVICES). The worker only waits on job processes, so a thread pool is enough.
"""
import argparse


def main(argv=None):
    parser = argparse.ArgumentParser(prog="wps_lakes.jobs.celery_worker")
    parser.add_argument("--cfg", action="append", default=[])
    parser.add_argument("--queues", default="gpu")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--name", default="wps-lakes@%h")
    parser.add_argument("--loglevel", default="INFO")
    args = parser.parse_args(argv)

    from ..runtime import settings

    settings.load_service_config(args.cfg)
    settings.CFGFILES[:] = args.cfg
    from .celery_backend import get_app

    get_app().worker_main(["worker", "-Q", args.queues, "-P", "threads", "-c", str(args.concurrency),
                           "-n", args.name, "--loglevel", args.loglevel, "--without-gossip", "--without-mingle"])


if __name__ == "__main__":
    main()
