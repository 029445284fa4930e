"""The package version, in one place (``edgekit.__version__``, manifests, the agent's info)."""

__version__ = "0.1.0"
