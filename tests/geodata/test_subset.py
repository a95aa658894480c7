"""geodata.subset: DEM crops (GeoTIFF and CF NetCDF), vector clips, extents in lon/lat, map x/y and pixels."""
import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import xarray as xr
from rasterio.warp import transform_bounds
from shapely.geometry import box

from wps_lakes.errors import LakesError
from wps_lakes.geodata import make_scene
from wps_lakes.geodata.subset import (
    Extent,
    OutsideError,
    clip_vector,
    crop_dem,
    netcdf_to_geotiff,
    raster_format,
    vector_crs,
)


def write_netcdf_dem(tif, path, ascending=True, extra=None):
    """A CF NetCDF copy of a GeoTIFF DEM: variable ``elevation`` with a grid mapping (rioxarray's
    ``spatial_ref``), rows stored south to north unless ``ascending`` is False."""
    import rioxarray

    dem = rioxarray.open_rasterio(tif, masked=True).squeeze("band", drop=True)
    if ascending:
        dem = dem.isel(y=slice(None, None, -1))
    dem = dem.astype("float32")
    dem.name = "elevation"
    dem.attrs = {"standard_name": "surface_altitude", "units": "m", "long_name": "ground elevation"}
    dataset = dem.to_dataset()
    dataset["x"].attrs.update(standard_name="projection_x_coordinate", units="m")
    dataset["y"].attrs.update(standard_name="projection_y_coordinate", units="m")
    for name, values in (extra or {}).items():
        dataset[name] = (("y", "x"), values)
    dataset = dataset.rio.write_crs(dem.rio.crs)
    dataset["elevation"].encoding.update(_FillValue=np.float32(-9999.0), zlib=True)
    dataset.to_netcdf(path, engine="netcdf4")
    return path


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("subset-scene")
    paths = make_scene(folder, seed=3, size_m=1500)
    paths["netcdf"] = write_netcdf_dem(paths["dem"], folder / "dem.nc")
    with rasterio.open(paths["dem"]) as src:
        paths["bounds"] = tuple(src.bounds)
        paths["elevation"] = src.read(1, masked=True)
        paths["transform"] = src.transform
    return paths


def lonlat_quarter(scene):
    """The south-west quarter of the scene in lon/lat (a box inside the projected DEM)."""
    xmin, ymin, xmax, ymax = scene["bounds"]
    lon0, lat0, lon1, lat1 = transform_bounds("EPSG:2959", "EPSG:4326", xmin + 100, ymin + 100,
                                              (xmin + xmax) / 2, (ymin + ymax) / 2)
    return Extent(x=(lon0, lon1), y=(lat1, lat0), units="lonlat", label="domain d0")  # lat given north first


def read(path):
    with rasterio.open(path) as src:
        return src.read(1, masked=True), src.transform, src.crs


def test_formats_are_told_by_content(scene, tmp_path):
    assert raster_format(scene["dem"]) == "geotiff"
    assert raster_format(scene["netcdf"]) == "netcdf"
    renamed = tmp_path / "elevation.tif"
    renamed.write_bytes(scene["netcdf"].read_bytes())
    assert raster_format(renamed) == "netcdf"
    assert raster_format(scene["hydro"]) is None


def test_netcdf_to_geotiff_is_the_dem(scene, tmp_path):
    """Rows stored south to north come out north-up, same grid, same values, nodata masked."""
    cropped = netcdf_to_geotiff(scene["netcdf"], tmp_path / "dem.tif")
    values, transform, crs = read(cropped.path)
    assert crs.to_epsg() == 2959
    assert transform.almost_equals(scene["transform"])
    assert values.shape == scene["elevation"].shape
    assert np.array_equal(values.mask, scene["elevation"].mask)
    assert np.allclose(values.compressed(), scene["elevation"].compressed())
    assert cropped.area.bounds == pytest.approx(scene["bounds"])


def test_lonlat_crop_same_from_geotiff_and_netcdf(scene, tmp_path):
    extent = lonlat_quarter(scene)
    from_tif = crop_dem(scene["dem"], tmp_path / "a.tif", extent)
    from_nc = crop_dem(scene["netcdf"], tmp_path / "b.tif", extent)
    a, ta, _ = read(from_tif.path)
    b, tb, _ = read(from_nc.path)
    assert a.shape == b.shape and ta.almost_equals(tb)
    assert np.ma.allclose(a, b)
    # the crop covers the extent (snapped outward to whole pixels) and is a slice of the DEM
    wanted = transform_bounds("EPSG:4326", "EPSG:2959", extent.x[0], extent.y[0], extent.x[1], extent.y[1])
    got = from_tif.area.bounds
    assert got[0] <= wanted[0] and got[1] <= wanted[1] and got[2] >= wanted[2] and got[3] >= wanted[3]
    assert got[2] - got[0] < wanted[2] - wanted[0] + 2 * 3.0 + 1e-6
    col, row = ~scene["transform"] @ (ta.c, ta.f)
    col, row = round(col), round(row)
    assert np.ma.allclose(a, scene["elevation"][row:row + a.shape[0], col:col + a.shape[1]])


