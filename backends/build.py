"""Build directories: one target's artifact, its weights and a manifest, written atomically.

    graphspec build swin_t --target onnx -o build/swin_t-onnx
    build/swin_t-onnx/
        model.onnx          # or model.so + weights.safetensors (llvm, cuda),
                            #    model.py + weights.safetensors (torch)
        manifest.json       # spec path and sha256, passes, params, MACs, versions, timings,
                            # cache key, and the sha256 of every artifact (`files`)

Without `-o` the directory is `build/<name>-<target>`, `<name>` the spec's name reduced to
`[A-Za-z0-9._-]` (`name: ../../x` builds into `build/x-torch`). An existing directory that is
not a graphspec build (no graphspec manifest) and not empty is never replaced unless `--force`
says so; the current directory and its parents never are. The whole directory is written by
`graphspec.io.atomic_dir` under a lock: a failed, killed or concurrent build leaves the old
directory (or nothing) in place, and publishing is one atomic step. A rebuild whose cache key
(spec bytes, overrides, target, passes, batch, tuning, seed, graphspec version) matches the
manifest's, with every artifact still matching its sha256, is a cache hit and only updates the
manifest's `cache` record. MetaSchedule databases live in `<dir>/tuning` (or `--tune-dir`) and
are carried over to the rebuilt directory, so retuning is skipped. Before any weight is made,
the memory it needs is checked against a budget (backends/budget.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from graphspec.backends import budget
from graphspec.backends import manifest as mf
from graphspec.backends.manifest import FORMAT, MANIFEST, TARGETS

import graphspec
from graphspec import analysis
from graphspec.io import atomic_dir, atomic_write, dir_lock, refuse_holding, target_dir


class BuildError(Exception):
    """A user-facing build failure: bad target, missing toolchain or device (exit code 2)."""


@dataclass
class Prepared:
    """A spec loaded, lowered and passed, ready for a backend."""

    spec_path: Path
    spec_sha256: str
    overrides: tuple[str, ...]
    model: Any  # graphspec.Model
    graph: Any  # the graph after passes
    pass_report: list
    dynamic_batch: bool
    timings: dict[str, float] = field(default_factory=dict)


@contextmanager
def phase(timings: dict[str, float], name: str, log: Callable[[str], None] | None = None):
    """Time a phase into `timings[name]` and report it on `log`."""
    if log:
        log(f"[{name}] ...")
    t0 = time.perf_counter()
    yield
    timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - t0, 3)
    if log:
        log(f"[{name}] done in {timings[name]:.2f}s")


def check_target(target: str, tune: int = 0, dtype: str = "fp32", arch: str | None = None) -> tuple[str, str | None]:
    """Refuse a bad target, arch or dtype, or a missing toolchain or GPU, before any work is done;
    returns (target, arch): `cuda:sm_90` is ("cuda", "sm_90"), a cuda build without an arch gets
    `backends.cuda.cuda_arch()` (the local GPU's, else sm_90)."""
    from graphspec.backends.targets import check_dtype, parse_target

    if str(target).partition(":")[0] not in TARGETS:
        raise BuildError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)} (cuda:sm_90 names the arch)")
    target, arch = parse_target(target, arch)
    check_dtype(dtype)
    if target == "cuda":
        from graphspec.backends.cuda import cuda_arch
        from graphspec.backends.tvm import ToolchainError, check_cuda_toolchain, has_cuda_device

        try:
            check_cuda_toolchain()
            arch = cuda_arch(arch)
        except ToolchainError as e:
            raise BuildError(str(e)) from None
        if tune and not has_cuda_device():
            raise BuildError("--tune with --target cuda: tuning needs the GPU (MetaSchedule measures every "
                             "candidate kernel on this machine's GPU), and there is none here (tvm.cuda().exist "
                             "is False); build untuned (DLight's default GPU schedules), or tune on the GPU "
                             "machine and carry its database here (--tune-dir DIR is reused)")
    elif tune and target != "llvm":
        raise BuildError(f"--tune runs MetaSchedule on this machine: it supports --target llvm or cuda, not {target}")
    return target, arch


