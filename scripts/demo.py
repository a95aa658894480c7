"""`make demo`: scene -> train -> detect -> split against a started service.

Talks to $WPS_SERVICE (default http://localhost:5000/wps) with birdy's WPSClient. For a service on
localhost birdy passes local files as file:// references, so start the service with the demo
configuration, which allows them from /tmp:

    wps-lakes start -d -c etc/demo.cfg ; make demo
"""
import os
import sys
import tempfile
import time

from birdy import WPSClient
from owslib.util import ServiceException

from wps_lakes.geodata import make_scene

URL = os.environ.get("WPS_SERVICE", "http://localhost:5000/wps")


def main():
    try:
        client = WPSClient(URL, progress=True)
    except Exception as exc:  # noqa: BLE001 - any connection problem gets the same advice
        sys.exit(f"No service answers at {URL} ({exc}). Start it with `make start`.")
    folder = tempfile.mkdtemp(prefix="wps-lakes-demo-")
    scene = make_scene(folder, seed=11, size_m=2400)
    print(f"1. synthetic scene in {folder}: dem.tif, hydro.geojson, waterbodies.geojson")

    try:
        run(client, folder, scene)
    except ServiceException as exc:
        if "FileURLNotSupported" in str(exc):
            sys.exit("The service refuses file:// references. Restart it with the demo configuration: "
                     "wps-lakes stop; wps-lakes start -d -c etc/demo.cfg")
        raise


def run(client, folder, scene):
    started = time.monotonic()
    print("2. training a small detector for a few epochs (asynchronous; the bar shows progress)")
    trained = client.train(raster=str(scene["dem"]), vector=str(scene["hydro"]), epochs=8, device="auto")
    train_refs = trained.get(asobj=False)._asdict()
    print(f"   done in {time.monotonic() - started:.0f} s; best checkpoint: {train_refs['best_checkpoint']}")

    print("3. detecting lakes with it (the checkpoint is passed by its URL on this service)")
    detected = client.detect(checkpoint=train_refs["best_checkpoint"], raster=str(scene["dem"]),
                             vector=str(scene["waterbodies"]), score_threshold=0.3)
    detect_refs = detected.get(asobj=False)._asdict()

    print("4. splitting the waterbodies into lakes and rivers")
    split = client.split(vector=str(scene["waterbodies"]), detections=detect_refs["detections"],
                         raster=str(scene["dem"]), method="refined")
    split_refs = split.get(asobj=False)._asdict()

    print("\nResults")
    for label, refs in (("train", train_refs), ("detect", detect_refs), ("split", split_refs)):
        for name, ref in refs.items():
            if name != "output":
                print(f"  {label:6} {name:18} {ref}")
    print(f"\nQuicklooks: {detect_refs['quicklook']}\n            {split_refs['quicklook']}")


if __name__ == "__main__":
    main()
