"""wps_lakes: lake/river differentiation from a DEM and a hydrography layer, as OGC web processes.

The science lives in the library subpackages (``geodata``, ``detector``, ``hydro``), which never
import pywps; ``processes``, ``jobs``, ``frontends`` and ``service`` expose them over WPS and the
other protocols (docs/architecture.rst tells the layers).
"""
from .__version__ import __version__  # noqa: F401