def prepare(spec: str | Path, overrides: tuple[str, ...] = (), pass_opts: Mapping | None = None,
            batch: str | int | None = None, apply_passes: Callable | None = None,
            log: Callable[[str], None] | None = None) -> Prepared:
    """Load the spec (with `batch=B` when `batch` is a number), lower it and run the passes."""
    path = graphspec.resolve_spec(spec)
    sha = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""
    dynamic = str(batch) == "dynamic"
    ov = tuple(overrides) + ((f"batch={int(batch)}",) if batch not in (None, "dynamic") else ())
    timings: dict[str, float] = {}
    with phase(timings, "load", None):
        model = graphspec.load(path, ov)
    report: list = []
    graph = model.graph
    if apply_passes is not None:
        with phase(timings, "passes", None):
            graph, report = apply_passes(graph, **dict(pass_opts or {}))
    return Prepared(path, sha, ov, model, graph, list(report or []), dynamic, timings)


def cache_key(p: Prepared, target: str, pass_opts: Mapping | None, tune: int, seed: int,
              dtype: str = "fp32", arch: str | None = None, tensor_cores: bool = True) -> str:
    from graphspec.backends.tvm import llvm_cpu

    opts = {k: v for k, v in dict(pass_opts or {}).items() if k != "print_after"}
    blob = json.dumps({"spec": p.spec_sha256, "overrides": list(p.overrides), "target": target,
                       "passes": opts, "dynamic": p.dynamic_batch, "tune": tune, "seed": seed,
                       "graphspec": graphspec.__version__, "dtype": dtype,
                       "cuda_arch": arch if target == "cuda" else None,
                       # cuda bf16 only (other builds keep their keys): the matmul schedule
                       **({"bf16_tensor_cores": tensor_cores} if target == "cuda" and dtype == "bf16" else {}),
                       "mcpu": llvm_cpu() if target == "llvm" else None},  # a library for another CPU
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"graphspec": graphspec.__version__, "python": platform.python_version()}
    for dist, key in (("torch", "torch"), ("apache-tvm", "tvm"), ("onnx", "onnx"),
                      ("onnxruntime", "onnxruntime")):
        try:
            out[key] = version(dist)
        except PackageNotFoundError:
            out[key] = None
    return out


def inputs_signature(graph) -> list[dict]:
    """What `graphspec run` needs to make random inputs without the spec."""
    vocab = min((n.a["num"] for n in graph if n.op == "embedding" and n.local == "tokens"), default=None)
    return [{"name": n.name, "shape": [int(d) for d in n.shape], "dtype": n.dtype,
             **({"vocab": int(vocab)} if n.dtype == "i64" and vocab else {})} for n in graph.inputs]


