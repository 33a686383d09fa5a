"""The README's Python examples run as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
# Blocks that need a cluster or a server started from the shell are run by the dask and endpoint tests;
# the SageMaker SDK v3 block, by tests/test_sagemaker_v3.py in its own environment.
RUNNABLE = [
    block
    for block in BLOCKS
    if "endpoint_url=" not in block and "tcp://scheduler" not in block and "from sagemaker.train" not in block
]


def test_the_readme_has_examples():
    assert len(RUNNABLE) >= 3


@pytest.mark.parametrize("number", range(len(RUNNABLE)))
def test_readme_example_runs(number, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # Examples build on the ones before them, as a reader running them in order would.
    namespace = {}
    for block in RUNNABLE[: number + 1]:
        exec(compile(block, f"README example {number}", "exec"), namespace)
