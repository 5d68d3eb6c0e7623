"""Interchange with Hugging Face: configs to specs (`hf_import`), specs and weights back (`hf_export`)."""

from graphspec.interchange.hf_import import from_hf_config, supported  # noqa: F401
