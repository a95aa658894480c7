"""Grid: a north-up pixel grid in the work SRS, on one global pixel lattice.

Every grid the library makes (DEM mosaic, training windows, inference tiles) has its corners on
multiples of the pixel size, so grids of the same pixel size line up pixel for pixel and a window
is a plain slice of the mosaic.
"""
import math
from dataclasses import dataclass
from functools import lru_cache

from affine import Affine
from pyproj import CRS

# Coordinates within this fraction of a pixel of a lattice line count as on it (float noise).
SNAP_TOLERANCE = 1e-6


def crs_string(crs):
    """One spelling per CRS ("EPSG:2959" where it has a code, else WKT), so grids compare equal."""
    return _normalised(crs if isinstance(crs, str) else CRS.from_user_input(crs).to_wkt())


@lru_cache(maxsize=64)
def _normalised(text):
    parsed = CRS.from_user_input(text)
    epsg = parsed.to_epsg()
    return f"EPSG:{epsg}" if epsg else parsed.to_wkt()


@dataclass(frozen=True)
class Grid:
    """``width`` x ``height`` pixels of ``px_size`` map units, top-left corner at ``(x0, y0)``."""

    x0: float
    y0: float
    px_size: float
    width: int
    height: int
    crs: str

    def __post_init__(self):
        if self.px_size <= 0 or self.width < 0 or self.height < 0:
            raise ValueError(f"invalid grid: px_size={self.px_size}, width={self.width}, height={self.height}")
        object.__setattr__(self, "crs", crs_string(self.crs))

    @classmethod
    def from_bounds(cls, bounds, px_size, crs):
        """The smallest grid on the global lattice that covers ``(xmin, ymin, xmax, ymax)``."""
        xmin, ymin, xmax, ymax = bounds
        col0, col1 = snap_outward(xmin / px_size, xmax / px_size)
        row0, row1 = snap_outward(ymin / px_size, ymax / px_size)
        return cls(col0 * px_size, row1 * px_size, px_size, col1 - col0, row1 - row0, crs)

    @property
    def transform(self):
        return Affine(self.px_size, 0.0, self.x0, 0.0, -self.px_size, self.y0)

    @property
    def bounds(self):
        return (self.x0, self.y0 - self.height * self.px_size, self.x0 + self.width * self.px_size, self.y0)

    @property
    def shape(self):
        return (self.height, self.width)

    def offset_in(self, other):
        """``(col, row)`` of this grid's top-left pixel in ``other`` (same lattice, maybe outside it)."""
        col = (self.x0 - other.x0) / self.px_size
        row = (other.y0 - self.y0) / self.px_size
        return round(col), round(row)

    def is_aligned_with(self, other):
        """Same CRS and pixel size, and corners on the same lattice: a window is a plain slice."""
        if self.crs != other.crs or not math.isclose(self.px_size, other.px_size, rel_tol=1e-9):
            return False
        col = (self.x0 - other.x0) / self.px_size
        row = (other.y0 - self.y0) / self.px_size
        return abs(col - round(col)) < SNAP_TOLERANCE and abs(row - round(row)) < SNAP_TOLERANCE

    def subgrid(self, col, row, width, height):
        """The grid of ``width`` x ``height`` pixels starting at pixel ``(col, row)`` of this one."""
        return Grid(self.x0 + col * self.px_size, self.y0 - row * self.px_size, self.px_size, width, height, self.crs)

    def intersection(self, other):
        """The part of this grid inside ``other`` (same lattice), or None if they do not overlap."""
        col, row = other.offset_in(self)
        col0, row0 = max(col, 0), max(row, 0)
        col1, row1 = min(col + other.width, self.width), min(row + other.height, self.height)
        if col1 <= col0 or row1 <= row0:
            return None
        return self.subgrid(col0, row0, col1 - col0, row1 - row0)

    def to_pixels(self, bounds):
        """Map bounds ``(xmin, ymin, xmax, ymax)`` -> fractional pixel bounds ``(col0, row0, col1, row1)``."""
        xmin, ymin, xmax, ymax = bounds
        return ((xmin - self.x0) / self.px_size, (self.y0 - ymax) / self.px_size,
                (xmax - self.x0) / self.px_size, (self.y0 - ymin) / self.px_size)


def snap_outward(low, high):
    """Integer lattice lines enclosing ``[low, high]`` (in pixel units), ignoring float noise."""
    return math.floor(low + SNAP_TOLERANCE), math.ceil(high - SNAP_TOLERANCE)
