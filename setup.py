"""Build step of rcforest: the package carries its kernels compiled for the machine that builds it.

After setuptools' usual ``build_py``, a new interpreter runs
:func:`rcforest.warmup.prebuild`, which compiles every kernel into the
package's ``rcforest/_prebuilt/`` folder (in the source tree for an
editable install, else in the build folder, from which it goes into the
wheel). A process on a machine with the same CPU, Python and numba then
loads the kernels instead of compiling them; on any other it compiles
them on first use, as without this step (see ``rcforest/_kernel_cache.py``).
If the step fails, the package is built without it, with a warning.
``RCFOREST_PREBUILD=0`` skips it.

The metadata is in ``pyproject.toml``.
"""

import os
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

_TIMEOUT = 1800
"""Seconds the compile may take (a loaded machine takes a few minutes)."""


class BuildWithKernels(build_py):
    """``build_py``, then the kernels compiled into the package's prebuilt cache."""

    def run(self):
        super().run()
        if os.environ.get("RCFOREST_PREBUILD") == "0":
            return
        root = os.path.dirname(os.path.abspath(__file__)) if self.editable_mode else os.path.abspath(self.build_lib)
        folder = os.path.join(root, "rcforest", "_prebuilt")
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
        environment = dict(os.environ, PYTHONPATH=path, RCFOREST_COMPILE_NOTICE="0")
        code = f"from rcforest.warmup import prebuild; prebuild({folder!r})"
        self.announce(f"compiling rcforest's kernels into {folder}", level=2)
        try:
            subprocess.run([sys.executable, "-c", code], env=environment, check=True, timeout=_TIMEOUT, cwd=root)
        except (OSError, subprocess.SubprocessError) as error:
            self.warn(f"rcforest's kernels were not prebuilt ({error}); they will compile on first use")


setup(cmdclass={"build_py": BuildWithKernels})
