"""The package version: the one place the package metadata (``pyproject.toml``), the
User-Agent and the Server header read it from."""

__version__ = "0.1.0"
