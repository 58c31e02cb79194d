__version__ = "0.1.0"  # the one version string; pyproject.toml reads it