def test_pixel_and_map_extents(scene, tmp_path):
    pixels = crop_dem(scene["dem"], tmp_path / "p.tif", Extent(x=(10, 109), y=(200, 249), units="pixels"))
    values, _, _ = read(pixels.path)
    assert values.shape == (50, 100) == pixels.shape
    assert np.ma.allclose(values, scene["elevation"][200:250, 10:110])
    # indices are positions as stored: in the NetCDF copy rows run south to north
    from_nc = crop_dem(scene["netcdf"], tmp_path / "pn.tif", Extent(x=(10, 109), y=(200, 249), units="pixels"))
    nc_values, _, _ = read(from_nc.path)
    rows = scene["elevation"].shape[0]
    assert np.ma.allclose(nc_values, scene["elevation"][rows - 250:rows - 200, 10:110])
    xmin, ymin, _, _ = scene["bounds"]
    mapped = crop_dem(scene["dem"], tmp_path / "m.tif",
                      Extent(x=(xmin + 30, xmin + 60), y=(ymin + 3, ymin + 9), units="map"))
    assert mapped.shape == (2, 10)
    assert mapped.area.bounds == pytest.approx((xmin + 30, ymin + 3, xmin + 60, ymin + 9))


def test_no_extent_keeps_a_geotiff_as_it_is(scene, tmp_path):
    kept = crop_dem(scene["dem"], tmp_path / "unused.tif")
    assert kept.path == scene["dem"] and not (tmp_path / "unused.tif").exists()


def test_extent_outside_names_domain_and_data(scene, tmp_path):
    far = Extent(x=(10, 11), y=(10, 11), label="domain far")
    for source in (scene["dem"], scene["netcdf"]):
        with pytest.raises(OutsideError) as caught:
            crop_dem(source, tmp_path / "x.tif", far)
        assert "domain far" in str(caught.value) and source.name in str(caught.value)
        assert str(tmp_path) not in str(caught.value)
    with pytest.raises(OutsideError, match="500 columns"):
        crop_dem(scene["dem"], tmp_path / "x.tif", Extent(x=(600, 700), units="pixels"))
    with pytest.raises(OutsideError, match="domain far"):
        clip_vector(scene["hydro"], tmp_path / "x.geojson", far)


def test_clip_vector_in_lonlat_and_to_a_dem_area(scene, tmp_path):
    extent = lonlat_quarter(scene)
    out = clip_vector(scene["hydro"], tmp_path / "hydro.geojson", extent)
    data = json.loads(out.read_text())
    assert "crs" not in data and data["features"]  # RFC 7946
    clipped = gpd.read_file(out)
    whole = gpd.read_file(scene["hydro"])
    assert 0 < len(clipped) <= len(whole)
    assert set(clipped["TYPECE"]) <= {"10", "21"} and "OBJECTID" in clipped
    inside = box(extent.x[0], extent.y[0], extent.x[1], extent.y[1]).buffer(1e-9)
    assert clipped.geometry.within(inside).all()
    assert clipped.geom_type.isin(["Polygon", "MultiPolygon"]).all()
    # a pixel extent cuts vectors through the DEM crop's area
    cropped = crop_dem(scene["dem"], tmp_path / "p.tif", Extent(x=(100, 399), y=(100, 399), units="pixels"))
    by_area = gpd.read_file(clip_vector(scene["hydro"], tmp_path / "h2.geojson", area=cropped.area)).to_crs(2959)
    assert by_area.geometry.within(box(*cropped.area.bounds).buffer(1e-3)).all()
    with pytest.raises(LakesError, match="pixel indices"):
        clip_vector(scene["hydro"], tmp_path / "h3.geojson", Extent(x=(0, 9), units="pixels"))
    assert vector_crs(scene["hydro"]) == "EPSG:4326"


def test_netcdf_variable_choice(scene, tmp_path):
    shape = scene["elevation"].shape
    path = write_netcdf_dem(scene["dem"], tmp_path / "two.nc", extra={"slope": np.zeros(shape, "float32")})
    chosen = netcdf_to_geotiff(path, tmp_path / "a.tif")  # elevation: the standard_name says so
    assert np.ma.allclose(read(chosen.path)[0], scene["elevation"])
    slope = netcdf_to_geotiff(path, tmp_path / "b.tif", variable="slope")
    assert float(read(slope.path)[0].max()) == 0.0
    with pytest.raises(LakesError, match="no variable 'z'"):
        netcdf_to_geotiff(path, tmp_path / "c.tif", variable="z")
    unnamed = tmp_path / "unnamed.nc"
    with xr.open_dataset(path) as dataset:
        dataset["elevation"].attrs.pop("standard_name")
        dataset.to_netcdf(unnamed)
    with pytest.raises(LakesError, match="elevation, slope"):
        netcdf_to_geotiff(unnamed, tmp_path / "d.tif")


def test_netcdf_with_several_time_steps_is_refused(scene, tmp_path):
    path = write_netcdf_dem(scene["dem"], tmp_path / "one.nc")
    with xr.open_dataset(path, decode_coords="all") as dataset:
        stacked = xr.concat([dataset["elevation"], dataset["elevation"]], dim="time")
        stacked.to_dataset().to_netcdf(tmp_path / "time.nc")
    with pytest.raises(LakesError, match="2 steps along 'time'"):
        netcdf_to_geotiff(tmp_path / "time.nc", tmp_path / "t.tif")
    (tmp_path / "bad.nc").write_bytes(b"CDF\x01 not really")
    with pytest.raises(LakesError, match="could not be read as NetCDF"):
        crop_dem(tmp_path / "bad.nc", tmp_path / "b.tif")
