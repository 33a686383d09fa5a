"""The prebuilt kernels: loaded instead of compiled on the CPU they were built for, compiled elsewhere; the notice."""

import os
import subprocess
import sys

from rcforest._jit import NOTICE

# Compiles (or loads) one small kernel and prints whether it was compiled, its result and what numba's cache holds.
_CALL = """
import numpy as np
from rcforest import _kernels
from rcforest._kernel_cache import building

out = np.empty(3)
per_tree = np.arange(6.0).reshape(2, 3)
if {build!r}:
    with building({build!r}):
        _kernels.tree_mean(per_tree, out)
else:
    _kernels.tree_mean(per_tree, out)
print(sum(_kernels.tree_mean._cache_misses.values()), out.tolist())
"""


def _run(code, env, tmp_path):
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done


def _environment(tmp_path, name, **extra):
    cache = tmp_path / name
    cache.mkdir()
    return cache, dict(os.environ, NUMBA_CACHE_DIR=str(cache), RCFOREST_COMPILE_NOTICE="0", **extra)


def _files(folder):
    return sorted(name for _, _, names in os.walk(folder) for name in names)


def test_prebuilt_kernel_loads_and_numba_cache_is_untouched(tmp_path):
    prebuilt = tmp_path / "prebuilt"
    cache, env = _environment(tmp_path, "build-cache")
    built = _run(_CALL.format(build=str(prebuilt)), env, tmp_path)
    assert built.stdout.split(maxsplit=1) == ["1", "[1.5, 2.5, 3.5]\n"]
    assert any(name.endswith(".nbi") for name in _files(prebuilt)) and _files(cache) == []
    cache, env = _environment(tmp_path, "empty-cache", RCFOREST_PREBUILT=str(prebuilt))
    loaded = _run(_CALL.format(build=None), env, tmp_path)
    assert loaded.stdout.split(maxsplit=1) == ["0", "[1.5, 2.5, 3.5]\n"]  # loaded, not compiled
    assert _files(cache) == []


def test_another_cpu_compiles_into_numba_cache_and_leaves_prebuilt_alone(tmp_path):
    prebuilt = tmp_path / "prebuilt"
    _, env = _environment(tmp_path, "build-cache")
    _run(_CALL.format(build=str(prebuilt)), env, tmp_path)
    before = {name: (prebuilt / name).read_bytes() for name in _files(prebuilt)}
    # numba keys the cache on the CPU's name and features: a generic CPU stands for another machine.
    cache, env = _environment(tmp_path, "other-cpu", RCFOREST_PREBUILT=str(prebuilt), NUMBA_CPU_NAME="generic")
    other = _run(_CALL.format(build=None), env, tmp_path)
    assert other.stdout.split(maxsplit=1) == ["1", "[1.5, 2.5, 3.5]\n"]  # compiled
    assert any(name.endswith(".nbi") for name in _files(cache))
    assert {name: (prebuilt / name).read_bytes() for name in _files(prebuilt)} == before
    # Turned off, the prebuilt kernel is not read either.
    _, env = _environment(tmp_path, "off", RCFOREST_PREBUILT="0")
    assert _run(_CALL.format(build=None), env, tmp_path).stdout.startswith("1 ")


# Compiles two kernels with the notice's delay at zero; prints nothing itself.
_COMPILE = """
import numpy as np
import rcforest._jit
from rcforest import _kernels

rcforest._jit.NOTICE_AFTER = 0.0
_kernels.tree_mean(np.ones((2, 3)), np.empty(3))
_kernels.tree_mean(np.ones((2, 3), np.float32), np.empty(3))
"""


def test_compile_notice_is_one_line_on_stderr_and_can_be_hidden(tmp_path):
    _, env = _environment(tmp_path, "cache", RCFOREST_PREBUILT="0")
    env.pop("RCFOREST_COMPILE_NOTICE")
    shown = _run(_COMPILE, env, tmp_path)
    assert shown.stdout == ""
    assert shown.stderr.splitlines() == [NOTICE]
    assert "once" in NOTICE
    _, env = _environment(tmp_path, "hidden", RCFOREST_PREBUILT="0")
    hidden = _run(_COMPILE, env, tmp_path)
    assert hidden.stdout == hidden.stderr == ""


def test_every_kernel_is_made_by_rcforests_njit():
    # A kernel made by numba.njit itself is never prebuilt and compiles on first use, without the notice.
    import importlib
    import pkgutil

    from numba.core.registry import CPUDispatcher

    import rcforest
    from rcforest._kernel_cache import KernelCache

    kernels = {}
    for module in pkgutil.walk_packages(rcforest.__path__, "rcforest."):
        if module.name.endswith("__main__"):
            continue
        for name, value in vars(importlib.import_module(module.name)).items():
            if isinstance(value, CPUDispatcher) and value.py_func.__module__ == module.name:
                kernels[f"{module.name}.{name}"] = value
    assert len(kernels) > 40
    assert [name for name, kernel in kernels.items() if not isinstance(kernel._cache, KernelCache)] == []


def test_entries_are_keyed_on_every_module_a_kernel_draws_on(tmp_path):
    """numba checks only a kernel's own file: an edit to a module it compiles in must miss the cache too."""
    from rcforest import _kernels
    from rcforest._kernel_cache import KernelCache, kernel_sources

    package = tmp_path / "package"
    (package / "detector").mkdir(parents=True)
    files = {"_box.py": "X = 1\n", "detector/plain.py": "Y = 1\n", "detector/kernels.py": "from numba import njit\n"}
    for name, text in files.items():
        (package / name).write_text(text)
    first = kernel_sources.__wrapped__(str(package))
    (package / "detector" / "plain.py").write_text("Y = 2\n")  # pure Python, outside the top level: not drawn on
    assert kernel_sources.__wrapped__(str(package)) == first
    for name in ("_box.py", "detector/kernels.py"):
        (package / name).write_text(files[name] + "# edited\n")
        assert kernel_sources.__wrapped__(str(package)) != first
        first = kernel_sources.__wrapped__(str(package))
    dispatcher = _kernels.tree_mean
    key = KernelCache(dispatcher.py_func)._numba_cache()._index_key((), dispatcher.targetctx.codegen())
    assert key[-1] == kernel_sources()
