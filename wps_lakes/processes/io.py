"""Formats and input/output definitions shared by the processes, so each is described once."""
from pywps import ComplexInput, ComplexOutput, Format, LiteralInput
from pywps.app.Common import Metadata
from pywps.inout.literaltypes import AllowedValue

# GeoTIFF is listed twice: OGC clients send the subtype, birdy guesses plain image/tiff from `.tif`.
GEOTIFF = [Format("image/tiff; subtype=geotiff", extension=".tif"), Format("image/tiff", extension=".tif")]
GEOJSON = Format("application/geo+json", extension=".geojson")
VECTOR = [GEOJSON, Format("application/json", extension=".json"),
          Format("application/vnd.geo+json", extension=".geojson"),
          Format("application/x-zipped-shp", extension=".zip"),
          Format("application/geopackage+sqlite3", extension=".gpkg")]
CHECKPOINT = Format("application/octet-stream", extension=".pth")
JSON = Format("application/json", extension=".json")
PNG = Format("image/png", extension=".png")
TEXT = Format("text/plain", extension=".txt")

METADATA = [
    Metadata("Documentation", "https://github.com/wps-lakes/wps_lakes/tree/main/docs"),
    Metadata("OGC Testbed-15 Machine Learning Engineering Report (OGC 19-027r2)",
             "https://docs.ogc.org/per/19-027r2.html"),
]


def raster_inputs(min_occurs=1):
    """The DEM: ``raster`` (one GeoTIFF) and ``adjacent_raster`` (more tiles, mosaicked with it).

    Two inputs rather than one that occurs many times: birdy's command line (0.10) sends an input
    that may occur more than once as the text of a Python tuple, so ``birdy train --raster`` would
    break for everyone; only users with several tiles need ``adjacent_raster``."""
    return [
        ComplexInput(
            "raster", "Digital elevation model (GeoTIFF)",
            abstract="High-resolution DEM as GeoTIFF, any CRS and resolution (reprojected to the work SRS, "
                     "EPSG:2959 at 3 m by default).",
            supported_formats=GEOTIFF, min_occurs=min_occurs, max_occurs=1),
        ComplexInput(
            "adjacent_raster", "Adjacent DEM tiles (GeoTIFF)",
            abstract="More DEM tiles next to raster, mosaicked with it (up to 19). Give them with OWSLib or "
                     "birdy.WPSClient: birdy's command line cannot send an input given more than once.",
            supported_formats=GEOTIFF, min_occurs=0, max_occurs=19),
    ]


def vector_input(title, abstract):
    return ComplexInput("vector", title, abstract=abstract, supported_formats=VECTOR, min_occurs=1, max_occurs=1)


def checkpoint_input(abstract, min_occurs=0):
    return ComplexInput("checkpoint", "Model checkpoint (.pth)", abstract=abstract,
                        supported_formats=[CHECKPOINT], min_occurs=min_occurs, max_occurs=1)


def score_threshold_input():
    return LiteralInput(
        "score_threshold", "Score threshold", data_type="float", min_occurs=0,
        abstract="Detections scoring below this confidence are dropped (0 to 1). Default: the checkpoint's "
                 "calibrated threshold (best F1 on its validation), or 0.5 for a checkpoint without one.",
        allowed_values=[AllowedValue(minval=0.0, maxval=1.0)])


def file_output(identifier, title, abstract, fmt):
    return ComplexOutput(identifier, title, abstract=abstract, supported_formats=[fmt], as_reference=True)


def quicklook_output(abstract):
    return file_output("quicklook", "Quicklook (PNG)", abstract, PNG)
