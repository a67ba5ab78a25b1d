"""The package version, in its own module so that the HTTP layer can put it
in the User-Agent without importing the package's public API."""

__version__ = "0.1.0"