def safe_name(name: str) -> str:
    """A spec name as one path component: `[A-Za-z0-9._-]`, no leading dot, at most 64 chars."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._")[:64].strip("._") or "model"


def default_dir(name: str, target: str) -> Path:
    return Path("build") / f"{safe_name(name)}-{target}"


def _read_manifest(out: Path) -> dict | None:
    """The manifest of a graphspec build directory (any format), else None."""
    try:
        m = json.loads(mf._regular(out / MANIFEST, mf.MAX_MANIFEST, "the manifest"))
    except (mf.ManifestError, ValueError, UnicodeDecodeError):
        return None
    return m if isinstance(m, dict) and isinstance(m.get("format"), int) and "artifacts" in m else None


def _check_replaceable(out: Path, force: bool) -> None:
    """Refuse to replace a directory that is not a graphspec build (unless it is empty)."""
    if not os.path.lexists(out):
        return
    if not out.is_dir():
        raise BuildError(f"{out} exists and is not a directory; choose another -o")
    if force or _read_manifest(out) is not None or not any(out.iterdir()):
        return
    raise BuildError(f"{out} is not a graphspec build directory (it has no graphspec {MANIFEST}) "
                     "and is not empty: a build would replace everything in it; choose another "
                     "-o, or pass --force to replace it")


def _check_foreign(out: Path) -> None:
    """Refuse to replace a build directory that holds entries graphspec did not write there (a
    file the user added, another build made with -o inside it): the rebuild would delete them."""
    m = _read_manifest(out)
    if m is None:
        return
    ours = {MANIFEST, "tuning", *(m.get("files") or {})}
    foreign = sorted(e.name for e in out.iterdir() if e.name not in ours)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise BuildError(f"{out} is a graphspec build, and it also holds {shown}, which graphspec did not write; "
                         "a rebuild would delete them: move them out, choose another -o, or pass --force")


def _cache_hit(out: Path, key: str) -> dict | None:
    old = _read_manifest(out)
    if not old or mf.problems_of(old) or old.get("cache", {}).get("key") != key:
        return None
    try:
        for role in old["artifacts"]:
            mf.artifact(out, old, role)
    except mf.ManifestError:
        return None
    return old


def build(spec: str | Path, target: str, out: str | Path | None = None, *,
          overrides: tuple[str, ...] = (), pass_opts: Mapping | None = None,
          apply_passes: Callable | None = None, tune: int = 0, batch: str | int | None = None,
          seed: int = 0, tune_dir: str | Path | None = None, force: bool = False,
          memory_budget: str | None = None, log: Callable[[str], None] | None = None,
          dtype: str = "fp32", arch: str | None = None, tensor_cores: bool | None = None) -> dict:
    """Build `spec` for `target` into the directory `out` (default: `default_dir`); returns
    the manifest. `force` rebuilds a cache hit and replaces a directory that is no build.
    `target` may name the cuda arch (`cuda:sm_90`, or `arch`); `dtype` is fp32, fp16 or bf16.
    `tensor_cores` (cuda bf16 only; default on): bf16 matmuls on tensor cores
    (backends/tensor_cores.py), else DLight's CUDA-core loops."""
    log = log or (lambda s: None)
    target, arch = check_target(target, tune, dtype, arch)
    if tensor_cores is not None and (target != "cuda" or dtype != "bf16" or tune):
        raise BuildError(f"--{'' if tensor_cores else 'no-'}tensor-cores chooses the schedule of an untuned "
                         f"cuda bf16 build's matmuls, not of this {target} {dtype}{' tuned' if tune else ''} build")
    tensor_cores = tensor_cores is not False
    p = prepare(spec, overrides, pass_opts, batch, apply_passes)
    if tune and p.dynamic_batch:  # MetaSchedule measures kernels: it needs their shapes
        raise BuildError("--tune needs a static batch (MetaSchedule measures kernels of one shape): "
                         "give --batch N, or build --batch dynamic untuned")
    out = target_dir(out or default_dir(p.model.spec.name, target))
    refuse_holding(out, {"the spec": p.spec_path})
    if tune_dir and out.resolve() in Path(os.path.abspath(tune_dir)).resolve().parents:
        raise BuildError(f"--tune-dir {tune_dir} is inside -o {out}, which the build replaces (its database would "
                         f"be lost); drop --tune-dir (the default {out / 'tuning'} is carried over) or put it elsewhere")
    _check_replaceable(out, force)  # before the lock (which creates the parent folder) and again
    budget.check(budget.graph_bytes(p.graph), f"building {p.model.spec.name!r}", memory_budget)
    with dir_lock(out):
        _check_replaceable(out, force)
        key = cache_key(p, target, pass_opts, tune, seed, dtype, arch, tensor_cores)
        old = None if force else _cache_hit(out, key)
        if old:
            old["cache"].update(hit=True, hits=old["cache"].get("hits", 0) + 1, last_hit=_now())
            atomic_write(out / MANIFEST, json.dumps(old, indent=1, default=str) + "\n")
            return old
        if not force:
            _check_foreign(out)
        return _build(p, target, out, key, pass_opts, tune, seed, tune_dir, log, dtype, arch, tensor_cores)


