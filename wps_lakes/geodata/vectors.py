"""read_vector() and write_geojson(): the library's one vector reader and one GeoJSON writer.

The reader takes GeoJSON (RFC 7946 lon/lat, or with a legacy ``crs`` member), a Shapefile (also a
.zip holding one) or a GeoPackage, keeps only polygons, repairs invalid ones where the result is
still a polygon, and returns them in the work SRS with ``TYPECE`` normalised to "10"/"21".
"""
import datetime
import json
import logging
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError, ProjError
from shapely.errors import ShapelyError
from shapely.geometry import mapping, shape

from ..errors import LakesError
from ..limits import DEFAULT_LIMITS
from .grid import crs_string

log = logging.getLogger(__name__)

RIVER = "10"
LAKE = "21"
TYPECE = "TYPECE"
OBJECTID = "OBJECTID"

GEOJSON_SUFFIXES = (".geojson", ".json")
OGR_SUFFIXES = (".shp", ".zip", ".gpkg")
POLYGON_TYPES = ("Polygon", "MultiPolygon")
RFC7946_CRS = "EPSG:4326"  # lon/lat; geopandas transforms with always_xy, so axis order is x = lon
FORMATS_HINT = "use GeoJSON (.geojson/.json), a Shapefile (.shp, or a .zip holding one) or a GeoPackage (.gpkg)"


def read_vector(path, srs="EPSG:2959", require_typece=False, limits=DEFAULT_LIMITS, allow_empty=False):
    """Waterbody polygons from ``path`` in ``srs``: one row per feature, properties kept.
    ``allow_empty``: a layer without any polygon is an empty frame, not an error (lake detections)."""
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise LakesError(f"vector file {name!r} was not found")
    suffix = path.suffix.lower()
    if suffix in GEOJSON_SUFFIXES:
        features = _read_geojson(path, name, limits)
    elif suffix in OGR_SUFFIXES:
        features = _read_ogr(path, name, limits)
    else:
        raise LakesError(f"{name}: unsupported vector format {suffix!r}; {FORMATS_HINT}")
    features = _canonical_columns(features)
    features = _polygons_only(features, name, allow_empty)
    vertices = int(shapely.get_num_coordinates(features.geometry.values).sum())
    limits.check("max_vector_vertices", vertices, f"the number of vertices in {name}")
    features = _repaired(_to_crs(features, srs, name), name)
    if require_typece:
        check_typece(features, name)
    return features.reset_index(drop=True)


def _to_crs(features, srs, name):
    try:
        return features.to_crs(srs)
    except (ProjError, CRSError):
        raise LakesError(f"{name}: its coordinates cannot be transformed from its CRS ({features.crs.name}) to "
                         f"{srs}; give the layer in a CRS of the Earth (e.g. EPSG:4326 or EPSG:2959)") from None


def check_typece(features, name="the hydro layer"):
    """Raise LakesError unless every feature has a TYPECE code (labels need it)."""
    hint = f'labels need TYPECE "{RIVER}" (river) or "{LAKE}" (lake) on every feature'
    if TYPECE not in features.columns:
        raise LakesError(f"{name} has no TYPECE attribute; {hint}")
    missing = features[TYPECE].isna()
    if missing.any():
        raise LakesError(f"{name}: {int(missing.sum())} feature(s) have no TYPECE value "
                         f"(e.g. {_feature_label(features, missing.idxmax())}); {hint}")


def write_geojson(gdf, path, crs="EPSG:4326"):
    """Write ``gdf`` as a GeoJSON FeatureCollection in ``crs``.

    EPSG:4326 gives RFC 7946 (lon/lat, exterior rings counter-clockwise, no ``crs`` member); any other
    CRS writes its coordinates with the legacy member ``"urn:ogc:def:crs:EPSG::<code>"``.
    """
    if gdf.crs is None:
        raise ValueError("write_geojson needs a GeoDataFrame with a CRS")
    target = crs_string(crs)
    if not target.startswith("EPSG:"):
        raise LakesError(f"cannot write GeoJSON in a CRS without an EPSG code: {crs!r}")
    out = gdf.to_crs(target)
    geometries = out.geometry.values
    collection = {"type": "FeatureCollection"}
    if target == RFC7946_CRS:
        geometries = shapely.orient_polygons(geometries)
    else:
        collection["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{target[5:]}"}}
    records = pd.DataFrame(out.drop(columns=out.geometry.name)).to_dict("records")
    collection["features"] = [
        {"type": "Feature",
         "properties": {str(k): _json_value(v) for k, v in record.items()},
         "geometry": None if geometry is None or geometry.is_empty else mapping(geometry)}
        for record, geometry in zip(records, geometries, strict=True)
    ]
    Path(path).write_text(json.dumps(collection, allow_nan=False))
    return Path(path)


def _json_value(value):
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or value is pd.NaT:
        return None
    if isinstance(value, (datetime.date, datetime.time, pd.Timestamp)):
        return value.isoformat()
    if isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return str(value)


# ---------------------------------------------------------------------------------------------
# readers


