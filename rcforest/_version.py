"""The version of rcforest, read by the package, its files and the build (pyproject.toml)."""

__version__ = "0.1.0"