def _build(p: Prepared, target: str, out: Path, key: str, pass_opts, tune: int, seed: int,
           tune_dir, log, dtype: str = "fp32", arch: str | None = None, tensor_cores: bool = True) -> dict:
    from graphspec.backends import targets as comp

    timings = dict(p.timings)
    with atomic_dir(out, lock=False) as tmp:
        tdir = Path(tune_dir) if tune_dir else tmp / "tuning"
        if tune and not tune_dir and (out / "tuning").exists():
            shutil.copytree(out / "tuning", tdir, symlinks=True)  # carry the database over (links as links)
        from graphspec.backends.weights import random_params

        params = random_params(p.graph, seed)
        built = comp.compile(p.graph, params, target, dynamic_batch=p.dynamic_batch, tune=tune,
                             tune_dir=tdir, spec=p.model.spec, timings=timings, log=log, dtype=dtype,
                             arch=arch, tensor_cores=tensor_cores)
        if "tuning" in built.info and not tune_dir:
            built.info["tuning"]["work_dir"] = str(out / "tuning")  # where it lives once published
        with phase(timings, "save", log):
            artifacts = built.save(tmp)
        manifest = {
            "format": FORMAT,
            "spec": {"path": str(p.spec_path), "sha256": p.spec_sha256, "name": p.model.spec.name,
                     "overrides": list(p.overrides)},
            "target": target,
            "dtype": dtype,  # weights and activations (norm/softmax statistics in float32)
            "arch": arch,  # the CUDA architecture of a cuda build's kernels, else None
            "batch": "dynamic" if p.dynamic_batch else int(p.graph.inputs[0].shape[0]),
            "passes": {"options": {k: v for k, v in dict(pass_opts or {}).items()},
                       "report": p.pass_report},
            "params": int(analysis.param_count(p.graph)),
            "macs": int(analysis.macs(p.graph)),
            "inputs": inputs_signature(p.graph),
            "outputs": list(p.graph.outputs),
            "weights": {"init": "random", "seed": seed},
            "artifacts": artifacts,
            "files": {name: mf.file_record(tmp / name) for name in sorted(set(artifacts.values()))},
            **built.info,
            "versions": versions(),
            "timings_s": timings,
            "cache": {"key": key, "hit": False, "hits": 0},
            "created": _now(),
        }
        atomic_write(tmp / MANIFEST, json.dumps(manifest, indent=1, default=str) + "\n")
        _publishable(tmp)
    return manifest


def _publishable(d: Path) -> None:
    """mkdtemp/mkstemp make 0700/0600 entries: give the build the modes of a normal directory."""
    umask = os.umask(0)
    os.umask(umask)
    for p in [d, *d.rglob("*")]:
        p.chmod((0o777 if p.is_dir() or os.access(p, os.X_OK) else 0o666) & ~umask)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def random_inputs_for(manifest: Mapping, batch: int | None = None, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for i in manifest["inputs"]:
        shape = list(i["shape"])
        if batch is not None:
            shape[0] = batch
        if i["dtype"] == "i64":
            out[i["name"]] = rng.integers(0, i.get("vocab", 1000), shape, dtype=np.int64)
        else:
            out[i["name"]] = rng.standard_normal(shape).astype(np.float32)
    return out


def load(build_dir: str | Path, batch: int | None = None, memory_budget: str | None = None):
    """(manifest, runner) for a build directory; runner(inputs dict) -> list of arrays.

    The manifest is checked, and each artifact against its sha256, before anything is loaded
    (backends/manifest.py); the weights and inputs must fit the memory budget."""
    from graphspec.backends import targets as comp

    build_dir = Path(build_dir)
    m = mf.read(build_dir)
    budget.check(budget.manifest_bytes(m, batch), f"running {build_dir}", memory_budget)
    return m, comp.load(build_dir, m)
