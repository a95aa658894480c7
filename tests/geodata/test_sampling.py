import itertools

import numpy as np
import pytest

from wps_lakes.errors import LakesError
from wps_lakes.geodata import Grid, Window, open_dem, read_vector, spatial_split, training_windows

from ..geodata_fixtures import scene  # noqa: F401  (fixture)


def random_windows(n, seed=0, extent_m=60_000):
    """Windows of 300..800 px (3 m) scattered over a square, like training windows over a large map."""
    rng = np.random.default_rng(seed)
    windows = []
    for i in range(n):
        width, height = rng.integers(300, 800, size=2)
        x0, y0 = rng.integers(0, extent_m // 3, size=2) * 3.0
        windows.append(Window(Grid(300_000 + x0, 5_000_000 + y0, 3.0, int(width), int(height), "EPSG:2959"),
                              np.zeros((0, 4), np.float32), i))
    return windows


def overlap(a, b):
    ax0, ay0, ax1, ay1 = a.grid.bounds
    bx0, by0, bx1, by1 = b.grid.bounds
    return ax0 < bx1 and bx0 < ax1 and ay0 < by1 and by0 < ay1


def assert_no_overlap_across(splits):
    for (_, a), (_, b) in itertools.combinations(splits.items(), 2):
        assert not any(overlap(x, y) for x in a for y in b)


def test_overlapping_windows_never_sit_on_both_sides():
    windows = random_windows(400)
    splits = spatial_split(windows, {"train": 0.9, "valid": 0.1}, seed=1)
    assert_no_overlap_across(splits)
    ids = [w.focal_id for split in splits.values() for w in split]
    assert len(ids) == len(set(ids))  # no window twice
    # about the asked shares, and only windows of the larger split are dropped to keep them apart
    kept = sum(len(s) for s in splits.values())
    assert 0.08 < len(splits["valid"]) / kept < 0.12
    assert kept > 0.85 * len(windows)  # the validation region is compact: few windows on its edge


def test_split_is_deterministic_per_seed():
    windows = random_windows(200)

    def ids(seed):
        return {name: [w.focal_id for w in split]
                for name, split in spatial_split(windows, {"train": 0.8, "valid": 0.2}, 10_000, seed).items()}

    assert ids(3) == ids(3)
    assert ids(3) != ids(4)


def test_three_splits_and_block_size():
    windows = random_windows(300, seed=2)
    splits = spatial_split(windows, {"train": 0.7, "valid": 0.15, "test": 0.15}, block_size_m=5000, seed=0)
    assert set(splits) == {"train", "valid", "test"} and all(splits.values())
    assert_no_overlap_across(splits)


def test_scene_windows_split(scene):  # noqa: F811
    paths, _ = scene
    hydro = read_vector(paths["hydro"], require_typece=True)
    with open_dem(paths["dem"]) as dem:
        windows = training_windows(hydro, dem.grid, roi_buffer=150)
    for seed in range(4):
        splits = spatial_split(windows, {"train": 0.5, "valid": 0.5}, seed=seed)
        assert_no_overlap_across(splits)
        kept = [w for split in splits.values() for w in split]
        assert kept and all(any(w is v for v in windows) for w in kept)
        # whatever is dropped overlaps a window of the other split
        other = {name: [w for n, split in splits.items() if n != name for w in split] for name in splits}
        for window in windows:
            if not any(window is w for w in kept):
                assert any(overlap(window, w) for name in splits for w in other[name])


@pytest.mark.parametrize("ratios", [{}, {"train": -1, "valid": 2}, {"train": 0}, {"train": "a"}])
def test_bad_ratios(ratios):
    with pytest.raises(LakesError, match="ratios"):
        spatial_split(random_windows(3), ratios)
