"""TVM targets and toolchains: the llvm/cuda `Target`, CPU threads, nvcc, the CUDA device, and
the CUDA source a built executable carries (backends/tvm.py re-exports all of it)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any


class ToolchainError(RuntimeError):
    """A target's toolchain or device is missing (no nvcc, no GPU): a user error."""


def target(kind: str, arch: str | None = None):
    """`llvm` (this CPU: its instruction set and all its cores) or `cuda` for `arch` (sm_90;
    default: `cuda_arch()`).

    NB: without `mcpu`, LLVM emits baseline x86-64 (SSE2): MetaSchedule's best Swin-T matmuls
    then top out near 35 GMAC/s on a machine where PyTorch's reach 165 (AVX-512). So the host's
    CPU is named, as `-mcpu=native` would; a library built so needs that instruction set where
    it runs. GRAPHSPEC_LLVM_MCPU=x86-64 (or another LLVM CPU name) builds for another machine."""
    import tvm

    if kind == "llvm":
        return tvm.target.Target({"kind": "llvm", "mcpu": llvm_cpu(), "num-cores": cpu_threads()})
    if kind == "cuda":
        check_cuda_toolchain()
        from graphspec.backends.cuda import cuda_arch

        return tvm.target.Target({"kind": "cuda", "arch": arch or cuda_arch()}, host="llvm")
    raise ValueError(f"unknown TVM target {kind!r}; use llvm or cuda")


def cpu_threads() -> int:
    """Threads for TVM's CPU kernels: TVM_NUM_THREADS if set, else the physical cores this
    process may run on (what PyTorch and onnxruntime use by default)."""
    if os.environ.get("TVM_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["TVM_NUM_THREADS"]))
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    cores = set()
    for c in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{c}/topology")
        try:
            cores.add(((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip()))
        except OSError:  # no sysfs topology: count logical CPUs
            cores.add(("cpu", str(c)))
    return max(1, len(cores))


def use_cpu_threads() -> int:
    """Make TVM's CPU runtime use `cpu_threads()` threads, in this process and the ones it starts
    (MetaSchedule's measuring workers); returns the count. Call before the first kernel runs.

    NB: left alone, TVM's thread pool takes half the logical CPUs on x86, assuming two
    hyper-threads per core: on this 2-vCPU machine (one thread per core) every kernel ran on
    one core while PyTorch used two, and tuning measured schedules on one core too."""
    n = cpu_threads()
    os.environ["TVM_NUM_THREADS"] = str(n)
    return n


def llvm_cpu() -> str:
    """The LLVM CPU name llvm builds target: GRAPHSPEC_LLVM_MCPU, else this machine's."""
    from tvm.target import codegen

    name = os.environ.get("GRAPHSPEC_LLVM_MCPU") or codegen.llvm_get_system_cpu()
    if not codegen.llvm_is_valid_cpu(name, codegen.llvm_get_system_triple()):
        raise ToolchainError(f"LLVM does not know the CPU {name!r} (GRAPHSPEC_LLVM_MCPU); "
                             "use a name such as x86-64, skylake-avx512 or native's")
    return name


def check_cuda_toolchain() -> str:
    """The path of nvcc, or ToolchainError with the fix."""
    import shutil

    nvcc = shutil.which("nvcc") or (os.path.join(os.environ["CUDA_HOME"], "bin", "nvcc")
                                    if os.environ.get("CUDA_HOME") else None)
    if not nvcc or not os.path.exists(nvcc):
        raise ToolchainError("the cuda target needs nvcc (the CUDA toolkit) on PATH; "
                             "install it or set CUDA_HOME, or build for llvm")
    return nvcc


def has_cuda_device() -> bool:
    try:
        import tvm

        return bool(tvm.cuda(0).exist)
    except Exception:  # noqa: BLE001  (no runtime, no driver)
        return False


def cuda_kernels(executable: Any) -> list[str]:
    """Names of the CUDA `__global__` kernels in a built executable (empty for llvm builds)."""
    src = cuda_source(executable)
    return re.findall(r'extern "C" __global__ void (?:__launch_bounds__\(\d+\) )?(\w+)\(', src)


def cuda_source(executable: Any) -> str:
    return "\n".join(cuda_source_modules(executable))


def cuda_source_modules(executable: Any) -> list[str]:
    """The CUDA source of each cuda module a built executable imports (see backends/cuda.py)."""
    mods, stack = [], [executable.mod if hasattr(executable, "mod") else executable]
    while stack:
        m = stack.pop()
        mods.append(m)
        stack.extend(m.imports)
    return [m.inspect_source() for m in mods if m.kind == "cuda"]
