"""PNG quicklooks of detections and splits: hillshaded DEM, waterbodies, boxes coloured by confidence.

Drawn with matplotlib's Agg canvas (no display, no pyplot state). The DEM is read and the waterbodies
are rasterised on one coarse grid (at most ``MAX_SIDE_PX`` a side), so the image, the memory and the
time stay bounded whatever the raster size or the number of polygons; boxes are drawn as lines.
"""
import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LightSource, Normalize, to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from rasterio.enums import Resampling
from rasterio.features import rasterize

from .grid import Grid

MAX_SIDE_PX = 600           # hillshade pixels along the longer side (the figure shows about as many)
FIGURE_INCHES, DPI = 8, 100  # at most 800 x 800 px
LAKE_COLOUR, RIVER_COLOUR, WATER_COLOUR = "#1f4fd1", "#3fc1c9", "#6fa8dc"
CONFIDENCE_COLOURS = "plasma"
LAKE_EVIDENCE_COLOURS = (LAKE_COLOUR, "#7b3fc9", "#0b7a3e", "#c93f6f")  # per split_evidence value


def detections_quicklook(path, detections, waterbodies, dem=None):
    """Hillshade, waterbodies and the detected boxes coloured by ``confidence``; writes ``path``."""
    fig, ax = _figure()
    bounds = _bounds(waterbodies, detections)
    _picture(ax, dem, bounds, waterbodies.crs, [(waterbodies, WATER_COLOUR)])
    cmap = colormaps[CONFIDENCE_COLOURS]
    fig.colorbar(ScalarMappable(norm=Normalize(0.0, 1.0), cmap=cmap), ax=ax, shrink=0.7, label="confidence")
    for box, score in zip(detections.geometry, detections["confidence"], strict=True):
        _box(ax, box, cmap(float(score)))
    ax.set_title(f"{len(detections)} lake detection(s)")
    return _save(fig, ax, bounds, path)


def split_quicklook(path, result, dem=None, detections=None):
    """Hillshade, lakes and rivers of a ``SplitResult``, and the boxes used if any; writes ``path``."""
    fig, ax = _figure()
    bounds = _bounds(result.hydro, detections)
    # lakes coloured by the evidence that decided them (the split_evidence property)
    evidence = result.lakes.get("split_evidence", None)
    groups = {} if result.lakes.empty else dict(iter(result.lakes.groupby(
        evidence if evidence is not None else np.full(len(result.lakes), "lakes"), sort=True)))
    handles, layers = [], [(result.rivers, RIVER_COLOUR)]
    for i, (why, parts) in enumerate(groups.items()):
        colour = LAKE_EVIDENCE_COLOURS[i % len(LAKE_EVIDENCE_COLOURS)]
        layers.append((parts, colour))
        handles.append(Rectangle((0, 0), 1, 1, color=colour, label=f"lakes by {why} ({len(parts)})"))
    _picture(ax, dem, bounds, result.hydro.crs, layers)
    if detections is not None:
        for box in detections.to_crs(result.hydro.crs).geometry:
            _box(ax, box, "#e8a33d", linestyle="--")
    if not handles:
        handles.append(Rectangle((0, 0), 1, 1, color=LAKE_COLOUR, label="lakes (0)"))
    handles.append(Rectangle((0, 0), 1, 1, color=RIVER_COLOUR, label=f"rivers ({len(result.rivers)})"))
    ax.legend(handles=handles, loc="upper right", fontsize="small")
    summary = getattr(result, "summary", None)
    if summary is not None:
        ax.set_title(f"split: {summary()}", fontsize="small", wrap=True)
    return _save(fig, ax, bounds, path)


def _figure():
    fig = Figure(figsize=(FIGURE_INCHES, FIGURE_INCHES), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _bounds(frame, detections):
    """Map bounds to draw: the layer's, grown to the boxes; a unit square around nothing."""
    frames = [f for f in (frame, detections) if f is not None and not f.empty]
    if not frames:
        return (0.0, 0.0, 1.0, 1.0)
    xmin, ymin, xmax, ymax = np.array([f.to_crs(frame.crs).total_bounds for f in frames]).T
    return xmin.min(), ymin.min(), xmax.max(), ymax.max()


def _picture(ax, dem, bounds, crs, layers):
    """The hillshaded DEM (white where there is none) under ``layers`` [(GeoDataFrame, colour)], each
    drawn over the previous, as one image on a grid of at most ``MAX_SIDE_PX`` a side."""
    xmin, ymin, xmax, ymax = bounds
    side = max(xmax - xmin, ymax - ymin) / MAX_SIDE_PX
    if dem is not None:
        crs = dem.grid.crs
    grid = Grid.from_bounds(bounds, side if dem is None else max(dem.grid.px_size, side), crs)
    rgb = np.ones((*grid.shape, 3))
    if dem is not None:
        z = dem.read(grid, resampling=Resampling.nearest)  # a picture: nearest is 3x cheaper than bilinear
        if z.count():
            shade = LightSource(azdeg=315, altdeg=45).hillshade(z.filled(float(z.mean())), dx=grid.px_size,
                                                                dy=grid.px_size)
            rgb = np.where(np.ma.getmaskarray(z)[..., None], rgb, shade[..., None])
    for frame, colour in layers:
        if frame is None or frame.empty:
            continue
        shapes = (frame if frame.crs is None or crs is None else frame.to_crs(crs)).geometry
        shapes = shapes[shapes.notna() & ~shapes.is_empty].values
        if len(shapes):
            # all_touched: a river narrower than a picture pixel stays one line, not dashes
            water = rasterize(shapes, out_shape=grid.shape, transform=grid.transform, all_touched=True,
                              dtype="uint8").astype(bool)
            rgb[water] = to_rgb(colour)
    gxmin, gymin, gxmax, gymax = grid.bounds
    ax.imshow(rgb, extent=(gxmin, gxmax, gymin, gymax), interpolation="nearest")


def _box(ax, box, colour, linestyle="-"):
    xmin, ymin, xmax, ymax = box.bounds
    ax.add_patch(Rectangle((xmin, ymin), xmax - xmin, ymax - ymin, fill=False, edgecolor=colour,
                           linewidth=1.2, linestyle=linestyle))


def _save(fig, ax, bounds, path):
    xmin, ymin, xmax, ymax = bounds
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)
    ax.set_aspect("equal")
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.tick_params(labelsize="x-small")
    fig.savefig(path, format="png")
    return path
