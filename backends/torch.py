"""The PyTorch target and the eager reference that every other backend is checked against.

`generate(graph, spec, params)` writes what graphspec.codegen generates: a hand-readable
`model.py` (which never imports graphspec) and `weights.safetensors`, the module's whole state
dict (the IR's parameters under their names, and its persistent buffers), so that `load` can
load it strictly and without pickle. `run_eager(graph, params, inputs)` is the reference: the generated
module when codegen is available, else graphspec.interpret (the IR executed op by op by the
ops' `eval` rules).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graphspec.io import atomic_write


class TorchTargetError(RuntimeError):
    """The torch target cannot be produced (codegen unavailable or failing)."""


def _codegen():
    try:
        from graphspec import codegen
    except ImportError:  # pragma: no cover
        return None
    return codegen if hasattr(codegen, "generate") else None


def codegen_available() -> bool:
    return _codegen() is not None


def load_source(source: str, name: str = "graphspec_generated"):
    """Import generated source as a fresh module (not cached in sys.modules)."""
    spec = importlib.util.spec_from_loader(name, loader=None)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses / pickling need the module importable while executing
    try:
        exec(compile(source, f"<{name}>", "exec"), mod.__dict__)  # noqa: S102  (our own generated code)
    finally:
        sys.modules.pop(name, None)
    return mod


def _root_class(mod, graph) -> type:
    import torch

    from graphspec.ir import Graph  # noqa: F401

    want = graph.modules.get("").cls if "" in graph.modules else None
    if want and hasattr(mod, want):
        return getattr(mod, want)
    classes = [v for v in vars(mod).values() if isinstance(v, type) and issubclass(v, torch.nn.Module)
               and v.__module__ == mod.__name__]
    if not classes:
        raise TorchTargetError("the generated code defines no nn.Module")
    return classes[-1]  # modules are written from small to large


def state_dict(params: Mapping[str, np.ndarray]) -> dict:
    import torch

    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in params.items()}


TORCH_DTYPES = {"float32": "float32", "float16": "float16", "bfloat16": "bfloat16"}


def torch_dtype(dtype: str):
    import torch

    return getattr(torch, TORCH_DTYPES[dtype])


def module_from_source(source: str, graph, params: Mapping[str, np.ndarray], dtype: str = "float32"):
    import torch

    mod = load_source(source)
    net = _root_class(mod, graph)()
    missing, unexpected = net.load_state_dict(state_dict(params), strict=False)
    missing = [k for k in missing if k in params or not _is_buffer(net, k)]
    if missing or unexpected:
        raise TorchTargetError(f"generated module's state dict differs from the IR's parameters: "
                               f"missing {missing[:3]}, unexpected {list(unexpected)[:3]}")
    # NB: half-precision modules are the float32 module cast, as `model.to(torch.bfloat16)`:
    # PyTorch's layer_norm, softmax, GELU and matmul kernels compute in float32 inside (opmath)
    return net.eval().to(torch.float32 if dtype == "float32" else torch_dtype(dtype))


def _is_buffer(net, key: str) -> bool:
    return key in dict(net.named_buffers())


def _call(net, graph, inputs: Mapping[str, np.ndarray], dtype: str = "float32") -> list[np.ndarray]:
    return call(net, [inputs[n.name] for n in graph.inputs], dtype)


def call(net, args, dtype: str = "float32") -> list[np.ndarray]:
    """`net(*args)` without grad: float inputs in `dtype`, float outputs back as float32 arrays."""
    import torch

    def arg(a):
        t = torch.from_numpy(np.ascontiguousarray(a))
        return t.to(torch_dtype(dtype)) if t.is_floating_point() and dtype != "float32" else t

    with torch.no_grad():
        out = net(*(arg(a) for a in args))
    outs = out if isinstance(out, (tuple, list)) else [out]
    return [(o.float() if o.is_floating_point() else o).detach().numpy() for o in outs]


@dataclass
class Generated:
    source: str
    net: Any
    graph: Any
    params: Mapping[str, np.ndarray]
    info: dict = field(default_factory=dict)
    dtype: str = "float32"

    def run(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return _call(self.net, self.graph, inputs, self.dtype)

    def save(self, d: Path) -> dict[str, str]:
        from safetensors.torch import save

        atomic_write(d / "model.py", self.source)
        atomic_write(d / "weights.safetensors", save(unshared(self.net.state_dict())))
        return {"model": "model.py", "weights": "weights.safetensors"}


def unshared(sd: Mapping) -> dict:
    """A state dict safetensors can write: tied tensors (GPT-2's head) copied apart."""
    out, seen = {}, set()
    for k, v in sd.items():
        v = v.detach()
        key = (v.untyped_storage().data_ptr(), v.storage_offset())
        out[k] = v.clone().contiguous() if key in seen else v.contiguous()
        seen.add(key)
    return out


def generate(graph, spec, params: Mapping[str, np.ndarray], dtype: str = "float32") -> Generated:
    cg = _codegen()
    if cg is None:
        raise TorchTargetError("the torch target needs graphspec.codegen, which is not available in "
                               "this installation")
    source = cg.generate(graph, spec)
    net = module_from_source(source, graph, params, dtype)
    cls = type(net).__name__
    if dtype != "float32":
        from graphspec.codegen.dtype import with_dtype

        source = with_dtype(source, cls, dtype)
    return Generated(source, net, graph, params,
                     {"class": cls, "lines": source.count("\n"), "inputs": [n.name for n in graph.inputs],
                      "dtype": dtype}, dtype)


def load(build_dir: Path, manifest: Mapping):
    """A runner for a torch build directory: imports model.py, loads weights.safetensors strictly.

    NB: this executes model.py: run only build directories you trust (backends/manifest.py)."""
    import torch
    from graphspec.backends import manifest as mf
    from safetensors.torch import load as load_weights

    art = manifest["artifacts"]
    src, raw = mf.artifact(build_dir, manifest, "model"), mf.artifact(build_dir, manifest, "weights")
    where = build_dir / art["model"]
    try:
        mod = load_source(src.decode("utf-8"))
        classes = [v for v in vars(mod).values() if isinstance(v, type)
                   and issubclass(v, torch.nn.Module) and v.__module__ == mod.__name__]
        if not classes:
            raise TorchTargetError("it defines no nn.Module")
        want = (manifest.get("torch") or {}).get("class")
        net = next((c for c in classes if c.__name__ == want), classes[-1])()
    except Exception as e:  # a damaged model.py: SyntaxError, NameError, ...
        raise TorchTargetError(f"{where} cannot be imported ({type(e).__name__}: {e}); "
                               f"{mf.REBUILD}") from None
    where = build_dir / art["weights"]
    try:
        sd = load_weights(raw)
    except Exception as e:  # safetensors' SafetensorError, or a builtin for a bad header
        raise TorchTargetError(f"{where} is not a safetensors file ({e}); {mf.REBUILD}") from None
    have = set(net.state_dict())
    missing, unexpected = sorted(have - set(sd)), sorted(set(sd) - have)
    if missing or unexpected:
        raise TorchTargetError(f"{where} does not fit {where.parent / art['model']}: "
                               f"{len(missing)} missing keys {missing[:4]}, {len(unexpected)} "
                               f"unexpected keys {unexpected[:4]} (weights from another build?); "
                               f"{mf.REBUILD}")
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as e:  # size mismatch
        raise TorchTargetError(f"{where} does not fit the model: {str(e).splitlines()[-1].strip()}; "
                               f"{mf.REBUILD}") from None
    net.eval()
    names = [i["name"] for i in manifest["inputs"]]
    dtype = (manifest.get("torch") or {}).get("dtype", "float32")
    if dtype != "float32":  # the weights file holds them in dtype; load_state_dict cast them up
        net.to(torch_dtype(dtype))

    def run(inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return call(net, [inputs[n] for n in names], dtype)

    return run


def run_eager(graph, params: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray],
              spec: Any = None, dtype: str = "float32") -> list[np.ndarray]:
    """PyTorch eager outputs of `graph`, in `graph.outputs` order (the reference)."""
    if spec is not None and codegen_available():
        return generate(graph, spec, params, dtype).run(inputs)
    if dtype != "float32":
        raise TorchTargetError(f"a {dtype} eager reference needs graphspec.codegen")
    import torch

    from graphspec import interpret

    with torch.no_grad():
        out = interpret.run(graph, {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()},
                            state_dict(params))
    return [out[o].numpy() for o in graph.outputs]
