"""The spec DSL: YAML files with compact forms, read safely and validated with locations."""

from graphspec.spec.errors import Diagnostic, Loc, SpecError  # noqa: F401
from graphspec.spec.schema import Attn, EmbedSpec, HeadSpec, InputSpec, ModelSpec, StackSpec, load  # noqa: F401
