"""Training a generated module (issue #16 part 3): `graphspec train SPEC`, or from Python

    losses = train("gpt2", TrainConfig(steps=10, batch=8, parallel="fsdp"), overrides=["L=2"])
    losses = train(spec, config, dataset=my_dataset)   # a torch Dataset of (input, target) pairs

Single process, or one process per device under `torchrun --nproc-per-node N` (gloo on CPU,
NCCL on GPUs). The model is built on the meta device, moved with `to_empty`, initialised by its
`init_weights()` from `seed` (the same full model on every rank, so N processes start where one
does), then parallelized (graphspec/parallel.py). Synthetic data: random tokens with a
next-token loss for token models, random images with a classification loss for image models —
one global batch per step drawn from (seed, step) and split across the ranks, so the losses do
not depend on the world size. Checkpoints are torch.distributed.checkpoint directories
`ckpt_dir/step-K` beside `ckpt_dir/graphspec.json` (the model's fingerprint: a resume from
another spec is refused; the record also holds the data position, so a resumed run draws the
batches an uninterrupted one would). A process group train() joins stays for later calls and is
destroyed at exit, or when a step raises. MFU = 3 × 2 × MACs (graphspec/analysis.py) per sample × samples/s ÷
(peak × processes).
"""

from __future__ import annotations

import atexit
import datetime
import gc
import hashlib
import json
import logging
import math
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed.nn.functional  # noqa: F401  before any process group: NOTE [The group at exit]
import torch.nn.functional as F

import graphspec
from graphspec import analysis
from graphspec.parallel import ParallelConfig, ParallelError, block_paths, parallelize

MAX_SEED = 2**40  # synthetic_batch seeds torch's 64-bit generator with seed * 1_000_003 + step
CPU_PEAK_TFLOPS = 1.0  # per process, when --peak-tflops is not given on a CPU (a stated guess)
GPU_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense bf16 tensor-core peaks


class TrainError(ValueError):
    """A user mistake (the CLI prints it and exits with code 2)."""


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 10
    batch: int = 8  # global batch: split evenly across the processes
    lr: float = 3e-4
    dtype: str = "fp32"  # fp32 | bf16 (FSDP: bf16 parameters, fp32 reduction; otherwise autocast)
    parallel: str = "none"  # none | fsdp | ddp
    checkpoint: str | int = "none"  # activation checkpointing: none | block | every k-th block
    compile: bool = False
    ckpt_every: int = 0  # save every K steps (0: never)
    ckpt_dir: str | None = None
    resume: bool = False
    seed: int = 0
    peak_tflops: float | None = None  # per device
    passes: str = "default"
    init: str = "full"  # full: every rank initialises the whole model, then shards (one process's
    # weights exactly); sharded (FSDP): shard on the meta device, then each rank initialises its
    # shards only (torchtitan's order: memory of a shard, not of the model; other random draws)


@dataclass
class Task:
    kind: str  # "lm" | "classify"
    shape: tuple[int, ...]  # one sample's input shape
    classes: int  # vocabulary (lm) or classes


def task_of(graph) -> Task:
    """What synthetic data the model takes: token ids (B, N) -> logits (B, N, V), or an image
    (B, C, H, W) -> logits (B, classes)."""
    ins, outs = graph.inputs, [graph[o] for o in graph.outputs]
    if len(ins) != 1 or len(outs) != 1 or not all(isinstance(d, int) for d in ins[0].shape + outs[0].shape):
        raise TrainError(f"{graph.name}: train takes models of one input and one output (token ids -> "
                         f"next-token logits, or an image -> class logits); this one has {len(ins)} and {len(outs)}")
    x, y = ins[0], outs[0]
    if x.dtype == "i64" and len(x.shape) == 2 and len(y.shape) == 3:
        return Task("lm", tuple(x.shape[1:]), y.shape[-1])
    if x.a.get("kind") == "image" and len(y.shape) == 2:
        return Task("classify", tuple(x.shape[1:]), y.shape[-1])
    raise TrainError(f"{graph.name}: no synthetic task for input {tuple(x.shape)} -> output {tuple(y.shape)}; "
                     "pass a dataset from Python (graphspec.train.train(..., dataset=...))")


