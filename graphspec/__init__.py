"""graphspec: transformer specs -> typed IR -> passes -> analysis -> PyTorch / ONNX / TVM.

    import graphspec
    m = graphspec.load("specs/swin_t.yaml", overrides=["img_size=384", "M=12"])
    m.params(), m.macs()            # 87_903_584-style exact integers
    print(m.graph)                  # the IR, one line per node
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from graphspec import analysis
from graphspec.ir import Graph, Node  # noqa: F401
from graphspec.lower import lower
from graphspec.spec import ModelSpec, SpecError  # noqa: F401
from graphspec.spec import load as load_spec

__version__ = "0.1.0"


def _specs_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("graphspec.specs")
    return Path(next(iter(spec.submodule_search_locations))) if spec else Path("specs")


SPECS_DIR = _specs_dir()


@dataclass
class Model:
    """A loaded spec and its IR."""

    spec: ModelSpec
    graph: Graph

    def params(self):
        return analysis.param_count(self.graph)

    def active_params(self):
        """Parameters one token uses (a mixture of experts: top_k of its experts)."""
        return analysis.active_param_count(self.graph)

    def macs(self, convention: str = "macs"):
        conv = analysis.Convention.named(convention)
        return analysis.macs(analysis.counted_graph(self.spec, self.graph, conv), conv)

    def codegen(self) -> str:
        """The model as one standalone PyTorch file (graphspec.codegen)."""
        from graphspec.codegen import generate

        return generate(self.graph, self.spec)

    def to_torch(self, **kwargs):
        """An instance of the generated module (its source run in a fresh module namespace)."""
        from graphspec.codegen import emit, load

        gen = emit(self.graph, self.spec)
        return getattr(load(gen.source), gen.class_name)(**kwargs)


def resolve_spec(path: str | Path) -> Path:
    """A spec path, or the name of a bundled spec (`swin_t`)."""
    p = Path(path)
    try:
        if p.exists() or p.suffix:
            return p
        bundled = SPECS_DIR / f"{p.name}.yaml"
        return bundled if bundled.exists() else p
    except (OSError, ValueError):  # a name too long for the file system: the loader reports it
        return p


def load(path: str | Path, overrides: list[str] | tuple[str, ...] = (), symbolic: bool = False) -> Model:
    spec = load_spec(str(resolve_spec(path)), overrides)
    return Model(spec, lower(spec, symbolic=symbolic))


def from_hf_config(config: dict, name: str | None = None, base: bool = False) -> str:
    """A Hugging Face config (the dict of a config.json) as spec text (graphspec.interchange);
    `base`: the family's base model where the config declares a head graphspec cannot build."""
    from graphspec.interchange import from_hf_config as convert

    return convert(config, name=name, base=base)
