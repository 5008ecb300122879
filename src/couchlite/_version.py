"""The package version (one place: the package, the User-Agent and the Server header read it)."""

__version__ = "0.1.0"