# A GeoJSON position is an array whose first member is a number: "[" then a number. Counting them
# in the raw bytes bounds the vertices before the file is parsed (a parsed vertex costs ~100 bytes).
_JSON_SPACE = np.frombuffer(b" \t\r\n", dtype=np.uint8)
_NUMBER_START = np.frombuffer(b"-+.0123456789", dtype=np.uint8)


def _count_positions(raw):
    """The number of GeoJSON positions in ``raw`` (an upper bound: a string property may add some)."""
    data = np.frombuffer(raw, dtype=np.uint8)
    data = data[~np.isin(data, _JSON_SPACE)]
    opens = np.flatnonzero(data[:-1] == ord("["))
    return int(np.isin(data[opens + 1], _NUMBER_START).sum())


def _read_geojson(path, name, limits):
    raw = path.read_bytes()
    if raw.count(b"[") > limits.max_vector_vertices:
        limits.check("max_vector_vertices", _count_positions(raw), f"the number of vertices in {name}")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise LakesError(f"{name} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except UnicodeDecodeError:
        raise LakesError(f"{name} is not valid JSON (it is not UTF-8 text)") from None
    except RecursionError:
        raise LakesError(f"{name} is not GeoJSON: its JSON is nested too deeply") from None
    except ValueError as exc:  # e.g. a number with more digits than Python converts
        raise LakesError(f"{name} is not valid JSON ({str(exc)[:100]})") from None
    if not isinstance(data, dict) or data.get("type") != "FeatureCollection" \
            or not isinstance(data.get("features"), list):
        raise LakesError(f"{name} is not a GeoJSON FeatureCollection (a JSON object with "
                         f'"type": "FeatureCollection" and a "features" list)')
    features = data["features"]
    limits.check("max_vector_features", len(features), f"the number of features in {name}")
    crs = _geojson_crs(data.get("crs"), name)
    geometries, properties = [], []
    for i, feature in enumerate(features):
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise LakesError(f'{name}: feature {i} is not a GeoJSON Feature (an object with "type": "Feature")')
        geometry = feature.get("geometry")
        try:
            geometries.append(shape(geometry) if geometry else None)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, ShapelyError) as exc:
            raise LakesError(f"{name}: feature {i} has a malformed geometry ({exc})") from None
        props = feature.get("properties")
        properties.append(props if isinstance(props, dict) else {})
    gdf = gpd.GeoDataFrame(pd.DataFrame.from_records(properties, index=range(len(features))),
                           geometry=gpd.GeoSeries(geometries, index=range(len(features))), crs=crs)
    xmin, ymin, xmax, ymax = gdf.total_bounds
    if CRS.from_user_input(crs).is_geographic and np.isfinite(xmin):
        if not (-180.5 <= xmin and xmax <= 360 and -90.5 <= ymin and ymax <= 90.5):
            raise LakesError(f"{name}: coordinates such as ({xmin:.0f}, {ymin:.0f}) are not longitude/latitude, "
                             f"but the file names no other CRS; write it as RFC 7946 (lon/lat) or add a crs member, "
                             f'e.g. "crs": {{"type": "name", "properties": {{"name": "urn:ogc:def:crs:EPSG::2959"}}}}')
    return gdf


def _geojson_crs(member, name):
    """The CRS of a legacy ``crs`` member; none means RFC 7946 lon/lat."""
    if member is None:
        return RFC7946_CRS
    props = member.get("properties") if isinstance(member, dict) else None
    kind = member.get("type") if isinstance(member, dict) else None
    if kind == "name" and isinstance(props, dict) and isinstance(props.get("name"), str):
        text = props["name"]
    elif kind == "EPSG" and isinstance(props, dict) and isinstance(props.get("code"), int):
        text = f"EPSG:{props['code']}"
    else:
        raise LakesError(f'{name}: unsupported "crs" member; omit it (RFC 7946 lon/lat) or name an EPSG code, '
                         f'e.g. {{"type": "name", "properties": {{"name": "urn:ogc:def:crs:EPSG::2959"}}}}')
    try:
        return crs_string(text)
    except CRSError:
        raise LakesError(f"{name}: unknown CRS {text[:80]!r} in its crs member; use an EPSG code such as "
                         f'"urn:ogc:def:crs:EPSG::2959" or "EPSG:2959"') from None


def _read_ogr(path, name, limits):
    try:
        layers = [(layer, geometry_type) for layer, geometry_type in pyogrio.list_layers(path) if geometry_type]
    except pyogrio.errors.DataSourceError:
        raise LakesError(f"{name} could not be read as a vector dataset; {FORMATS_HINT}") from None
    if len(layers) != 1:
        found = ", ".join(layer for layer, _ in layers) or "none"
        raise LakesError(f"{name} must hold exactly one layer with geometries (found: {found}); "
                         f"export the waterbody layer alone")
    layer = layers[0][0]
    try:
        count = pyogrio.read_info(path, layer=layer)["features"]
        limits.check("max_vector_features", count, f"the number of features in {name}")
        gdf = pyogrio.read_dataframe(path, layer=layer)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, pyogrio.errors.FieldError) as exc:
        raise LakesError(f"{name} could not be read ({exc})") from None
    if gdf.crs is None:
        raise LakesError(f"{name} has no coordinate reference system (for a Shapefile, the .prj file is "
                         f"missing); add one and try again")
    return gdf


