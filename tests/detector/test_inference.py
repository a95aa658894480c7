"""detect() on a small synthetic scene with freshly initialised light models; the cross-tile merge."""
import json
import os
import threading

import numpy as np
import pytest
import shapely
import torch

from wps_lakes.detector.checkpoints import save_checkpoint
from wps_lakes.detector.inference import (
    TilePredictions,
    _prefetched,
    detect,
    detect_to_files,
    merge_predictions,
    write_detections,
)
from wps_lakes.detector.training import train_session
from wps_lakes.detector.zoo import build_model, qualified_name
from wps_lakes.errors import LakesError
from wps_lakes.geodata import Grid, make_scene, open_dem, read_vector
from wps_lakes.geodata.tiles import tile_grids

MODEL = "fcos_mobilenet_v3_large_fpn"  # the lightest of the zoo
PARAMS = {"image_scale": 0.5}
PNG = b"\x89PNG\r\n\x1a\n"


def fresh_checkpoint(path, **extra):
    """Our layout, as the trainer writes it: a real checkpoint of an untrained model."""
    torch.manual_seed(0)
    model = build_model(MODEL, PARAMS)
    ckpt = {"name": "fresh", "epoch": 0, "iter": 0, "model": model.state_dict(), "model_type": qualified_name(MODEL),
            "model_params": PARAMS, "input": {"scaling": "minmax", "px_size": 3.0, "srs": "EPSG:2959"}, **extra}
    return save_checkpoint(path, ckpt)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("scene"), seed=3, size_m=1500)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return fresh_checkpoint(tmp_path_factory.mktemp("ckpt") / "fresh.pth")


@pytest.fixture(scope="module")
def detections(scene, checkpoint):
    """Every box the untrained model gives (it is not confident about anything)."""
    calls = []
    found = detect(checkpoint, [scene["dem"]], scene["hydro"], score_threshold=0.0, progress=lambda *a: calls.append(a))
    return found, calls


def test_detect_gives_boxes_in_the_work_srs_with_their_tile(detections, scene):
    found, calls = detections
    assert len(found) > 0 and list(found.columns) == ["confidence", "tile", "id", "geometry"]
    assert found.crs.to_epsg() == 2959
    assert list(found["id"]) == list(range(1, len(found) + 1))
    assert (np.diff(found["confidence"]) <= 0).all()  # best first
    assert all(g.equals(shapely.envelope(g)) for g in found.geometry)  # boxes
    stats = found.attrs["stats"]
    assert stats["tiles"] >= 1 and stats["forward_s"] > 0 and stats["total_s"] >= stats["forward_s"]
    # boxes come only from tiles with water, and lie on their tile
    water = read_vector(scene["hydro"])
    with open_dem([scene["dem"]]) as dem:
        wet = {f"{r}_{c}": shapely.box(*grid.bounds) for (r, c), grid in tile_grids(dem.grid)
               if len(water.sindex.query(shapely.box(*grid.bounds), predicate="intersects"))}
    assert set(found["tile"]) <= set(wet)
    assert all(wet[tile].buffer(1e-6).contains(box) for tile, box in zip(found["tile"], found.geometry, strict=True))
    # progress: tiles done out of the whole tile grid, never backwards, ending at the total
    done = [d for d, _ in calls]
    assert done == sorted(done) and calls[-1][0] == calls[-1][1] == 4  # a 500 px scene has 2 x 2 tiles


