"""Code generation from the IR (installed as graphspec.codegen)."""
