"""MetaSchedule tuning of a lowered graph (llvm), with a database that later builds reuse.

    db, info = tune(lowered, "build/swin_t-llvm/tuning", trials=64)
    ex, binfo = graphspec.backends.tvm.build(lowered, "llvm", database=db)
    binfo["tuned_funcs"]        # kernels that got a tuned schedule: check the records apply

Only `main` is tuned (the weight transforms run once): every kernel, light ones (norms,
softmax, transposes) with a few trials each, matmul/conv kernels with the rest. A work dir
that already holds a database is reused: only the kernels it lacks are tuned. With `rpc=`
(an address from backends/rpc.py) candidates are measured on the RPC servers a TVM tracker
hands out instead of here; they are still built here.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from graphspec.backends.rpc import RPCAddress, probe
from graphspec.backends.rpc import current as current_rpc
from graphspec.backends.tvm import Lowered, schedulable, target, use_cpu_threads

HEAVY_OPS = ("matmul", "conv2d")  # the kernels worth most trials
LIGHT_TRIALS = 4  # per light kernel (norms, softmax, transposes): a parallel vectorized nest
LIGHT_SHARE = 0.25  # of the budget, at most, for the light kernels
SUMMARY = "graphspec_tuning.json"  # beside the database: trials and seconds it took
# NB: the TIR that relax.op.nn.attention legalizes to does not build under MetaSchedule's sampled
# schedules in TVM 0.27 (every candidate: "Buffer T_reshape_global is used before its
# definition"): lower with attention="matmul" for tuning (targets.py does).


def tuning_module(lowered: Lowered, tgt: Any):
    """What MetaSchedule sees: `main` only (weight transforms run once and are not tuned), as
    `schedulable` makes it for tuned builds (legalized, fused, weights layout-free)."""
    import tvm
    from tvm import relax

    mod = schedulable(lowered, tgt)
    mod = tvm.IRModule({gv: f for gv, f in mod.functions.items() if _name(gv) != "main_transform_params"})
    return relax.transform.DeadCodeElimination(["main"])(mod)


def _name(gv: Any) -> str:
    return str(getattr(gv, "name_hint", None) or getattr(gv, "name", gv))


def _ms_build(mod: Any, target: Any, _params: Any = None):
    """MetaSchedule's default_build, less its `import tvm.s_tir.tensor_intrin` (every CUDA/ROCm/ARM
    intrinsic, ~20 s to register; llvm schedules need none) and the deprecated tvm.build."""
    import tvm
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return tvm.tirx.build(mod, target=target)


def _build_and_export(mod: Any, target: Any) -> str:
    """Compile one candidate and save it for the runner (runs in the builder's worker)."""
    from tvm.s_tir.meta_schedule.builder.local_builder import default_export

    return default_export(_ms_build(mod, target))


class _Builder:
    """A MetaSchedule builder with one persistent worker process and a timeout per candidate.

    NB: LocalBuilder starts a fresh pool for every batch of candidates (~2-3 s, most of a
    round at a few candidates a round); building in this process instead has no timeout, and
    a sampled schedule can send LLVM into a compile that does not end (seen once in 1,100
    trials: a softmax candidate compiling for 10 minutes, stalling the whole tuning). So one
    worker is kept across batches and restarted after a timeout or every RECYCLE batches
    (LocalBuilder's reason for fresh pools is a slow leak in long-lived workers)."""

    RECYCLE = 64

    def __init__(self, timeout_s: float):
        self.timeout_s, self.pool, self.batches = timeout_s, None, 0

    def make(self):
        from tvm.ir.utils import derived_object
        from tvm.s_tir import meta_schedule as ms
        from tvm.support.popen_pool import PopenPoolExecutor, StatusKind

        owner = self

        @derived_object
        class PoolBuilder(ms.builder.PyBuilder):
            def build(self, build_inputs):
                if owner.pool is None or owner.batches >= owner.RECYCLE:
                    owner.close()
                    owner.pool = PopenPoolExecutor(max_workers=1, timeout=owner.timeout_s)
                owner.batches += 1
                results = []
                for r in owner.pool.map_with_error_catching(
                        lambda x: _build_and_export(*x), [(bi.mod, bi.target) for bi in build_inputs]):
                    if r.status == StatusKind.COMPLETE:
                        results.append(ms.builder.BuilderResult(r.value, None))
                    elif r.status == StatusKind.TIMEOUT:
                        results.append(ms.builder.BuilderResult(None, f"build timed out after {owner.timeout_s} s"))
                    else:
                        results.append(ms.builder.BuilderResult(None, f"build failed: {r.value}"))
                return results

        return PoolBuilder()

    def close(self):
        if self.pool is not None:
            self.pool.shutdown()
            self.pool, self.batches = None, 0


def tune(lowered: Lowered, work_dir: str | Path, trials: int, *, kind: str = "llvm",
         op_names: Sequence[str] = HEAVY_OPS, light_share: float = LIGHT_SHARE,
         timeout_s: float = 120.0, build_timeout_s: float = 60.0, log: Callable[[str], None] | None = None,
         rpc: RPCAddress | None = None) -> tuple[Any, dict]:
    """MetaSchedule-tune the kernels of `lowered` into `work_dir`, or reuse the database already
    there (then no trial runs). Returns (database, info) for the manifest.

    Every kernel needs a schedule: an unscheduled CPU kernel is a serial scalar loop nest, and
    Swin-T's ~50 layer norms, softmaxes, transposes and gathers alone cost as much as the
    whole model in PyTorch. So the budget is split in two rounds:

    1. light kernels (everything but `op_names`): up to `light_share` of the trials, at most
       LIGHT_TRIALS each — enough to find a parallel, vectorized loop nest;
    2. heavy kernels (`op_names`: matmul, conv2d), heaviest (FLOPs × uses) first: the rest,
       spread by MetaSchedule's gradient task scheduler; with fewer trials than kernels only
       the heaviest are tuned, one trial or more each.

    A database already in `work_dir` is reused; kernels it lacks (and only those) are tuned,
    each with the trials a fresh run would give it.

    With `rpc` (default: `backends.rpc.current()`, which the CLI's --rpc sets) candidates are
    still built here but measured on the tracker's servers for that key, one at a time per free
    server; the tracker is probed first, and only when there is something to tune."""
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.analysis import estimate_tir_flops

    info_threads = use_cpu_threads()  # the measuring workers run kernels as Runner will
    rpc = rpc or current_rpc()
    tgt = target(kind)
    work_dir = Path(work_dir)
    mod = tuning_module(lowered, tgt)
    every = ms.relax_integration.extract_tasks(mod, tgt)
    every.sort(key=lambda t: -estimate_tir_flops(t.dispatched[0]) * t.weight)
    heavy = [t for t in every if any(o in t.task_name for o in op_names)]
    light = [t for t in every if t not in heavy]
    per_light = min(LIGHT_TRIALS, int(trials * light_share) // max(len(light), 1))
    light_chosen = light if per_light else []
    heavy_trials = trials - per_light * len(light_chosen)
    heavy_chosen = heavy[:max(heavy_trials, 1)]
    info: dict[str, Any] = {"work_dir": str(work_dir), "trials_requested": trials, "kernels": len(every),
                            "heavy_kernels": len(heavy), "kernels_tuned": [t.task_name for t in heavy_chosen],
                            "light_kernels_tuned": len(light_chosen), "trials_per_light_kernel": per_light,
                            "ops": list(op_names), "threads": info_threads,
                            "runner": {"kind": "rpc", "tracker": rpc.tracker, "key": rpc.key} if rpc else {"kind": "local"}}
    before: dict[str, Any] = {}  # the summary of the tuning that made an existing database
    existing = (work_dir / "database_tuning_record.json").exists()
    if existing:
        db = ms.database.JSONDatabase(work_dir=str(work_dir))
        missing = [t for t in every if not db.has_workload(t.dispatched[0])]
        info.update(reused=True, new_trials=0, records=len(db.get_all_tuning_records()),
                    kernels_in_db=len(every) - len(missing))
        if (work_dir / SUMMARY).exists():  # what the tuning that made this database cost
            before = info["tuned_by"] = json.loads((work_dir / SUMMARY).read_text())
        # Kernels the database lacks (a changed op lowering, a new spec sharing the directory):
        # tune only those, each with the trials a fresh run would give it.
        heavy_trials = round(heavy_trials * sum(t in missing for t in heavy_chosen) / max(len(heavy_chosen), 1))
        light_chosen = [t for t in light_chosen if t in missing]
        heavy_chosen = [t for t in heavy_chosen if t in missing]
        # NB: with a budget smaller than the kernels, some kernels are never tuned and stay
        # missing: a database that has every kernel this budget tunes is complete
        if not light_chosen and not heavy_chosen:
            if log:
                log(f"[tune] reusing {info['records']} records from {work_dir}: no new trials"
                    + (f" ({len(missing)} kernel(s) this budget does not tune)" if missing else ""))
            return db, info
        if log:
            log(f"[tune] {info['records']} records in {work_dir}; {len(missing)} kernel(s) missing from it "
                f"({', '.join(t.task_name for t in missing[:4])}{', ...' if len(missing) > 4 else ''}): tuning "
                f"{len(light_chosen) + len(heavy_chosen)} of them")
    if rpc:  # before any trial: an unreachable tracker or no server exits at once, never hangs
        info["runner"].update(probe(rpc, kind))
        if log:
            log(f"[tune] measuring on {info['runner']['free']} free of {info['runner']['servers']} RPC server(s) "
                f"with key {rpc.key!r} at the tracker {rpc.tracker}")
    work_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rounds = [(light_chosen, per_light * len(light_chosen), per_light, "light"),
              (heavy_chosen, heavy_trials, max(1, min(16, heavy_trials // max(len(heavy_chosen), 1))), "heavy")]
    # MetaSchedule's console handler takes this logger's level when its contexts are made (which
    # then sets the logger itself to DEBUG): keep its tables and cost-model chatter in
    # <work_dir>/logs, and report progress through `log` instead
    ms_logger = logging.getLogger("tvm.s_tir.meta_schedule")
    level = ms_logger.level
    _drop_handlers(ms_logger)
    builder = _Builder(build_timeout_s)
    try:
        with _cpu_intrinsics_only():
            for chosen, budget, per_iter, what in rounds:
                if not chosen or budget <= 0:
                    continue
                ms_logger.setLevel(logging.ERROR)
                if log:
                    log(f"[tune] {budget} MetaSchedule trials over {len(chosen)} {what} kernels"
                        f"{' (' + ', '.join(op_names) + ')' if what == 'heavy' else ''} -> {work_dir}")
                contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
                    extracted_tasks=chosen, work_dir=str(work_dir), seed=0,
                    strategy=_strategy(budget // len(chosen)))
                ms.tune_tasks(
                    tasks=contexts, task_weights=weights, work_dir=str(work_dir), max_trials_global=budget,
                    # spread few trials over the kernels rather than spending them all on the first
                    num_trials_per_iter=per_iter, builder=builder.make(),
                    runner=_runner(rpc, timeout_s, min(info["runner"].get("free", 1), per_iter)))
    finally:
        builder.close()
        ms_logger.setLevel(level)
        _drop_handlers(ms_logger)
    db = ms.database.JSONDatabase(work_dir=str(work_dir))
    n = len(db.get_all_tuning_records())
    new = n - info.get("records", 0)
    info.update(reused=existing, new_trials=new, records=n, seconds=round(time.perf_counter() - t0, 2))
    summary = {"trials_requested": trials, "new_trials": before.get("new_trials", 0) + new,
               "seconds": round(before.get("seconds", 0) + info["seconds"], 2), "kernels": len(every),
               "light_kernels_tuned": before.get("light_kernels_tuned", len(light_chosen)),
               "trials_per_light_kernel": per_light,
               "heavy_kernels_tuned": before.get("heavy_kernels_tuned", len(heavy_chosen)),
               "incremental_runs": before.get("incremental_runs", 0) + 1 if before else 0,
               "runners": sorted({*before.get("runners", ["local"] if before else []), _runner_name(rpc)})}
    (work_dir / SUMMARY).write_text(json.dumps(summary, indent=1))
    if existing:
        info["tuned_by"] = summary
    return db, info


def _runner(rpc: RPCAddress | None, timeout_s: float, workers: int):
    """LocalRunner, or an RPCRunner with one measuring worker per free server (RPCRunner's
    default is one in all), at most one per candidate of a batch (each worker is a process
    that imports tvm); `timeout_s` bounds each candidate's session there."""
    from tvm.s_tir import meta_schedule as ms

    if rpc is None:
        return ms.runner.LocalRunner(timeout_sec=timeout_s)
    config = ms.runner.RPCConfig(tracker_host=rpc.host, tracker_port=rpc.port, tracker_key=rpc.key,
                                 session_timeout_sec=max(int(timeout_s), 1))
    return ms.runner.RPCRunner(rpc_config=config, max_workers=max(workers, 1))


def _runner_name(rpc: RPCAddress | None) -> str:
    return f"rpc {rpc}" if rpc else "local"


def _drop_handlers(logger: logging.Logger) -> None:
    """Close and remove the handlers MetaSchedule put on its logger. NB: it adds a console
    handler (on the sys.stdout of the moment) and a file handler (in that run's work dir) on
    every tuning and passes the existing ones on by name; left in place, a second tuning in
    one process writes into the first one's log and, once a handler has lost its name, fails
    in its logging config ("'NoneType' object has no attribute 'format'")."""
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()


def _strategy(per_kernel: int):
    """Evolutionary search sized to the budget. MetaSchedule's default (512 candidates, 4
    generations, each scored by the XGBoost cost model) took 18 s of every 30 s round of 16
    ViT-B/16 matmul candidates on this 2-core machine (building them 6 s, measuring them 6 s):
    a smaller search leaves more of the budget for measuring. With a handful of trials per
    kernel the cost model has little to learn from, and smaller still is enough."""
    from tvm.s_tir import meta_schedule as ms

    if per_kernel >= 16:
        return ms.search_strategy.EvolutionarySearch(population_size=256, genetic_num_iters=3)
    return ms.search_strategy.EvolutionarySearch(population_size=128, genetic_num_iters=2,
                                                 init_min_unmeasured=16)


@contextmanager
def _cpu_intrinsics_only():
    """NB: TuneContext imports tvm.s_tir.tensor_intrin, which registers every CUDA/ROCm/ARM
    tensor intrinsic (~20 s). CPU tuning needs only the x86 ones (VNNI/AVX-512 dot products,
    which the default rules name when `mcpu` has them), so while tuning the package is stood
    in for by one that holds only x86 (its other submodules still import on demand) and is
    removed again afterwards, so that a later cuda build imports the real thing."""
    import importlib.util
    import sys
    import types

    name = "tvm.s_tir.tensor_intrin"
    if name in sys.modules:
        yield
        return
    spec = importlib.util.find_spec(name)
    stub = types.ModuleType(name)
    stub.__path__ = list(spec.submodule_search_locations or [])
    sys.modules[name] = stub
    try:
        importlib.import_module(name + ".x86")  # registers dot_16x4_vnni & co. (fast)
        yield
    finally:
        if sys.modules.get(name) is stub:
            del sys.modules[name]
