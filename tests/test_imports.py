"""Every module of the package imports on its own, in any order: no import cycles."""

import pkgutil
import subprocess
import sys

import pytest

import rcforest

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(rcforest.__path__, "rcforest.") if not info.name.endswith("__main__")
)


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
