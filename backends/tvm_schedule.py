"""What MetaSchedule tunes and tuned builds apply records to: weight-only work lifted
(`prepare`), awkward matmul row counts padded (`pad_rows`), weights marked layout-free
(`schedulable`). backends/tvm.py re-exports it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graphspec.backends.tvm import Lowered


def prepare(lowered: Lowered):
    """The module as built: weight-only work lifted into `main_transform_params`."""
    from tvm import relax

    return relax.transform.LiftTransformParams()(lowered.mod)


ROW_MULTIPLE = 8  # pad_rows pads a matmul's rows to a multiple of this


def awkward_rows(n: int) -> bool:
    """True for a row count whose only split is n = 1 × n: a prime factor above 16 and not a
    multiple of ROW_MULTIPLE (ViT's 197 tokens, ViT-H/14's 257); 196 or 3136 are not."""
    if n < 32 or n % ROW_MULTIPLE == 0:
        return False
    m, p, big = n, 2, 1
    while p * p <= m:
        while m % p == 0:
            m //= p
            big = p
        p += 1
    return max(big, m) > 16


def pad_rows(mod: Any, stats: dict | None = None):
    """Rewrite `matmul(x, W)` with a 2-D weight W and awkward row count (`awkward_rows`) as
    `pad(x)` to the next multiple of ROW_MULTIPLE rows -> matmul -> `strided_slice` back.

    NB: MetaSchedule tiles a loop only by exact divisors of its extent (SamplePerfectTile): a
    197-row matmul can only be split 1 × 197, so ViT-B/16's projections keep a whole column of
    rows per tile. Measured, fc2 (197×3072 @ 3072×768), 64 trials each, 2 threads: 115 GFLOP/s
    at 197 rows, 186 at 200 (the zero rows cost 1.5 %). Padding inside the kernel with
    `sch.pad_einsum` reached 104. No kernel is added: FuseOps folds each slice into its matmul's
    epilogue (bias, residual, GELU) and each pad into the kernel that makes the matmul's input
    (a layer norm, the previous GELU epilogue). `stats["padded_matmuls"]` counts them."""
    import tvm
    from tvm import relax, tirx
    from tvm.relax.expr_functor import PyExprMutator, mutator

    matmul = tvm.ir.Op.get("relax.matmul")

    @mutator
    class PadRows(PyExprMutator):
        def visit_call_(self, call):
            call = super().visit_call_(call)
            if call.op != matmul:
                return call
            x, w = call.args
            xs, ws = x.ty, w.ty
            if ws.ndim != 2 or xs.ndim < 2 or xs.shape is None:
                return call
            n = xs.shape.values[-2]
            if not isinstance(n, tirx.IntImm) or not awkward_rows(int(n)):
                return call
            n = int(n)
            extra = -n % ROW_MULTIPLE
            widths = [0, 0] * (xs.ndim - 2) + [0, extra, 0, 0]
            padded[0] += 1
            xp = self.builder_.emit(relax.op.nn.pad(x, widths))
            yp = self.builder_.emit(relax.op.matmul(xp, w, out_dtype=call.attrs.out_dtype))
            return relax.op.strided_slice(yp, axes=[xs.ndim - 2], begin=[0], end=[n])

    padded = [0]
    for gv, f in list(mod.functions.items()):
        if isinstance(f, relax.Function) and str(gv.name_hint) == "main":
            mod[gv] = PadRows().visit_expr(f)
    if stats is not None:
        stats["padded_matmuls"] = padded[0]
    return mod


def schedulable(lowered: Lowered, tgt: Any, stats: dict | None = None):
    """The module MetaSchedule tunes and tuned builds apply its records to: weight-only work
    lifted, legalized and fused (the "zero" pipeline), with `main`'s weights marked layout-free.

    Layout-free weights let a tuned schedule keep them in the blocked layout its loops read
    (MetaSchedule's RewriteLayout): the repacking becomes part of `main_transform_params`, run
    once at load, instead of each matmul striding through a row-major weight. Measured on Swin-T's
    stage-3 fc1 (196×384 @ 384×1536, 64 trials each): 124 GMAC/s prepacked, 105 not. The
    attribute is part of a kernel's workload, so tuning and building must both come through here.
    Matmuls with an awkward row count (ViT's 197 tokens) are padded first (`pad_rows`)."""
    from tvm import relax

    with tgt:
        mod = relax.get_pipeline("zero")(pad_rows(prepare(lowered), stats))  # no database current: nothing applied
        return relax.transform.AttachAttrLayoutFreeBuffers()(mod)
