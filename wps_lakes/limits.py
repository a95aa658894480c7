"""Size and time limits on what one request may ask for.

Library functions take a ``Limits`` (defaults below); the service builds one from the
``[limits]`` section of its configuration. A refusal raises ``LimitExceeded`` naming the limit.
"""
from dataclasses import dataclass, fields

from .errors import LimitExceeded


@dataclass(frozen=True)
class Limits:
    max_raster_pixels: int = 400_000_000   # DEM pixels in the work grid (20 000 x 20 000)
    max_vector_features: int = 200_000
    max_vector_vertices: int = 5_000_000
    max_tiles: int = 20_000                # inference tiles per job
    max_epochs: int = 500
    max_train_seconds: int = 7 * 24 * 3600  # wall time of one training job
    max_job_seconds: int = 24 * 3600        # wall time of any other job (detect, split, ...)
    max_download_bytes: int = 2 * 1024**3  # one fetched reference

    @classmethod
    def from_mapping(cls, values):
        """Build from a config section (strings); unknown keys are ignored, values must be ints."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: int(v) for k, v in values.items() if k in known})

    def check(self, name, value, what):
        """Raise LimitExceeded if ``value`` is over the limit called ``name``."""
        limit = getattr(self, name)
        if value > limit:
            raise LimitExceeded(f"{what} is {value:,}, over the limit {name} = {limit:,}; "
                                f"use a smaller input or ask the operator to raise the limit")


DEFAULT_LIMITS = Limits()
