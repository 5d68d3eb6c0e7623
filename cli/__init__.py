"""The `graphspec` command line (click). Installed as graphspec.cli."""