def synthetic_batch(task: Task, seed: int, step: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The global batch of step `step`: the same on every rank and for every world size."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    if task.kind == "lm":
        ids = torch.randint(task.classes, (batch, *task.shape), generator=g)
        return ids, ids
    return torch.randn(batch, *task.shape, generator=g), torch.randint(task.classes, (batch,), generator=g)


def loss_fn(task: Task, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if task.kind == "lm":  # next-token prediction: position i predicts token i + 1
        return F.cross_entropy(out[:, :-1].flatten(0, 1).float(), target[:, 1:].flatten())
    return F.cross_entropy(out.float(), target)


# NOTE: [The group at exit] torch.distributed.nn.functional binds `group=group.WORLD` as the
# default of ten functions when it is imported. torch imports it lazily (the first module built on
# the meta device: torch._refs -> torch._dynamo -> torch.distributed.fsdp -> ._shard -> it), so
# after init_process_group those defaults held the gloo ProcessGroup past
# destroy_process_group(): its threads (gloo_tcp_loop, 2 x pt_gloo_runloop) ran into interpreter
# shutdown, where a rank aborted now and then ("terminate called without an active exception").
# Imported above, before any group exists, the defaults are None; DTensor's caches keep FSDP's
# DeviceMeshes, which hold the group too (_leave clears them), and then destroying it joins its
# threads. train() destroys a group it joined at exit (atexit runs while the interpreter is
# whole), not on return: a second init through torchrun's store in the same process reads the
# first one's addresses when the ranks are out of step (measured: connectFullMesh 'Connection
# refused' on the second of two train() calls).
# NB: the abort itself: a gloo worker thread frees a finished collective's work under the group's
# work mutex, and freeing its tensors takes the GIL. In interpreter shutdown that acquire ends the
# thread (pthread_exit through a noexcept destructor: std::terminate); while the main thread frees
# the group it holds the GIL and waits for that mutex (a deadlock, seen once in 20 launches when
# _leave freed the group right after the last step). So _leave first waits in a barrier and a
# short sleep, the GIL released, until the workers have retired their last work.
_joined = False  # the default group is train()'s (torchrun's environment), to destroy at exit


def _dist() -> tuple[int, int, torch.device]:
    """Rank, world size and device; joins torchrun's process group (gloo on CPU, NCCL on GPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    cuda = torch.cuda.is_available()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    global _joined
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=120))
        _joined = True
        atexit.register(_leave)
    return rank, world, device


def _leave(sync: bool = True) -> None:
    """Destroy the group train() joined, then drop what still holds it: the cycles of a DDP
    module or of FSDP's states (gc), and the DeviceMeshes that DTensor's caches keep (sharding
    propagation, redistribute plans), each holding its groups in `_pg_registry` (NB: private, as
    of torch 2.13), so that gloo's threads are joined now (NOTE [The group at exit]). `sync`: a
    barrier first (not after a failed step: the peers are elsewhere)."""
    global _joined
    if _joined and torch.distributed.is_initialized():
        from torch.distributed.device_mesh import DeviceMesh

        if sync:
            try:
                torch.distributed.barrier()
            except RuntimeError:  # a peer already gone: nothing left to wait for
                pass
        time.sleep(0.05)  # the GIL released: gloo's threads retire their last work (NOTE)
        torch.distributed.destroy_process_group()
        gc.collect()
        for obj in gc.get_objects():
            if isinstance(obj, DeviceMesh):
                getattr(obj, "_pg_registry", {}).clear()
    _joined = False


def fingerprint(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


def _check_ckpt(ckpt_dir: Path, name: str, fp: str) -> dict:
    """The record of the last checkpoint in `ckpt_dir` ({}: none), after checking it holds this model."""
    meta = ckpt_dir / "graphspec.json"
    if not meta.exists():
        return {}
    try:
        info = json.loads(meta.read_text())
    except (OSError, ValueError) as e:
        raise TrainError(f"{meta}: not a graphspec checkpoint record ({e})") from e
    problem = _record_problem(info)
    if problem:
        raise TrainError(f"{meta}: not a graphspec checkpoint record ({problem}); it is damaged: remove "
                         f"{ckpt_dir}, or use another --ckpt-dir")
    if info.get("fingerprint") != fp:
        raise TrainError(f"{ckpt_dir} holds a checkpoint of {info.get('spec')!r} (another model or other "
                         f"options than {name!r}); use another --ckpt-dir")
    return info


def _record_problem(info) -> str | None:
    """What is wrong with a graphspec.json record (None: nothing): the types resume relies on."""
    def integer(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if not isinstance(info, dict):
        return f"a JSON {type(info).__name__}, not an object"
    if not isinstance(info.get("fingerprint"), str):
        return "no fingerprint"
    if not integer(info.get("step")) or info["step"] < 0:
        return f"step {info.get('step')!r} is not a step number"
    data = info.get("data")
    if data is not None and not (isinstance(data, dict) and integer(data.get("seed")) and integer(data.get("batch"))
                                 and (data.get("samples") is None or integer(data["samples"]))):
        return f"data {data!r} is not a data position"
    return None


def data_position(step: int, samples: int | None, batch: int) -> dict:
    """Where the data stands after `step` steps: synthetic data is drawn per (seed, step); a
    dataset's DistributedSampler order is a function of (seed, epoch), one global batch a step,
    samples // batch batches an epoch (each rank's len(sampler) // per: the same count)."""
    if samples is None:
        return {"samples": None}
    return {"samples": samples, "epoch": step // (samples // batch), "batch_in_epoch": step % (samples // batch)}


def _check_data(ckpt_dir: Path, info: dict, config: TrainConfig, dataset) -> None:
    """A resume continues the data only with the seed, global batch and dataset size it was saved with."""
    data = info.get("data")
    if data is None:  # a record from before the data position was kept
        return
    for opt, saved, now in (("--seed", data["seed"], config.seed), ("--batch", data["batch"], config.batch)):
        if saved != now:
            raise TrainError(f"--resume: {ckpt_dir} was trained with {opt} {saved}, and the data order continues "
                             f"only with it; pass {opt} {saved}")
    samples = None if dataset is None else len(dataset)
    if data["samples"] != samples:
        was = "synthetic data" if data["samples"] is None else f"a dataset of {data['samples']} samples"
        now = "synthetic data" if samples is None else f"a dataset of {samples} samples"
        raise TrainError(f"--resume: {ckpt_dir} was trained on {was}, this run has {now}; resume with the same data")


def _why(e: BaseException) -> str:
    """One line for a failed checkpoint save or load (a CheckpointException wraps each rank's)."""
    from torch.distributed.checkpoint.api import CheckpointException

    if isinstance(e, CheckpointException) and e.failures:
        e = next(iter(e.failures.values()))[0]
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"


def _save(ckpt_dir: Path, step: int, model, optim, name: str, fp: str, rank: int, data: dict) -> None:
    import shutil

    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.api import CheckpointException
    from torch.distributed.checkpoint.state_dict import get_state_dict

    msd, osd = get_state_dict(model, optim)
    where = ckpt_dir / f"step-{step}"
    new = not os.path.lexists(where)
    try:
        dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(where))
    except (Exception, CheckpointException) as e:  # a full disk: the record still names the last complete one
        if rank == 0 and new:
            shutil.rmtree(where, ignore_errors=True)
        last = _last_step(ckpt_dir)
        free = shutil.disk_usage(ckpt_dir).free if ckpt_dir.is_dir() else 0
        raise TrainError(f"cannot save the checkpoint {where}: {_why(e)} ({free:,} bytes free there); "
                         + (f"{ckpt_dir}/graphspec.json still names step {last}, which --resume continues from"
                            if last else "no complete checkpoint was written")) from None
    if rank == 0:  # the record names the last complete checkpoint: written after it, atomically
        from graphspec.io import atomic_write

        record = {"spec": name, "fingerprint": fp, "step": step, "data": data}
        atomic_write(ckpt_dir / "graphspec.json", json.dumps(record) + "\n")


def _last_step(ckpt_dir: Path) -> int | None:
    try:
        return json.loads((ckpt_dir / "graphspec.json").read_text()).get("step")
    except (OSError, ValueError, AttributeError):
        return None


def _no_traceback(record: logging.LogRecord) -> bool:
    """A logging filter: the record's message, without the traceback it carries."""
    record.exc_info = record.exc_text = None
    return True


def _load(ckpt_dir: Path, step: int, model, optim) -> None:
    from torch.distributed.checkpoint.api import CheckpointException
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    from graphspec import safe_dcp

    msd, osd = get_state_dict(model, optim)
    state = {"model": msd, "optim": osd}
    root = logging.getLogger()  # DCP logs its fallback from a damaged .metadata with a traceback there
    root.addFilter(_no_traceback)
    try:
        safe_dcp.load(state, ckpt_dir / f"step-{step}")  # its pickles read as data, never run
    except safe_dcp.UnsafeCheckpoint as e:
        raise TrainError(f"--resume: {e}, which a graphspec checkpoint never holds: not loaded (the "
                         f"checkpoint was crafted or damaged); remove {ckpt_dir}, or resume only from "
                         "checkpoints you wrote") from None
    except (Exception, CheckpointException) as e:  # a missing, truncated or foreign shard
        raise TrainError(f"--resume: cannot load {ckpt_dir / f'step-{step}'} ({_why(e)}): the checkpoint is "
                         f"damaged or incomplete; remove {ckpt_dir} (or its graphspec.json) to start over") from None
    finally:
        root.removeFilter(_no_traceback)
    set_state_dict(model, optim, model_state_dict=state["model"], optim_state_dict=state["optim"])


def peak_flops(config: TrainConfig, device: torch.device) -> tuple[float, str]:
    """Peak FLOP/s per device and where the figure comes from."""
    if config.peak_tflops is not None:
        return config.peak_tflops * 1e12, "--peak-tflops"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for k, v in GPU_PEAK_TFLOPS.items():
            if k in name:
                return v * 1e12, f"{k} dense bf16 peak"
        return 100e12, "an assumed 100 TFLOP/s"
    return CPU_PEAK_TFLOPS * 1e12, f"an assumed {CPU_PEAK_TFLOPS:g} TFLOP/s per CPU process"


def build(spec, overrides=(), passes: str = "default"):
    """(graphspec.Model, generated source, model class) of a spec."""
    from graphspec.codegen import emit, load
    from graphspec.passes import PipelineError, run_pipeline

    m = graphspec.load(spec, overrides=list(overrides))
    try:
        graph = run_pipeline(m.graph, passes)[0] if passes != "none" else m.graph
    except PipelineError as e:
        raise TrainError(f"--passes {passes}: {e}") from None
    gen = emit(graph, m.spec)
    return graphspec.Model(m.spec, graph), gen.source, getattr(load(gen.source), gen.class_name)


def check(config: TrainConfig, world: int) -> None:
    """Options that cannot work, before any process group or model exists."""
    if config.steps < 1 or config.batch < 1:
        raise TrainError(f"--steps {config.steps} and --batch {config.batch} must be at least 1")
    if not (math.isfinite(config.lr) and config.lr > 0):
        raise TrainError(f"--lr {config.lr}: the learning rate must be a positive number, e.g. 3e-4")
    if config.peak_tflops is not None and not (math.isfinite(config.peak_tflops) and config.peak_tflops > 0):
        raise TrainError(f"--peak-tflops {config.peak_tflops}: give the device's peak, a positive number "
                         "(989 for an H100's dense bf16)")
    if config.ckpt_every < 0:
        raise TrainError(f"--ckpt-every {config.ckpt_every}: use 0 (no checkpoints) or a positive K")
    if abs(config.seed) > MAX_SEED:
        raise TrainError(f"--seed {config.seed}: use a seed of at most {MAX_SEED:,} in magnitude (each step's "
                         "generator is seeded with seed * 1,000,003 + step, a 64-bit integer)")
    if config.batch % world:
        raise TrainError(f"the global batch {config.batch} does not split over {world} processes; "
                         f"use a multiple of {world}")
    if config.dtype not in ("fp32", "bf16"):
        raise TrainError(f"--dtype {config.dtype}: use fp32 or bf16")
    if config.parallel != "none" and world == 1 and not torch.distributed.is_initialized():
        raise TrainError(f"--{config.parallel} needs several processes: run under torchrun --nproc-per-node N "
                         "or pass --nproc N")
    ParallelConfig(mode=config.parallel, checkpoint=config.checkpoint)  # raises ParallelError on bad values
    if config.init not in ("full", "sharded") or (config.init == "sharded" and config.parallel != "fsdp"):
        raise TrainError(f"--init {config.init}: use full, or sharded with --fsdp")
    if (config.ckpt_every or config.resume) and not config.ckpt_dir:
        raise TrainError("--ckpt-every and --resume need --ckpt-dir DIR")
    if config.ckpt_dir:
        from graphspec.io import OutputError, check_name

        try:
            check_name(config.ckpt_dir, "--ckpt-dir")
        except OutputError as e:
            raise TrainError(str(e)) from None


def preflight(spec, config: TrainConfig, overrides=(), world: int = 1, dataset=None):
    """Every check that needs no process group: options, the spec, its task, the plan, the
    checkpoint directory. Returns (graph, source, class, start step); raises TrainError,
    ParallelError or SpecError."""
    check(config, world)
    model, source, cls = build(spec, overrides, config.passes)
    graph = model.graph
    if dataset is None:
        task_of(graph)
        from graphspec.backends import budget

        parts = budget.graph_bytes(graph, config.batch // world)  # one rank's inputs and largest activation
        parts.pop("weights (2 copies)")
        try:
            budget.check(parts, f"training {graph.meta.get('spec') or graph.name!r} at --batch {config.batch}")
        except budget.BudgetError as e:
            raise TrainError(str(e).replace("--memory-budget SIZE or ", "")) from None
    elif len(dataset) < config.batch:
        raise TrainError(f"the dataset has {len(dataset)} samples, fewer than one global batch ({config.batch})")
    if config.parallel == "fsdp" and not block_paths(graph):
        raise ParallelError(f"{graph.name}: FSDP shards per block, and the spec has no repeated blocks "
                            "(no list of layers); use --ddp or one process")
    ckpt_dir = Path(config.ckpt_dir) if config.ckpt_dir else None
    if ckpt_dir and config.ckpt_every:
        try:
            ckpt_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TrainError(f"--ckpt-dir {ckpt_dir}: {e.strerror or e}") from e
        if not os.access(ckpt_dir, os.W_OK):
            raise TrainError(f"--ckpt-dir {ckpt_dir}: not writable")
    name = graph.meta.get("spec") or graph.name
    info = _check_ckpt(ckpt_dir, name, fingerprint(source)) if ckpt_dir else {}  # refuses another model's
    if config.resume and not info.get("step"):
        raise TrainError(f"--resume: {ckpt_dir} holds no checkpoint")
    if config.resume:
        _check_data(ckpt_dir, info, config, dataset)
        if not (ckpt_dir / f"step-{info['step']}").is_dir():
            raise TrainError(f"--resume: {ckpt_dir}/graphspec.json names step {info['step']}, and "
                             f"{ckpt_dir / ('step-' + str(info['step']))} is missing; remove {ckpt_dir} (or its "
                             "graphspec.json) to start over")
        if int(info["step"]) >= config.steps:  # ran no step and said nothing
            raise TrainError(f"--resume: the checkpoint in {ckpt_dir} is at step {info['step']}, so --steps "
                             f"{config.steps} leaves nothing to run; give --steps above {info['step']}")
    return graph, source, cls, int(info["step"]) if config.resume else 0


def train(spec, config: TrainConfig = TrainConfig(), overrides=(), dataset=None,
          log: Callable[[str], None] | None = print, loss: Callable | None = None) -> list[float]:
    """Train `spec`'s generated module; returns the loss of each step run (global mean).
    `dataset`: a torch Dataset of (input, target) pairs instead of synthetic data; `loss(out,
    target)` instead of cross-entropy over the last dimension. Under torchrun, train() joins the
    process group unless the caller made one, keeps it for later calls and destroys it at exit,
    or as soon as a step raises (after dropping the failed run's locals that hold it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    graph, source, cls, start = preflight(spec, config, overrides, world, dataset)
    rank, world, device = _dist()
    try:
        return _run(graph, source, cls, start, config, dataset, log, loss, rank, world, device)
    except BaseException as e:
        if _joined:  # the traceback's finished frames hold the model (and so the group) until it goes
            traceback.clear_frames(e.__traceback__)
            _leave(sync=False)
        raise


def _run(graph, source, cls, start, config, dataset, log, criterion, rank, world, device) -> list[float]:
    task = task_of(graph) if dataset is None else None
    name = graph.meta.get("spec") or graph.name
    fp = fingerprint(source)
    say = log if (log and rank == 0) else (lambda s: None)
    ckpt_dir = Path(config.ckpt_dir) if config.ckpt_dir else None

    bf16 = config.dtype == "bf16"
    pc = ParallelConfig(mode=config.parallel, checkpoint=config.checkpoint, compile=config.compile,
                        param_dtype=torch.bfloat16 if bf16 and config.parallel == "fsdp" else None)
    sharded = config.init == "sharded"
    with torch.device("meta"):
        model = cls()
    if sharded:
        net = parallelize(model, graph, pc)  # DTensor shards, still on the meta device
    model.to_empty(device=device)
    torch.manual_seed(config.seed)
    with torch.no_grad():
        model.init_weights()
    if not sharded:
        net = parallelize(model, graph, pc)
    optim = torch.optim.AdamW(net.parameters(), lr=config.lr)
    samples = None if dataset is None else len(dataset)
    # where the data stands after `start` steps (preflight checked a resumed run's seed, batch and
    # dataset size against the checkpoint's record, so its position is this one)
    position = data_position(start, samples, config.batch)
    if start:
        _load(ckpt_dir, start, net, optim)
        say(f"resumed from {ckpt_dir / f'step-{start}'}")
    autocast = bf16 and config.parallel != "fsdp"

    per = config.batch // world
    batches = None if dataset is None else _loader(dataset, per, rank, world, config.seed,
                                                    position["epoch"], position["batch_in_epoch"])
    B0 = graph.inputs[0].shape[0]
    flops_sample = 3 * 2 * analysis.macs(graph) / B0  # training = forward + 2 × forward (backward)
    peak, peak_src = peak_flops(config, device)
    unit = "tokens" if task and task.kind == "lm" else "images" if task else "samples"
    per_sample = task.shape[0] if task and task.kind == "lm" else 1
    say(f"{name}: {analysis.param_count(graph):,} params, {world} process(es), global batch {config.batch}, "
        f"{config.parallel}, {config.dtype}; MFU against {peak / 1e12:g} TFLOP/s ({peak_src})")
    losses: list[float] = []
    net.train()
    for step in range(start + 1, config.steps + 1):
        t0 = time.perf_counter()
        if batches is None:
            x, y = synthetic_batch(task, config.seed, step, config.batch)
            x, y = x[rank * per:(rank + 1) * per].to(device), y[rank * per:(rank + 1) * per].to(device)
        else:
            x, y = (t.to(device) for t in next(batches))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            out = net(x)
        value = criterion(out, y) if criterion else loss_fn(task, out, y) if task else F.cross_entropy(
            out.flatten(0, -2).float(), y.flatten())  # a dataset's (input, target): class targets per position
        optim.zero_grad(set_to_none=True)
        value.backward()
        optim.step()
        value = value.detach()
        if world > 1:
            torch.distributed.all_reduce(value)
            value /= world
        losses.append(float(value))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        dt = time.perf_counter() - t0
        mfu = flops_sample * config.batch / dt / (peak * world)
        say(f"step {step}/{config.steps}  loss {losses[-1]:.4f}  {config.batch * per_sample / dt:,.0f} {unit}/s  "
            f"MFU {100 * mfu:.2f}%  ({dt * 1000:.0f} ms)")
        if ckpt_dir and config.ckpt_every and step % config.ckpt_every == 0:
            data = {"seed": config.seed, "batch": config.batch, **data_position(step, samples, config.batch)}
            _save(ckpt_dir, step, net, optim, name, fp, rank, data)
    return losses


def _loader(dataset, per: int, rank: int, world: int, seed: int, epoch: int = 0, skip: int = 0):
    """Endless batches of a user's dataset, this rank's share of each global batch, from batch
    `skip` of epoch `epoch` on (where a checkpoint stopped). In the main process: no workers."""
    from torch.utils.data import DataLoader, DistributedSampler

    sampler = DistributedSampler(dataset, world, rank, shuffle=True, seed=seed, drop_last=True)
    while True:
        sampler.set_epoch(epoch)
        order = list(sampler)[skip * per:]  # this rank's indices of the epoch, less the batches consumed
        yield from DataLoader(dataset, batch_size=per, sampler=order, drop_last=True)
        epoch, skip = epoch + 1, 0


__all__ = ["ParallelError", "TrainConfig", "TrainError", "Task", "train", "task_of", "synthetic_batch"]
