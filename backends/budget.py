"""The memory budget: tensor sizes checked before any weight or input is allocated.

`graphspec build --set d=65536` on GPT-2 would make 24 GiB of random float32 weights, and the
backends hold a second copy (a torch state dict, ONNX initializers, TVM tensors). Before a
build, `verify` or `run` allocates anything, `check(...)` adds up, from the IR or the manifest:

    weights   2 x (parameters + buffers) x 4 bytes     (the numpy values and the backend's copy)
    inputs    the input tensors at the batch used
    peak      the largest single activation (a lower bound of the peak: the live set is larger)

and refuses with exit code 2 when the sum exceeds the budget: `--memory-budget` on the command
line, else the environment variable GRAPHSPEC_MEMORY_BUDGET, else min(50% of RAM, 16 GiB).
Sizes read `8G`, `512MiB`, `1.5TB` (binary units) or a byte count. `flops` and `inspect` never
allocate tensors and are not checked: they work for 7B-parameter models on any machine.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

GiB = 1 << 30
DEFAULT_CAP = 16 * GiB
ENV = "GRAPHSPEC_MEMORY_BUDGET"
COPIES = 2  # the numpy weights and the backend's own copy
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_BYTES = {"f32": 4, "i64": 8}


class BudgetError(Exception):
    """Over the memory budget, or a budget that does not parse (a user error: exit code 2)."""


def parse_size(text: str, where: str = ENV) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", str(text))
    if not m or float(m[1]) <= 0:
        raise BudgetError(f"{where}={text!r} is not a size; use e.g. 8G, 512MiB or a byte count")
    return int(float(m[1]) * _UNITS[m[2].lower()])


def ram_bytes() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def free_bytes() -> int | None:
    """Memory this process can still take: MemAvailable, or less under a cgroup v2 limit (None: unknown)."""
    free = None
    try:
        with open("/proc/meminfo") as f:
            free = next((int(line.split()[1]) << 10 for line in f if line.startswith("MemAvailable:")), None)
    except (OSError, ValueError):
        pass
    try:
        cgroup = Path("/sys/fs/cgroup")
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            left = int(limit) - int((cgroup / "memory.current").read_text())
            free = left if free is None else min(free, left)
    except (OSError, ValueError):
        pass
    return free


def budget(flag: str | None = None) -> tuple[int, str]:
    """(bytes, where the figure comes from)."""
    if flag:
        return parse_size(flag, "--memory-budget"), "--memory-budget"
    if os.environ.get(ENV):
        return parse_size(os.environ[ENV]), ENV
    ram = ram_bytes()
    if ram is None:
        return DEFAULT_CAP, "the default 16 GiB"
    return min(ram // 2, DEFAULT_CAP), f"the default min(50% of {fmt(ram)} RAM, 16 GiB)"


def fmt(n: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", GiB), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _numel(shape: Iterable) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def graph_bytes(graph, batch: int | None = None) -> dict[str, int]:
    """Weights, inputs and the largest activation of `graph`, in bytes (see the module doc)."""
    from graphspec.analysis import tensors

    def scaled(shape) -> int:
        shape = [int(d) for d in shape]
        if batch is not None and shape:
            shape[0] = batch
        return _numel(shape)

    weights = sum(_numel(s) for s in tensors(graph).values()) * 4 * COPIES
    inputs = sum(scaled(n.shape) * _BYTES.get(n.dtype, 4) for n in graph.inputs)
    peak = 0
    for n in graph:
        try:
            peak = max(peak, scaled(n.shape) * _BYTES.get(n.dtype, 4))
        except (TypeError, ValueError):  # a symbolic dim
            continue
    return {"weights (2 copies)": weights, "inputs": inputs, "peak activation": peak}


def manifest_bytes(manifest: Mapping, batch: int | None = None) -> dict[str, int]:
    """The same figures for a build directory, from its manifest (no activation figure)."""
    inputs = 0
    for i in manifest["inputs"]:
        shape = list(i["shape"])
        if batch is not None and shape:
            shape[0] = batch
        inputs += _numel(shape) * _BYTES.get(i["dtype"], 4)
    return {"weights (2 copies)": int(manifest["params"]) * 4 * COPIES, "inputs": inputs}


def check(parts: Mapping[str, int], what: str, flag: str | None = None) -> int:
    """Raise BudgetError when `parts` add up to more than the budget; returns the total."""
    need = sum(parts.values())
    limit, source = budget(flag)
    if need > limit:
        detail = ", ".join(f"{k} {fmt(v)}" for k, v in parts.items() if v)
        raise BudgetError(f"{what} would need about {fmt(need)} of memory ({detail}), over the "
                          f"budget of {fmt(limit)} ({source}); make the model smaller, or raise "
                          f"the budget with --memory-budget SIZE or {ENV}=SIZE")
    return need
