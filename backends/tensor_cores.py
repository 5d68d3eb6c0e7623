"""bf16 matmuls on tensor cores for TVM 0.27's cuda builds.

DLight's `gpu.Matmul` tensorizes a matmul only when its inputs are fp16 (or int8): a bf16
matmul becomes a loop of CUDA-core FMAs, about 1/15 of the H200's bf16 tensor-core rate, and TVM
0.27 ships no bf16 wmma/mma intrinsics. The hardware has them (`wmma.mma.sync ...
m16n16k16.f32.bf16.bf16.f32`, sm_80 and later) and TVM's CUDA codegen prints bf16 fragments
(`nvcuda::wmma::fragment<..., nv_bfloat16, ...>`). So graphspec

1. registers the three bf16 intrinsics DLight's tensor-core schedule needs, made by TVM's own
   generators (`get_wmma_load_intrin`, `get_wmma_sync_intrin`) with dtype bfloat16 — the fill
   and store of the fp32 accumulator are the fp16 path's;
2. schedules each bf16-in, fp32-accumulate matmul with DLight's `MatmulTensorization` (the fp16
   schedule, unchanged), handing it the bf16 intrinsic names, before `tvm.compile`'s pipeline
   runs DLight on the rest. `tensorize` checks each intrinsic's description against the block
   it replaces, so a wrong layout or dtype fails the build, not the numbers.

Like DLight's rule, a matmul with a static M, N or K of 64 or less stays on CUDA cores (Swin's
49-token window attention, for instance), and so does one of symbolic shape (`--batch dynamic`:
the schedule fails on it in TVM 0.27, as DLight's fp16 one does). Numerics on a GPU: benchmarks/gpu/ checks every build
against the PyTorch module there; without a GPU only the build and the PTX are checked
(tests/test_tensor_cores.py).
"""

from __future__ import annotations

import contextlib
from typing import Any

INTRINSICS = {  # name: (generator, args) — TVM's generators, bf16 instead of fp16
    "wmma_load_16x16x16_bf16_a_shared_dyn": ("get_wmma_load_intrin",
                                             (16, 16, 16, "bfloat16", "shared.dyn", False, False)),
    "wmma_load_16x16x16_bf16_b_trans_shared_dyn": ("get_wmma_load_intrin",
                                                   (16, 16, 16, "bfloat16", "shared.dyn", True, True)),
    "wmma_sync_16x16x16_bf16bf16f32_trans": ("get_wmma_sync_intrin", (16, 16, 16, "bfloat16", "float32", True)),
}
MIN_EXTENT = 64  # DLight's `minimal_tensorize_threshold`: a static M, N or K at most this stays on CUDA cores
MIN_SM = 80  # bf16 wmma: Ampere and later


def register_intrinsics() -> None:
    """Register the bf16 wmma intrinsics once per process."""
    import tvm.s_tir.tensor_intrin.cuda as intrin
    from tvm.s_tir import TensorIntrin

    for name, (gen, args) in INTRINSICS.items():
        if TensorIntrin.get(name, allow_missing=True) is None:
            TensorIntrin.register(name, *getattr(intrin, gen)(*args))


@contextlib.contextmanager
def _bf16_intrinsic_names():
    """While `MatmulTensorization` schedules a bf16 matmul, the wmma group it asks for (fp16
    loads and f16 x f16 -> f32 sync) names the bf16 intrinsics instead; the fp32 fill and store
    stay. NB: the rule imports `get_wmma_intrin_group` from this module at each call."""
    import tvm.s_tir.tensor_intrin.cuda as intrin

    fp16_group = intrin.get_wmma_intrin_group

    def group(load_scope, store_scope, in_dtype, out_dtype, trans_b):
        names = fp16_group(load_scope, store_scope, in_dtype, out_dtype, trans_b)
        if out_dtype != "float32":  # the rule's fp16-accumulator fallback: no bf16 counterpart
            raise ValueError("bf16 tensor-core matmuls accumulate in float32")
        return {k: v.replace("_f16_", "_bf16_").replace("f16f16f32", "bf16bf16f32") for k, v in names.items()}

    intrin.get_wmma_intrin_group = group
    try:
        yield
    finally:
        intrin.get_wmma_intrin_group = fp16_group


