"""One graph, four targets: compile in memory, run, save to and load from a build directory.

`compile(graph, params, target)` returns a `Compiled`: `run(inputs)` gives the outputs as
numpy arrays, `save(dir)` writes the artifact files and `info` goes into the manifest. Used
by `graphspec build`, `graphspec verify` and benchmarks/bench_backends.py alike.

    target  artifact                         runs here
    torch   model.py + weights.pt            yes (generated nn.Module)
    onnx    model.onnx (weights inside)      yes (onnxruntime, CPU)
    llvm    model.so + weights.npz           yes (TVM Relax VM)
    cuda    model.so + weights.npz           needs an NVIDIA GPU; builds with nvcc alone
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from graphspec.backends.build import BuildError, phase

from graphspec.io import atomic_write

Inputs = Mapping[str, np.ndarray]


@dataclass
class Compiled:
    target: str
    run: Callable[[Inputs], list[np.ndarray]]
    save: Callable[[Path], dict[str, str]]
    info: dict[str, Any] = field(default_factory=dict)
    handle: Any = None  # the backend's own object (TVM: (executable, Lowered); ONNX: ModelProto)


def compile(graph, params: Mapping[str, np.ndarray], target: str, *, dynamic_batch: bool = False,
            tune: int = 0, tune_dir: str | Path | None = None, spec: Any = None,
            timings: dict[str, float] | None = None, log: Callable[[str], None] | None = None) -> Compiled:
    timings = {} if timings is None else timings
    if target == "onnx":
        return _onnx(graph, params, dynamic_batch, timings, log)
    if target in ("llvm", "cuda"):
        return _tvm(graph, params, target, dynamic_batch, tune, tune_dir, timings, log)
    if target == "torch":
        return _torch(graph, params, spec, timings, log)
    raise BuildError(f"unknown target {target!r}")


# -- onnx ------------------------------------------------------------------------------------
def _onnx(graph, params, dynamic_batch, timings, log) -> Compiled:
    from graphspec.backends import onnx as gx

    with phase(timings, "export", log):
        model = gx.export(graph, params, dynamic_batch=dynamic_batch)
    sess: list[Any] = []

    def run(inputs: Inputs) -> list[np.ndarray]:
        if not sess:
            sess.append(gx.session(model))
        return sess[0].run(None, dict(inputs))

    def save(d: Path) -> dict[str, str]:
        gx.save(model, d / "model.onnx")
        return {"model": "model.onnx"}

    ops = Counter(n.op_type for n in model.graph.node)
    info = {"onnx": {"opset": gx.OPSET, "nodes": len(model.graph.node), "initializers": len(model.graph.initializer),
                     "ops": dict(ops.most_common())}}
    return Compiled("onnx", run, save, info, handle=model)


# -- tvm -------------------------------------------------------------------------------------
def _tvm(graph, params, target, dynamic_batch, tune, tune_dir, timings, log) -> Compiled:
    from graphspec.backends import tvm as gt
    from graphspec.backends import weights

    with phase(timings, "lower", log):  # tuned: attention as matmuls, which MetaSchedule can tune
        low = gt.lower(graph, dynamic_batch=dynamic_batch, attention="matmul" if tune else "op")
    db, tinfo = None, None
    if tune:
        if tune_dir is None:
            raise BuildError("--tune needs a directory for the MetaSchedule database")
        with phase(timings, "tune", log), _progress(Path(tune_dir), tune, log):
            from graphspec.backends.metaschedule import tune as ms_tune

            db, tinfo = ms_tune(low, tune_dir, tune, kind=target, log=log)
    with phase(timings, "compile", log):
        ex, binfo = gt.build(low, target, database=db)
    if tinfo is not None:
        tinfo.update(prim_funcs=binfo.pop("prim_funcs", None), applied=binfo.pop("tuned_funcs", None),
                     prepacked_weights=binfo.pop("prepacked_weights", None),
                     padded_matmuls=binfo.pop("padded_matmuls", None))
    runner: list[Any] = []

    def run(inputs: Inputs) -> list[np.ndarray]:
        if not runner:
            if target == "cuda" and not gt.has_cuda_device():
                raise BuildError("the cuda build cannot run here: no CUDA GPU (tvm.cuda().exist is False)")
            runner.append(gt.Runner(ex, low.params, params, device="cpu" if target == "llvm" else "cuda"))
        return runner[0](*(inputs[n] for n in low.inputs))

    def save(d: Path) -> dict[str, str]:
        gt.export_library(ex, d / "model.so")
        weights.save(params, d / "weights.npz")
        atomic_write(d / "model.relax.py", low.script())
        return {"library": "model.so", "weights": "weights.npz", "relax": "model.relax.py"}

    info = {"tvm": {**binfo, "inputs": low.inputs, "params": low.params, "dynamic_batch": dynamic_batch,
                    "attention": low.attention},
            **({"tuning": tinfo} if tinfo is not None else {})}
    return Compiled(target, run, save, info, handle=(ex, low))


class _progress:
    """Print MetaSchedule's progress (records in the database) while tuning runs."""

    def __init__(self, work_dir: Path, trials: int, log):
        self.path, self.trials, self.log = work_dir / "database_tuning_record.json", trials, log
        self.stop = threading.Event()

    def __enter__(self):
        if self.log:
            self.thread = threading.Thread(target=self._poll, daemon=True)
            self.thread.start()
        return self

    def _poll(self):
        last = -1
        while not self.stop.wait(5.0):
            try:
                n = sum(1 for _ in self.path.open())
            except OSError:
                continue
            if n != last:
                self.log(f"[tune] {n}/{self.trials} trials measured")
                last = n

    def __exit__(self, *exc):
        self.stop.set()
        return False


