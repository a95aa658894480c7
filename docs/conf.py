"""Sphinx configuration for wps_lakes."""
import os
import sys

sys.path.insert(0, os.path.abspath(".."))
os.environ.setdefault("WPS_LAKES_HOME", os.path.abspath("_build/wps-lakes-home"))

from wps_lakes.__version__ import __version__  # noqa: E402

project = "wps_lakes"
author = "wps_lakes developers"
version = release = __version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "pywps.ext_autodoc"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
autodoc_member_order = "bysource"
