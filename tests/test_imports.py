"""The package's import graph: every module imports on its own, in any order, with no cycles.

A cycle between modules can hide behind an import placed inside a function:
it works until someone moves that import to the top. The static check
therefore reads every ``import`` statement of every module, wherever it
stands, and fails on any cycle between rcforest's modules.
"""

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import rcforest

PACKAGE_DIR = Path(rcforest.__file__).parent


def module_names():
    """Every module of the package, by dotted name, in alphabetical order.

    ``__main__`` modules are left out: importing one runs the program.
    """
    names = ["rcforest"]
    for info in pkgutil.walk_packages([str(PACKAGE_DIR)], prefix="rcforest."):
        if not info.name.endswith(".__main__"):
            names.append(info.name)
    return sorted(names)


def module_path(name):
    """The source file of module ``name``."""
    relative = Path(*name.split("."))
    package = PACKAGE_DIR.parent / relative / "__init__.py"
    return package if package.is_file() else PACKAGE_DIR.parent / relative.with_suffix(".py")


def imported_modules(name, known):
    """The rcforest modules that module ``name`` imports, anywhere in its source.

    ``from rcforest.x import y`` counts as an import of ``rcforest.x.y`` when
    that is a module, else of ``rcforest.x``; relative imports are resolved
    against ``name``.
    """
    path = module_path(name)
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in known else target)
    return {module for module in found if module in known and module != name}


def import_cycles():
    """Each cycle in the import graph, as a list of module names (empty when there is none)."""
    known = set(module_names())
    graph = {name: sorted(imported_modules(name, known)) for name in sorted(known)}
    cycles, state = [], {}  # state: 1 on the current path, 2 done

    def visit(name, path):
        state[name] = 1
        path.append(name)
        for target in graph[name]:
            if state.get(target) == 1:
                cycles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, path)
        path.pop()
        state[name] = 2

    for name in graph:
        if name not in state:
            visit(name, [])
    return cycles


def test_no_import_cycles():
    cycles = import_cycles()
    assert not cycles, "import cycles between rcforest's modules:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_checker_finds_a_cycle(tmp_path, monkeypatch):
    package = tmp_path / "rcforest"
    package.mkdir()
    (package / "__init__.py").write_text("from rcforest.a import A\n")
    (package / "a.py").write_text("A = 1\n\ndef f():\n    from rcforest import b\n")
    (package / "b.py").write_text("from . import a\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE_DIR", package)
    assert sorted(map(tuple, import_cycles())) == [("rcforest.a", "rcforest.b", "rcforest.a")]


MODULES = module_names()


def test_the_package_has_its_modules():
    assert {"rcforest.cli", "rcforest.cli.score", "rcforest.errors", "rcforest._version"} <= set(MODULES)


@pytest.mark.parametrize("order", ["alphabetical", "reverse"])
def test_every_module_imports_first_in_a_fresh_interpreter(order):
    """A new interpreter imports every module, one after the other, in the given order."""
    modules = MODULES if order == "alphabetical" else MODULES[::-1]
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    done = subprocess.run([sys.executable, "-c", script, *modules], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr


def test_the_version_has_one_source():
    from rcforest import _format, _version

    assert rcforest.__version__ == _version.__version__
    assert _format.__version__ is _version.__version__


def test_old_error_names_still_import():
    from rcforest import errors
    from rcforest.cli import UsageError
    from rcforest.datasets import DataUnavailableError
    from rcforest.sagemaker.formats import NotAcceptable, UnsupportedContentType
    from rcforest.sagemaker.predictor import InvocationError

    assert UsageError is errors.UsageError
    assert DataUnavailableError is errors.DataUnavailableError
    assert InvocationError is errors.InvocationError
    assert (NotAcceptable, UnsupportedContentType) == (errors.NotAcceptable, errors.UnsupportedContentType)


def test_numpy_users_never_import_pandas():
    """rcforest imports pandas only to answer pandas input with pandas output (about 66 MB and 0.35 s)."""
    script = """
import sys
import numpy as np
from rcforest import Forest, ThresholdedForest

forest = Forest(num_trees=5, sample_size=16, shingle_size=2, random_state=0)
forest.fit(np.arange(200.0)).score(np.arange(50.0))
forest.score_update(np.arange(20.0))
ThresholdedForest(num_trees=5, sample_size=16).process([1.0])
assert "pandas" not in sys.modules, "pandas was imported"
import pandas as pd
assert isinstance(forest.score(pd.Series(np.arange(5.0))), pd.Series)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