# -- torch -----------------------------------------------------------------------------------
def _torch(graph, params, spec, timings, log) -> Compiled:
    from graphspec.backends import torch as gtorch

    with phase(timings, "codegen", log):
        gen = gtorch.generate(graph, spec, params)

    def run(inputs: Inputs) -> list[np.ndarray]:
        return gen.run(inputs)

    return Compiled("torch", run, gen.save, {"torch": gen.info})


# -- loading a build directory ---------------------------------------------------------------
def load(build_dir: Path, manifest: Mapping) -> Callable[[Inputs], list[np.ndarray]]:
    target = manifest["target"]
    art = manifest["artifacts"]
    if target == "onnx":
        from graphspec.backends import onnx as gx

        sess = gx.session(build_dir / art["model"])
        return lambda inputs: sess.run(None, dict(inputs))
    if target in ("llvm", "cuda"):
        from graphspec.backends import tvm as gt
        from graphspec.backends import weights

        if target == "cuda" and not gt.has_cuda_device():
            raise BuildError("this is a cuda build and there is no CUDA GPU here to run it; "
                             "run it on a GPU machine, or build --target llvm")
        lib = gt.load_library(build_dir / art["library"])
        info = manifest["tvm"]
        r = gt.Runner(lib, info["params"], weights.load(build_dir / art["weights"]),
                      device="cpu" if target == "llvm" else "cuda")
        return lambda inputs: r(*(inputs[n] for n in info["inputs"]))
    if target == "torch":
        from graphspec.backends import torch as gtorch

        return gtorch.load(build_dir, manifest)
    raise BuildError(f"unknown target {target!r} in {build_dir}")


def timed(run: Callable[[Inputs], list[np.ndarray]], inputs: Inputs, repeat: int = 5,
          budget_s: float = 20.0) -> tuple[list[np.ndarray], float]:
    """(outputs, median seconds) over up to `repeat` calls after one warm-up, within a budget."""
    out = run(inputs)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeat and (not times or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        run(inputs)
        times.append(time.perf_counter() - t0)
    return out, float(np.median(times))