# ---------------------------------------------------------------------------------------------
# clean-up shared by all formats


def _canonical_columns(gdf):
    """TYPECE and OBJECTID under their canonical names whatever their case; TYPECE codes as strings."""
    renames = {}
    for column in gdf.columns:
        if column != gdf.geometry.name and column.upper() in (TYPECE, OBJECTID) and column.upper() not in gdf.columns:
            renames[column] = column.upper()
    gdf = gdf.rename(columns=renames)
    if TYPECE in gdf.columns:
        gdf[TYPECE] = pd.Series([_typece_code(v) for v in gdf[TYPECE]], index=gdf.index, dtype=object)
    return gdf


def _typece_code(value):
    """10, 10.0, "10", " 10 " -> "10"; missing -> None; any other text is kept as it is."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text or None
    return str(int(number)) if number.is_integer() else text


def _feature_label(gdf, index):
    if OBJECTID in gdf.columns and pd.notna(gdf.at[index, OBJECTID]):
        return f"OBJECTID {gdf.at[index, OBJECTID]}"
    return f"feature {index}"


def _polygons_only(gdf, name, allow_empty=False):
    """Drop null and empty geometries; refuse anything that is not a polygon."""
    geometries = gdf.geometry.values
    empty = shapely.is_missing(geometries) | shapely.is_empty(geometries)
    if empty.any():
        log.warning("%s: dropped %d feature(s) with an empty geometry", name, int(empty.sum()))
        gdf = gdf[~empty]
    if gdf.empty and not allow_empty:
        raise LakesError(f"{name} holds no polygon: every feature is empty; give a layer of waterbody polygons")
    types = gdf.geom_type
    wrong = ~types.isin(POLYGON_TYPES)
    if wrong.any():
        kinds = ", ".join(sorted(set(types[wrong])))
        raise LakesError(f"{name}: {int(wrong.sum())} feature(s) are not polygons ({kinds}; e.g. "
                         f"{_feature_label(gdf, wrong.idxmax())}); the hydro layer must hold only waterbody "
                         f"polygons (Polygon or MultiPolygon): remove the other features")
    return gdf


def _repaired(gdf, name):
    """Invalid polygons -> shapely.make_valid; refuse those whose repair leaves no polygon."""
    invalid = ~shapely.is_valid(gdf.geometry.values)
    if not invalid.any():
        return gdf
    gdf = gdf.copy()
    failed = []
    for index in gdf.index[invalid]:
        geometry = gdf.at[index, gdf.geometry.name]
        fixed = geometry
        for _ in range(3):  # a repair can itself be invalid (parts sharing an edge): repair it again
            fixed = _polygonal_part(shapely.make_valid(fixed, method="structure", keep_collapsed=False))
            if fixed is None or fixed.is_valid:
                break
        if fixed is None or not fixed.is_valid:
            failed.append(f"{_feature_label(gdf, index)}: {shapely.is_valid_reason(geometry)}")
        else:
            gdf.at[index, gdf.geometry.name] = fixed
    if failed:
        raise LakesError(f"{name}: {len(failed)} invalid polygon(s) could not be repaired ({'; '.join(failed[:5])}); "
                         f"fix or remove them")
    log.info("%s: repaired %d invalid polygon(s)", name, int(invalid.sum()))
    return gdf


def _polygonal_part(geometry):
    """The Polygon/MultiPolygon part of a repaired geometry, or None if nothing polygonal is left."""
    if geometry.geom_type in POLYGON_TYPES:
        return None if geometry.is_empty else geometry
    parts = [part for part in shapely.get_parts(geometry) if part.geom_type in POLYGON_TYPES and not part.is_empty]
    return shapely.union_all(parts) if parts else None


def check_overlap(hydro, grid):
    """Raise LakesError unless some hydro polygon lies on ``grid`` (the DEM)."""
    xmin, ymin, xmax, ymax = grid.bounds
    if hydro.empty:
        raise LakesError("the hydro layer holds no polygon; give waterbody polygons over the DEM")
    hx0, hy0, hx1, hy1 = hydro.total_bounds
    if hx1 <= xmin or hx0 >= xmax or hy1 <= ymin or hy0 >= ymax:
        raise LakesError(f"the DEM and the hydro layer do not overlap (in {grid.crs}, the DEM covers "
                         f"x {xmin:.0f}..{xmax:.0f}, y {ymin:.0f}..{ymax:.0f}; the hydro layer covers "
                         f"x {hx0:.0f}..{hx1:.0f}, y {hy0:.0f}..{hy1:.0f}); give layers of the same area")
    if not len(hydro.sindex.query(shapely.box(xmin, ymin, xmax, ymax), predicate="intersects")):
        raise LakesError("no water in the area: no hydro polygon lies on the DEM; give a hydro layer with "
                         "waterbodies inside the DEM extent")
