"""WPS process ``split``: waterbodies -> lake and river features."""
from pywps import ComplexInput, LiteralInput
from pywps.response.status import WPS_STATUS

from .base import LakesProcess
from .io import (
    GEOJSON,
    METADATA,
    VECTOR,
    checkpoint_input,
    file_output,
    quicklook_output,
    raster_inputs,
    score_threshold_input,
)


class Split(LakesProcess):
    def __init__(self):
        inputs = [
            ComplexInput(
                "vector", "Waterbodies",
                abstract="Waterbody polygons to split (GeoJSON, zipped Shapefile or GeoPackage, any CRS). "
                         "Lakes and rivers may be merged into one polygon; TYPECE is not needed. "
                         "Every property is kept on the output parts.",
                supported_formats=VECTOR, min_occurs=1, max_occurs=1),
            ComplexInput(
                "detections", "Lake detections",
                abstract="Lake boxes from the detect process (GeoJSON). Give either this, or a checkpoint "
                         "and the DEM to detect them first.",
                supported_formats=VECTOR, min_occurs=0, max_occurs=1),
            checkpoint_input("Trained lake detector, used to detect lakes first when no detections are given."),
            *raster_inputs(min_occurs=0),
            LiteralInput(
                "method", "Split method", data_type="string", default="refined", min_occurs=0,
                allowed_values=["refined", "boxes"],
                abstract="refined (default): cut lakes from rivers at shorelines, necks and level breaks of the "
                         "DEM; rivers crossing a box stay rivers. boxes: the original Testbed-15 cut (water "
                         "inside the union of boxes is lake, the rest river), for comparison."),
            score_threshold_input(),
        ]
        outputs = [
            file_output("lakes", "Lakes", "Lake parts (TYPECE 21) with the waterbody's properties, GeoJSON in "
                        "EPSG:4326.", GEOJSON),
            file_output("rivers", "Rivers", "River parts (TYPECE 10), GeoJSON in EPSG:4326.", GEOJSON),
            file_output("hydro", "Hydrography", "Every part, lake or river, with TYPECE, as one GeoJSON layer.",
                        GEOJSON),
            quicklook_output("Map of the split: lakes and rivers over the waterbodies (and the detections)."),
            file_output("output", "Split hydrography", "The main result (same as hydro), for portals that "
                        "take one output named output.", GEOJSON),
        ]
        super().__init__(
            identifier="split", title="Split waterbodies into lakes and rivers",
            abstract="Splits waterbody polygons into lake and river features using lake detections (or a "
                     "detector checkpoint and the DEM) and, when given, the hydro-flattened DEM: lakes are cut "
                     "at the shoreline, not at a box edge.",
            keywords=["hydrography", "lakes", "rivers", "waterbodies", "split"], metadata=METADATA,
            version="1.0", inputs=inputs, outputs=outputs)

    def needs_gpu(self, wps_request):
        return bool(wps_request.inputs.get("checkpoint"))  # detects first

    def handle(self, request, response):
        from ..hydro.split import split_to_files

        detections = self.input_files(request, "detections")
        checkpoint = self.input_files(request, "checkpoint")
        rasters = self.rasters(request)
        response.update_status("Reading the waterbodies", 5)
        results = []
        paths = split_to_files(
            self.input_file(request.inputs["vector"][0]), self.output_dir(),
            detections=detections[0] if detections else None,
            checkpoint=checkpoint[0] if checkpoint else None, rasters=rasters,
            method=self.literal(request, "method", "refined"),
            score_threshold=self.literal(request, "score_threshold"),
            limits=self.limits(), progress=self.tile_progress(response, 10, 80), on_result=results.append)
        for identifier in ("lakes", "rivers", "hydro", "quicklook"):
            response.publish(identifier, paths[identifier])
        response.publish("output", paths["hydro"])
        # Which evidence decided each waterbody, and whether the DEM was usable over the water.
        response._update_status(WPS_STATUS.SUCCEEDED, f"Split done: {results[0].summary()}", 100)
