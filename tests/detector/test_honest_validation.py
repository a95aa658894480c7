"""Issue 18, item 3: train and valid datasets on the same files are split spatially, with a warning."""
import pytest

from wps_lakes.detector.config import load_config
from wps_lakes.detector.datasets import build_datasets
from wps_lakes.geodata import make_scene


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("honest") / "scene", seed=3, size_m=4000)


def _overlap(a, b):
    ax0, ay0, ax1, ay1 = a.grid.bounds
    bx0, by0, bx1, by1 = b.grid.bounds
    return ax0 < bx1 and bx0 < ax1 and ay0 < by1 and by0 < ay1


def _config(scene, **datasets):
    return {"datasets": {name: {"params": {"raster_path": str(scene["dem"]), "vector_path": str(scene["hydro"])}}
                         for name in datasets},
            "loaders": {"train_split": {n: r for n, (r, _) in datasets.items() if r},
                        "valid_split": {n: r for n, (_, r) in datasets.items() if r}}}


def _assert_apart(sets):
    train = [w for _, w in sets["train"].items]
    valid = [w for _, w in sets["valid"].items]
    assert train and valid
    assert not any(_overlap(t, v) for t in train for v in valid)


def test_train_and_valid_datasets_on_the_same_files_are_split_spatially(scene):
    # lakes_cpu.json's layout given one scene (wps-lakes train -c lakes_cpu.json --raster X --vector Y)
    config = load_config(_config(scene, train_scene=(1.0, 0), valid_scene=(0, 1.0)))
    lines = []
    sets = build_datasets(config, log=lines.append)
    assert any(line.startswith("warning: datasets train_scene, valid_scene read the same files") for line in lines)
    _assert_apart(sets)
    assert len(sets["train"]) > len(sets["valid"])


def test_with_data_on_the_shipped_config_cannot_validate_on_training_windows(scene):
    config = load_config("wps_lakes/configs/lakes_cpu.json").with_data([scene["dem"]], scene["hydro"])
    lines = []
    _assert_apart(build_datasets(config, log=lines.append))
    assert any("split spatially" in line for line in lines)


def test_shares_under_one_are_kept_and_other_scenes_untouched(scene, tmp_path):
    config = load_config(_config(scene, a=(0.8, 0), b=(0, 0.2)))
    lines = []
    sets = build_datasets(config, log=lines.append)
    assert any("train 0.8, valid 0.2" in line for line in lines)
    _assert_apart(sets)
    other = make_scene(tmp_path / "other", seed=4, size_m=1500)
    data = _config(scene, a=(1.0, 0))
    data["datasets"]["b"] = {"params": {"raster_path": str(other["dem"]), "vector_path": str(other["hydro"])}}
    data["loaders"]["valid_split"] = {"b": 1.0}
    lines = []
    build_datasets(load_config(data), log=lines.append)
    assert not any("same files" in line for line in lines)
