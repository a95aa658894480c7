"""`make demo`: scene -> train -> detect -> split against a started service.

Talks to $WPS_SERVICE (default http://localhost:5000/wps) with birdy's WPSClient, sending local
files inline, so the service needs no shared folder. Start the service first: `make start`.
"""
import os
import sys
import tempfile
import time

from birdy import WPSClient

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

    started = time.monotonic()
    print("2. training a small detector for a few epochs (asynchronous; the bar shows progress)")
    trained = client.train(raster=str(scene["dem"]), vector=str(scene["hydro"]), epochs=4,
                           model="fasterrcnn_mobilenet_v3_large_320_fpn", device="auto")
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
