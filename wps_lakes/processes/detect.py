"""WPS process ``detect``: checkpoint + DEM + hydro -> lake boxes over the whole region."""
from pywps import LiteralInput
from pywps.inout.literaltypes import AllowedValue

from .base import LakesProcess
from .io import (
    GEOJSON,
    METADATA,
    checkpoint_input,
    file_output,
    quicklook_output,
    raster_inputs,
    score_threshold_input,
    vector_input,
)


class Detect(LakesProcess):
    uses_gpu = True

    def __init__(self):
        inputs = [
            checkpoint_input("Trained lake detector: a checkpoint of the train process (also one taken while "
                             "training runs) or a thelper ckpt.best.pth. Optional: the bundled model by default.",
                             min_occurs=0),
            *raster_inputs(),
            vector_input("Hydrography", "Waterbody polygons (GeoJSON, zipped Shapefile or GeoPackage, any CRS); "
                         "tiles without water are skipped. TYPECE is not needed."),
            score_threshold_input(),
            LiteralInput("tile_size", "Tile size (pixels)", data_type="integer", default=500, min_occurs=0,
                         abstract="Side of the square tiles the region is cut into.",
                         allowed_values=[AllowedValue(minval=64, maxval=4096)]),
            LiteralInput("tile_overlap", "Tile overlap (pixels)", data_type="integer", default=100, min_occurs=0,
                         abstract="Overlap between neighbouring tiles; detections across borders are merged.",
                         allowed_values=[AllowedValue(minval=0, maxval=2048)]),
            LiteralInput("crs", "Output CRS", data_type="string", default="EPSG:4326", min_occurs=0,
                         abstract="CRS of the output boxes: EPSG:4326 (RFC 7946 GeoJSON) or another EPSG code, "
                                  "written with the legacy crs member."),
        ]
        outputs = [
            file_output("detections", "Lake detections", "Lake boxes with confidence, tile and id (GeoJSON).",
                        GEOJSON),
            quicklook_output("Hillshaded DEM with the waterbodies and the boxes coloured by confidence."),
            file_output("output", "Lake detections", "The main result (same as detections), for portals that "
                        "take one output named output.", GEOJSON),
        ]
        super().__init__(
            identifier="detect", title="Detect lakes",
            abstract="Finds lakes over a whole region: the DEM and the waterbodies are cut into overlapping "
                     "tiles, a trained detector boxes the lakes in each, and boxes seen by several tiles are "
                     "merged.",
            keywords=["lakes", "object detection", "DEM", "hydrography"], metadata=METADATA,
            version="1.0", inputs=inputs, outputs=outputs)

    def handle(self, request, response):
        from ..detector.inference import detect_to_files

        response.update_status("Fetching the inputs", 2)
        paths = detect_to_files(
            self.input_file(request.inputs["checkpoint"][0]) if request.inputs.get("checkpoint") else None,
            self.rasters(request),
            self.input_file(request.inputs["vector"][0]), self.output_dir(),
            score_threshold=self.literal(request, "score_threshold"),
            tile_size=self.literal(request, "tile_size", 500), tile_overlap=self.literal(request, "tile_overlap", 100),
            crs=self.literal(request, "crs", "EPSG:4326"), limits=self.limits(),
            progress=self.tile_progress(response, 5, 95))
        response.publish("detections", paths["detections"])
        response.publish("quicklook", paths["quicklook"])
        response.publish("output", paths["detections"])