def _matmul_extents(func) -> list[int | None] | None:
    """(M, N, K) of `func`'s matmul, normalized as DLight's Matmul rule does (None where
    symbolic), or None when it is not a bf16 x bf16 -> fp32 matmul."""
    from tvm import s_tir, tirx
    from tvm.s_tir.dlight.analysis import get_root_block
    from tvm.s_tir.dlight.gpu.matmul import get_in_out_dtypes, get_index_map, get_reduction_blocks

    sch = s_tir.Schedule(func)
    blocks = get_reduction_blocks(sch, sch.get_child_blocks(get_root_block(sch)))
    if not blocks:
        return None
    main = blocks[0]
    if get_in_out_dtypes(sch.get(main)) != ("bfloat16", "float32") or not get_index_map(sch.get(main)):
        return None
    try:
        reindexed = [sch.reindex(main, ("read", 0)), sch.reindex(main, ("read", 1)), sch.reindex(main, ("write", 0))]
        maps = get_index_map(sch.get(main))
        sch.transform_layout(reindexed[0], ("write", 0), maps[1])
        sch.transform_layout(reindexed[1], ("write", 0), maps[2])
        sch.transform_layout(reindexed[2], ("read", 0), maps[3])
        sch.transform_block_layout(main, maps[0])
    except Exception:  # noqa: BLE001  (a reduction DLight cannot normalize: not ours)
        return None
    return [int(v.dom.extent) if isinstance(v.dom.extent, tirx.IntImm) else None
            for v in sch.get(main).iter_vars[1:]]


def rule():
    """A DLight rule: bf16 matmuls large enough for tensor cores, scheduled by DLight's own
    tensor-core schedule with the bf16 intrinsics; anything else is left to the default rules."""
    from tvm.s_tir.dlight.gpu.base import GPUScheduleRule
    from tvm.s_tir.dlight.gpu.matmul import MatmulTensorization, check_sm_version

    class BF16TensorCoreMatmul(GPUScheduleRule):
        def apply(self, func, target, tunable):
            from tvm import tirx

            if (not isinstance(func, tirx.PrimFunc) or target.kind.name != "cuda"
                    or check_sm_version(str(target.attrs.get("arch", ""))) < MIN_SM
                    or "dlight.do_not_tensorize" in (func.attrs or {})):
                return None
            extents = _matmul_extents(func)
            # static shapes only: on a symbolic batch DLight's tensor-core schedule raises a
            # ScheduleError in TVM 0.27 (fp16 too), so such a matmul keeps DLight's loops
            if extents is None or any(e is None or e <= MIN_EXTENT for e in extents):
                return None
            register_intrinsics()  # NB: the first import of TVM's cuda intrinsics takes 30-100 s
            with _bf16_intrinsic_names():
                try:
                    return MatmulTensorization().apply(func, target, tunable)
                except Exception:  # noqa: BLE001  (a matmul the schedule cannot take: DLight's loops)
                    return None

    return BF16TensorCoreMatmul()


def schedule_bf16_matmuls(mod: Any, tgt: Any) -> tuple[Any, int]:
    """Legalize and fuse `mod` (the "zero" pipeline) and schedule its bf16 matmuls for tensor
    cores -> (module for `tvm.compile`, number of matmul kernels put on tensor cores)."""
    from tvm import relax, tirx
    from tvm.s_tir import dlight as dl

    def scheduled(m):
        return {str(gv.name_hint) for gv, f in m.functions.items()
                if isinstance(f, tirx.PrimFunc) and f.attrs and f.attrs.get("tirx.is_scheduled")}

    with tgt:
        mod = relax.get_pipeline("zero")(mod)
        before = scheduled(mod)
        mod = dl.ApplyDefaultSchedule(rule())(mod)
    return mod, len(scheduled(mod) - before)
