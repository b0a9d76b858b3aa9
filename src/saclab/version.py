"""The package version (a leaf module, so every layer can import it without importing the package API)."""

__version__ = "0.1.0"
