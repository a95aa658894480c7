"""The layer rule of docs/architecture.rst, read from the code: imports only point down.

Every ``import`` of every module of wps_lakes (at the top or inside a function) is resolved to the
module it names; a module may import only from its own layer or the layers below it. Layers are in
a total order, so no two folders can import each other (no circle).
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "wps_lakes"

# Bottom first. A module belongs to the first entry that is it or a package above it.
LAYERS = [
    ("base", ["wps_lakes.__version__", "wps_lakes.errors", "wps_lakes.files", "wps_lakes.limits"]),
    ("geodata", ["wps_lakes.geodata"]),
    ("detector", ["wps_lakes.detector"]),
    ("hydro", ["wps_lakes.hydro"]),
    ("runtime", ["wps_lakes.runtime"]),
    ("processes", ["wps_lakes.processes"]),
    ("jobs", ["wps_lakes.jobs"]),
    ("frontends", ["wps_lakes.frontends"]),
    ("service", ["wps_lakes.service"]),
    ("entry points", ["wps_lakes.cli", "wps_lakes.wsgi", "wps_lakes.cwl", "wps_lakes"]),
]
LIBRARY = ("geodata", "detector", "hydro")


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(name):
    for rank, (layer, prefixes) in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return rank, layer
    raise AssertionError(f"{name} is in no layer of tests/test_architecture.py: add it there and to "
                         "docs/architecture.rst")


def imports_of(path, name=None):
    """(line, absolute module name) of every import in the file, relative ones resolved."""
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            if node.module:
                found.append((node.lineno, target))
            else:  # "from . import bridge" names modules of the package
                found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_in_a_layer():
    for path in MODULES:
        layer_of(module_name(path))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    rank, layer = layer_of(module_name(path))
    upward = []
    for line, target in imports_of(path):
        if target.split(".")[0] != "wps_lakes":
            continue
        target_rank, target_layer = layer_of(target)
        if target_rank > rank:
            upward.append(f"line {line}: {target} ({target_layer})")
    assert not upward, f"{layer} imports a layer above it: " + "; ".join(upward)


@pytest.mark.parametrize("path", [p for p in MODULES if layer_of(module_name(p))[1] in LIBRARY],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_library_never_imports_pywps(path):
    assert not [t for _, t in imports_of(path) if t.split(".")[0] == "pywps"]


def test_the_rule_is_checked_on_a_known_upward_import(tmp_path):
    """The checker itself: an upward import, relative or absolute, in a library module is found."""
    probe = tmp_path / "probe.py"
    probe.write_text("from ..jobs import store\n\ndef f():\n    import wps_lakes.service.app\n")
    rank, _ = layer_of("wps_lakes.geodata.probe")
    upward = [t for _, t in imports_of(probe, "wps_lakes.geodata.probe") if layer_of(t)[0] > rank]
    assert upward == ["wps_lakes.jobs", "wps_lakes.service.app"]
