"""DEM + hydro in, labels, tensors, tiles, synthetic scenes: the library core (no pywps, no torch)."""
from .grid import Grid
from .labels import Window, focal_lakes, ground_truth_boxes, training_windows
from .rasters import Dem, open_dem
from .sampling import spatial_split
from .synthetic import make_scene
from .tensors import SCALINGS, build_tensor
from .tiles import Tile, iter_tiles, tile_grids
from .vectors import LAKE, RIVER, check_overlap, check_typece, read_vector, write_geojson

__all__ = [
    "Grid", "Dem", "open_dem", "read_vector", "write_geojson", "check_typece", "check_overlap", "LAKE", "RIVER",
    "Window", "focal_lakes", "training_windows", "ground_truth_boxes", "SCALINGS", "build_tensor",
    "Tile", "iter_tiles", "tile_grids", "spatial_split", "make_scene",
]
