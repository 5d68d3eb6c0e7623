"""Parameter values for the backends: name -> numpy array, named as `analysis.parameters`.

Every backend takes the same dict, so one set of weights runs through PyTorch, onnxruntime
and TVM alike (`graphspec verify`). `random_params` is deterministic in its seed and keeps
activations in a sane range: weights ~ N(0, 0.02²) as in GPT-2/ViT/Swin init, LayerNorm
weights near 1, biases small but non-zero (so that a dropped bias shows up as an error).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from graphspec.analysis import tensors
from graphspec.ir import Graph


def random_params(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name, shape in tensors(graph).items():
        shape = tuple(int(d) for d in shape)
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "running_var":  # BatchNorm statistics (buffers) must be positive
            a = rng.uniform(0.5, 1.5, shape)
        elif leaf == "bias":
            a = rng.normal(0.0, 0.02, shape)
        elif leaf == "weight" and len(shape) == 1:  # LayerNorm gain
            a = 1.0 + rng.normal(0.0, 0.1, shape)
        else:
            a = rng.normal(0.0, 0.02 if len(shape) > 1 else 0.1, shape)
        out[name] = a.astype(np.float32)
    return out


def random_inputs(graph: Graph, batch: int | None = None, seed: int = 1) -> dict[str, np.ndarray]:
    """One random value per graph input: an image ~ N(0, 1), token ids uniform in the vocabulary."""
    rng = np.random.default_rng(seed)
    vocab = min((n.a["num"] for n in graph if n.op == "embedding" and "pos" not in n.local
                 and "type" not in n.local), default=1000)
    out = {}
    for n in graph.inputs:
        shape = tuple(int(d) for d in n.shape)
        if batch is not None:
            shape = (batch, *shape[1:])
        if n.dtype == "i64":
            out[n.name] = rng.integers(0, vocab, shape, dtype=np.int64)
        else:
            out[n.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def save(params: Mapping[str, np.ndarray], path: str | Path) -> Path:
    """Weights as one safetensors file (IR names as keys, no pickle), written atomically."""
    from safetensors.numpy import save as dump

    from graphspec.io import atomic_write

    return atomic_write(path, dump({k: np.ascontiguousarray(v) for k, v in params.items()}))


ITEMSIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4,
            "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}
MAX_HEADER = 100_000_000  # safetensors' own limit


def tensor_bytes(f, size: int) -> int:
    """The bytes of tensor data a safetensors file lists, from its header alone (8 bytes of
    length, then JSON) read from the open file `f` of `size` bytes; ValueError if the header is
    not one or claims more than the file holds. Nothing is allocated by what the header claims."""
    import json
    import math

    head = f.read(8)
    n = int.from_bytes(head, "little") if len(head) == 8 else -1
    if not 2 <= n <= min(MAX_HEADER, size - 8):
        raise ValueError(f"the header length {n:,} does not fit the file's {size:,} bytes")
    try:
        header = json.loads(f.read(n))
    except (ValueError, RecursionError) as e:
        raise ValueError(f"the header is not JSON ({str(e)[:100]})") from None
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    end = 0
    for name, t in header.items():
        if name == "__metadata__":
            continue
        try:
            (b, e), shape, item = t["data_offsets"], t["shape"], ITEMSIZE[t["dtype"]]
            ints = isinstance(shape, list) and all(type(d) is int and d >= 0 for d in [b, e, *shape])
            if not (ints and b <= e == b + math.prod(shape) * item):
                raise ValueError
        except (TypeError, KeyError, ValueError):
            raise ValueError(f"tensor {str(name)[:80]!r}: {str(t)[:120]} is not a safetensors entry") from None
        end = max(end, e)
    if 8 + n + end > size:
        raise ValueError(f"the header lists {end:,} bytes of tensors, the file holds {size - 8 - n:,}: "
                         "it is truncated or damaged")
    return end


def load(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of a safetensors file's bytes; ValueError if they are not one."""
    from safetensors.numpy import load as parse

    try:
        return parse(data)
    except Exception as e:  # SafetensorsError, or a builtin for a header that is not JSON
        raise ValueError(f"not a safetensors file ({e})") from None