def test_geojson_in_4326_and_in_a_requested_crs_and_quicklook(detections, scene, tmp_path):
    found, _ = detections
    paths = write_detections(found, tmp_path / "lakes.geojson", rasters=[scene["dem"]], vector=scene["hydro"])
    collection = json.loads(paths["detections"].read_text())
    assert "crs" not in collection and len(collection["features"]) == len(found)
    lonlat = found.to_crs("EPSG:4326")
    first = collection["features"][0]
    assert first["properties"] == {"confidence": found["confidence"][0], "tile": found["tile"][0], "id": 1}
    assert shapely.geometry.shape(first["geometry"]).equals_exact(lonlat.geometry[0], 1e-9)
    assert paths["quicklook"].read_bytes()[:8] == PNG

    paths = write_detections(found, tmp_path / "utm.geojson", crs="EPSG:2959")
    collection = json.loads(paths["detections"].read_text())
    assert collection["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::2959"
    assert shapely.geometry.shape(collection["features"][0]["geometry"]).equals_exact(found.geometry[0], 1e-6)


def test_detect_to_files_as_the_wps_process_runs_it(detections, scene, checkpoint, tmp_path):
    paths = detect_to_files(checkpoint, [scene["dem"]], scene["hydro"], tmp_path, score_threshold=0.0, crs="EPSG:2959")
    assert paths == {"detections": tmp_path / "detections.geojson", "quicklook": tmp_path / "detections.png"}
    written = read_vector(paths["detections"])
    assert len(written) == len(detections[0])  # the same run, the same boxes
    assert all(a.equals_exact(b, 1e-6) for a, b in zip(written.geometry, detections[0].geometry, strict=True))


def test_no_lake_found_gives_valid_empty_outputs(scene, checkpoint, tmp_path):
    found = detect(checkpoint, [scene["dem"]], scene["hydro"], score_threshold=1.0)
    assert found.empty and found.crs.to_epsg() == 2959
    paths = write_detections(found, tmp_path / "none.geojson", rasters=[scene["dem"]], vector=scene["hydro"])
    assert json.loads(paths["detections"].read_text()) == {"type": "FeatureCollection", "features": []}
    assert paths["quicklook"].read_bytes()[:8] == PNG


def test_thelper_checkpoint_layout_is_accepted(scene, tmp_path):
    """thelper's ckpt.best.pth: its keys, the model type as torchvision path, input from the config."""
    torch.manual_seed(0)
    model = build_model(MODEL, PARAMS)
    thelper = {"name": "tb15", "epoch": 99, "iter": 9900, "source": "gpu01-20191015-101010", "version": "0.4.3",
               "task": "thelper.tasks.detect.Detection(class_names={'background': 0, 'lake': 1})",
               "outputs": {99: {"valid/metrics": {"mAP": 0.61}}}, "model": model.state_dict(),
               "model_type": qualified_name(MODEL), "model_params": PARAMS, "optimizer": {}, "scheduler": None,
               "monitor_best": 0.61, "monitor_best_epoch": 99,
               "config": {"name": "tb15", "datasets": {"tb15": {"type": "thelper.data.geo.ogc.TB15D104Dataset",
                                                              "params": {"px_size": 3, "srs_target": "2959"}}}}}
    path = tmp_path / "checkpoints" / "ckpt.best.pth"
    save_checkpoint(path, thelper)
    found = detect(path, [scene["dem"]], scene["hydro"], score_threshold=0.0)
    assert len(found) > 0 and found.crs.to_epsg() == 2959


def test_checkpoint_taken_mid_training_is_accepted(scene, tmp_path):
    """A session stopped after its first of 3 epochs: its newest checkpoint is what a running job publishes."""
    config = {"name": "short", "datasets": {"lakes": {"params": {"raster_path": str(scene["dem"]),
                                                                  "vector_path": str(scene["hydro"]),
                                                                  "roi_buffer": 150}}},
              "loaders": {"train_split": {"lakes": 0.7}, "valid_split": {"lakes": 0.3}, "split_block_size": 300},
              "model": {"type": MODEL, "params": PARAMS}, "trainer": {"epochs": 3, "device": "cpu"}}
    result = train_session(config, tmp_path, should_stop=lambda: True)
    assert result.stopped and result.epochs_done < 3 and result.last_checkpoint is not None
    found = detect(result.last_checkpoint, [scene["dem"]], scene["hydro"], score_threshold=0.0)
    assert found.crs.to_epsg() == 2959 and "confidence" in found


def test_files_that_are_not_checkpoints_are_refused(scene, tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(LakesError, match="is not a PyTorch checkpoint"):
        detect(text, [scene["dem"]], scene["hydro"])

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    hostile = tmp_path / "hostile.pth"
    torch.save({"model": Payload()}, hostile)  # a torch archive whose pickle calls os.system
    with pytest.raises(LakesError, match="could run code"):
        detect(hostile, [scene["dem"]], scene["hydro"])
    assert not marker.exists()


def test_checkpoint_for_another_number_of_classes_is_refused(scene, tmp_path):
    torch.manual_seed(0)
    state = build_model(MODEL, PARAMS).state_dict()
    key = next(k for k in state if "cls_logits.weight" in k)
    state[key] = torch.zeros((5, *state[key].shape[1:]))
    state[key.replace("weight", "bias")] = torch.zeros(5)
    path = save_checkpoint(tmp_path / "five.pth", {"model": state, "model_type": MODEL, "model_params": PARAMS})
    with pytest.raises(LakesError, match="predicts 5 classes"):
        detect(path, [scene["dem"]], scene["hydro"])


def test_bad_device_and_settings_are_refused(scene, checkpoint):
    with pytest.raises(LakesError, match="unknown device 'gpu'"):
        detect(checkpoint, [scene["dem"]], scene["hydro"], device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(LakesError, match="no usable CUDA GPU"):
            detect(checkpoint, [scene["dem"]], scene["hydro"], device="cuda")
    with pytest.raises(LakesError, match="score_threshold must be between 0 and 1"):
        detect(checkpoint, [scene["dem"]], scene["hydro"], score_threshold=5)
    with pytest.raises(LakesError, match="tile_overlap < tile_size"):
        detect(checkpoint, [scene["dem"]], scene["hydro"], tile_size=100, tile_overlap=100)


# ---------------------------------------------------------------------------------------------
# the cross-tile merge, on the real tile grid with the boxes a perfect detector would give


DEM_GRID = Grid(300_000.0, 5_010_000.0, 3.0, 1200, 1200, "EPSG:2959")


def oracle_predictions(lakes, score=0.9):
    """Each lake's box clipped to every tile that sees part of it; a side is cut where it lies on the
    tile's border."""
    boxes, tiles, cut = [], [], []
    edge = 2 * DEM_GRID.px_size
    for index, grid in tile_grids(DEM_GRID):
        tile = shapely.box(*grid.bounds)
        for lake in lakes:
            if not lake.intersects(tile) or lake.intersection(tile).area < 1:
                continue
            seen = np.array(shapely.envelope(lake.intersection(tile)).bounds)
            bounds = np.array(grid.bounds)
            boxes.append(seen)
            tiles.append(f"{index[0]}_{index[1]}")
            cut.append(np.abs(seen - bounds) <= edge)
    return TilePredictions(np.array(boxes), np.full(len(boxes), score), tiles, np.array(cut), DEM_GRID.crs)


def tile_x(col, px):
    """Map x of pixel column ``px`` of tile column ``col`` (tiles start one overlap before the raster)."""
    return DEM_GRID.x0 + (col * 400 - 100 + px) * 3.0


@pytest.mark.parametrize("span_px,views", [
    ((420, 480), "both tiles see the lake whole"),      # inside the 100 px overlap of tiles 0 and 1
    ((450, 560), "one tile whole, one truncated"),      # tile 1 sees it whole, tile 0 cut at its border
    ((330, 600), "both truncated"),                     # wider than the overlap: nobody sees it whole
])
def test_a_lake_across_a_tile_border_gives_one_box(span_px, views):
    x0, x1 = tile_x(0, span_px[0]), tile_x(0, span_px[1])
    y = DEM_GRID.y0 - 600
    lake = shapely.box(x0, y - 60, x1, y + 60)
    other = shapely.Point(tile_x(1, 250), y).buffer(50)  # a lake in the middle of a tile
    predictions = oracle_predictions([lake, other])
    assert len(predictions.boxes) >= 3  # the border lake is seen twice (the oracle clips to each tile)

    union = merge_predictions(predictions, "union")
    fused = merge_predictions(predictions, "fuse")
    assert len(union) == len(predictions.boxes)
    assert len(fused) == 2, views
    truth = [shapely.envelope(lake), shapely.envelope(other)]
    for box in truth:
        best = max(fused.geometry, key=lambda g: g.intersection(box).area / g.union(box).area)
        assert best.intersection(box).area / best.union(box).area > 0.95, views


def test_nearby_lakes_in_one_tile_stay_apart():
    y = DEM_GRID.y0 - 600
    lakes = [shapely.box(tile_x(1, 100), y, tile_x(1, 160), y + 90),
             shapely.box(tile_x(1, 170), y, tile_x(1, 230), y + 90)]
    assert len(merge_predictions(oracle_predictions(lakes), "fuse")) == 2


def test_tile_reader_errors_reach_the_caller_and_the_reader_stops():
    def tiles():
        yield 1
        yield 2
        raise ValueError("bad tile")

    with pytest.raises(ValueError, match="bad tile"):
        list(_prefetched(tiles(), 1))
    endless = _prefetched(iter(range(10**9)), 2)
    assert next(endless) == 0
    endless.close()  # stops and joins the reader thread without reading on
    assert not any(t.name == "tile-reader" and t.is_alive() for t in threading.enumerate())


def test_a_checkpoint_file_is_read_once_per_process_until_it_changes(scene, tmp_path, monkeypatch):
    """A worker detects with the same model again and again: the model is kept; a rewritten file is read again."""
    from wps_lakes.detector import inference

    path = fresh_checkpoint(tmp_path / "kept.pth", score_threshold=0.4)
    reads = []
    real_load = inference.load_checkpoint
    monkeypatch.setattr(inference, "load_checkpoint", lambda p: reads.append(p) or real_load(p))
    first = detect(path, [scene["dem"]], scene["hydro"], device="cpu")
    again = detect(path, [scene["dem"]], scene["hydro"], device="cpu")
    assert len(reads) == 1 and first.geometry.equals(again.geometry)
    fresh_checkpoint(path, score_threshold=0.9)
    os.utime(path, ns=(1, 1))  # another mtime whatever the clock's resolution
    assert detect(path, [scene["dem"]], scene["hydro"], device="cpu").attrs["stats"]["score_threshold"] == 0.9
    assert len(reads) == 2
