"""The configured limits: the [limits] and [references] sections of default.cfg, and the one limit the
corpus cannot reach through the service in a test's time (the wall time of a training job)."""
import configparser
from dataclasses import fields

from wps_lakes.geodata import make_scene
from wps_lakes.limits import Limits
from wps_lakes.runtime.references import ReferencePolicy
from wps_lakes.wsgi import DEFAULT_CFG


def default_sections():
    parser = configparser.RawConfigParser()
    parser.read(DEFAULT_CFG)
    return {name: dict(parser.items(name)) for name in ("limits", "references")}


def test_default_cfg_lists_every_limit_with_its_default():
    limits = default_sections()["limits"]
    assert set(limits) == {f.name for f in fields(Limits)}
    assert Limits.from_mapping(limits) == Limits()


def test_default_cfg_references_section_is_the_default_policy():
    section = default_sections()["references"]
    assert set(section) == {"allowed_hosts", "denied_hosts", "connect_timeout", "read_timeout", "download_timeout"}
    assert ReferencePolicy.from_config(section) == ReferencePolicy()


def test_training_stops_at_max_train_seconds(tmp_path):
    """The wall-time limit stops a session after the iteration that passes it, with a checkpoint, and the
    session log names the limit."""
    from wps_lakes.detector.training import train_session

    from ..detector.test_training import tiny_config

    scenes = [make_scene(tmp_path / f"s{seed}", seed=seed, size_m=1500) for seed in (0, 1)]
    result = train_session(tiny_config(scenes, epochs=50), tmp_path / "out", limits=Limits(max_train_seconds=0))
    assert result.stopped and result.epochs_done < 50
    assert result.last_checkpoint is not None and result.last_checkpoint.is_file()
    assert "time limit max_train_seconds = 0 s reached" in result.log_path.read_text()
    assert result.stop_reason == "time limit max_train_seconds = 0 s reached"
