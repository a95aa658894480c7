"""Issue 18, item 5: the score threshold of best F1 on validation, stored in the checkpoint, the default
of detect (library, CLI, WPS) when none is given; a threshold the user gives wins."""
import numpy as np
import pytest

from wps_lakes.detector.checkpoints import DEFAULT_SCORE_THRESHOLD, checkpoint_score_threshold, load_checkpoint
from wps_lakes.detector.inference import detect
from wps_lakes.detector.metrics import DetectionScores, best_f1
from wps_lakes.detector.training import train_session
from wps_lakes.geodata import make_scene

from .test_inference import fresh_checkpoint
from .test_training import tiny_config


def test_best_f1_picks_the_cut_between_the_last_kept_and_the_next_score():
    # 3 true lakes; ranked: tp 0.9, tp 0.8, fp 0.6, tp 0.3, fp 0.2
    scores = [0.9, 0.3, 0.8, 0.2, 0.6]
    tp = [True, True, True, False, False]
    found = best_f1(scores, tp, n_gt=3)
    # cuts: 1 -> 2/4, 2 -> 4/5, 3 -> 4/6, 4 -> 6/7 (best), 5 -> 6/8
    assert found["f1"] == pytest.approx(6 / 7)
    assert found["score_threshold"] == pytest.approx(0.25)
    assert found["precision"] == pytest.approx(0.75) and found["recall"] == pytest.approx(1.0)


def test_best_f1_edge_cases():
    assert best_f1([], [], n_gt=3)["score_threshold"] == 0.5
    assert best_f1([0.7], [False], n_gt=0)["f1"] == 0.0
    # the best cut keeps every box: the threshold is halfway to 0, but not under the model's floor
    assert best_f1([0.06, 0.07], [True, True], n_gt=2)["score_threshold"] == 0.05
    # equal scores are kept or dropped together
    tied = best_f1([0.8, 0.8, 0.1], [True, False, False], n_gt=1)
    assert tied["score_threshold"] == pytest.approx(0.45) and tied["f1"] == pytest.approx(2 / 3)
    scorer = DetectionScores()
    scorer.add(np.array([[0, 0, 10, 10], [50, 50, 60, 60]]), np.array([0.9, 0.4]), np.array([[0, 0, 10, 10]]))
    assert scorer.best_f1()["score_threshold"] == pytest.approx(0.65) and scorer.best_f1()["f1"] == 1.0


def test_checkpoint_threshold_reader():
    assert checkpoint_score_threshold({"score_threshold": 0.31}) == 0.31
    for bad in ({}, {"score_threshold": None}, {"score_threshold": 2.0}, {"score_threshold": True}):
        assert checkpoint_score_threshold(bad) == DEFAULT_SCORE_THRESHOLD


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("calib")
    return [make_scene(root / f"s{seed}", seed=seed, size_m=1500) for seed in (0, 1)]


def test_training_stores_the_calibrated_threshold(scenes, tmp_path):
    result = train_session(tiny_config(scenes, epochs=1), tmp_path)
    ckpt = load_checkpoint(result.best_checkpoint)
    record = result.history[-1]
    assert 0.05 <= ckpt["score_threshold"] <= 1 and ckpt["score_threshold"] == record["score_threshold"]
    assert ckpt["calibration"]["f1"] == record["best_f1"] and ckpt["calibration"]["on"] == "validation windows"
    assert "score threshold" in (result.log_path.read_text())


def test_detect_uses_the_checkpoint_threshold_unless_given_one(scenes, tmp_path):
    scene = scenes[0]
    lenient = fresh_checkpoint(tmp_path / "lenient.pth", score_threshold=0.0)
    strict = fresh_checkpoint(tmp_path / "strict.pth", score_threshold=1.0)
    plain = fresh_checkpoint(tmp_path / "plain.pth")
    every = detect(lenient, [scene["dem"]], scene["hydro"])
    assert every.attrs["stats"]["score_threshold"] == 0.0 and len(every) > 0
    none = detect(strict, [scene["dem"]], scene["hydro"])
    assert none.attrs["stats"]["score_threshold"] == 1.0 and len(none) == 0
    given = detect(strict, [scene["dem"]], scene["hydro"], score_threshold=0.0)  # the user's value wins
    assert given.attrs["stats"]["score_threshold"] == 0.0 and len(given) == len(every)
    assert detect(plain, [scene["dem"]], scene["hydro"]).attrs["stats"]["score_threshold"] == 0.5


def test_wps_inputs_leave_the_threshold_to_the_checkpoint():
    from wps_lakes.processes.io import score_threshold_input

    assert score_threshold_input().min_occurs == 0
    assert score_threshold_input().data is None


def test_cli_defaults_leave_the_threshold_to_the_checkpoint():
    from wps_lakes.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["detect", "--checkpoint", "c.pth", "--raster", "d.tif", "--vector", "h.geojson",
                              "-o", "out.geojson"])
    assert args.score_threshold is None
    assert parser.parse_args(["split", "--vector", "w.geojson", "-o", "out"]).score_threshold is None
