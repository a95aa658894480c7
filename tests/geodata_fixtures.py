"""Small real files for the geodata tests: GeoTIFFs and GeoJSON written on the spot, and scenes."""
import json

import numpy as np
import pytest
import rasterio
from affine import Affine

from wps_lakes.geodata import make_scene

WORK_CRS = "EPSG:2959"
X0, Y0 = 320_001.0, 5_088_000.0   # on the 3 m lattice


def write_tif(path, data, x0=X0, y0=Y0, px=3.0, crs=WORK_CRS, nodata=-9999.0, tiled=True):
    """A single-band float32 GeoTIFF, top-left corner (x0, y0)."""
    profile = dict(driver="GTiff", width=data.shape[1], height=data.shape[0], count=1, dtype="float32",
                   transform=Affine(px, 0, x0, 0, -px, y0), nodata=nodata)
    if crs is not None:
        profile["crs"] = crs
    if tiled:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(path, "w", **profile) as out:
        out.write(data.astype(np.float32), 1)
    return path


def plane(x0, y0, px, shape, a=0.01, b=-0.02, c=150.0):
    """Elevations a*x + b*y + c (x, y relative to X0, Y0) at the pixel centres of a grid."""
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    x = x0 + (cols + 0.5) * px - X0
    y = y0 - (rows + 0.5) * px - Y0
    return a * x + b * y + c


def feature(geometry, **properties):
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def write_features(path, features, crs_name=None):
    """A FeatureCollection; ``crs_name`` adds a legacy crs member."""
    collection = {"type": "FeatureCollection", "features": features}
    if crs_name:
        collection["crs"] = {"type": "name", "properties": {"name": crs_name}}
    path.write_text(json.dumps(collection))
    return path


def rect(x0, y0, x1, y1, holes=()):
    """A GeoJSON Polygon for an axis-aligned rectangle, with rectangular holes."""
    def ring(a, b, c, d):
        return [[a, b], [c, b], [c, d], [a, d], [a, b]]
    return {"type": "Polygon", "coordinates": [ring(x0, y0, x1, y1)] + [ring(*h) for h in holes]}


@pytest.fixture(scope="session")
def scene(tmp_path_factory):
    """A small synthetic scene (1.5 km, seed 3): the paths and the parsed truth."""
    paths = make_scene(tmp_path_factory.mktemp("scene"), seed=3, size_m=1500)
    return paths, json.loads(paths["truth"].read_text())
