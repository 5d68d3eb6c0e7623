"""Bundled model specs (YAML), installed as graphspec.specs."""
