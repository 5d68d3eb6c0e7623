"""`graphspec train SPEC`: train the generated module on synthetic data (graphspec/train.py).

    graphspec train gpt2 --set L=2 --steps 10 --batch 8
    graphspec train gpt2 --nproc 2 --fsdp --ckpt-every 5 --ckpt-dir ckpt/   # launches torchrun itself
    torchrun --nproc-per-node 8 -m graphspec.cli.train_cmd llama2_7b --fsdp --dtype bf16
"""

from __future__ import annotations

import os
import subprocess
import sys

import click
from graphspec.cli.main import OutputPath, UserError, user_errors


def _ac(value: str) -> str | int:
    if value in ("none", "block"):
        return value
    try:
        return int(value)
    except ValueError:
        return value  # ParallelConfig names the accepted values


def _devices() -> tuple[int, str]:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.device_count(), "GPUs"
    return len(os.sched_getaffinity(0)), "CPU cores"


@click.command("train")
@click.argument("spec")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override a var or field of the spec")
@click.option("--passes", default="default", show_default=True, help="pass pipeline before codegen")
@click.option("--steps", default=10, show_default=True, type=int)
@click.option("--batch", default=8, show_default=True, type=int, help="global batch, split over the processes")
@click.option("--lr", default=3e-4, show_default=True, type=float, help="AdamW learning rate")
@click.option("--dtype", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True)
@click.option("--fsdp", "parallel", flag_value="fsdp", help="FSDP2 fully_shard per block, then the root")
@click.option("--ddp", "parallel", flag_value="ddp", help="DistributedDataParallel")
@click.option("--activation-checkpointing", "ac", default="none", show_default=True,
              help="none, block (every block) or K (every K-th block)")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile each block")
@click.option("--ckpt-every", default=0, show_default=True, type=int, help="save a checkpoint every K steps")
@click.option("--ckpt-dir", default=None, type=OutputPath(), help="torch.distributed.checkpoint directory")
@click.option("--resume", is_flag=True, help="continue from the last checkpoint in --ckpt-dir")
@click.option("--seed", default=0, show_default=True, type=int, help="initialisation and synthetic data")
@click.option("--peak-tflops", default=None, type=float,
              help="peak TFLOP/s per device for MFU (default: H100/H200 989, A100 312 bf16; 1 per CPU process)")
@click.option("--init", "init", type=click.Choice(["full", "sharded"]), default="full", show_default=True,
              help="full: each rank initialises the whole model (one process's weights); sharded (FSDP): "
                   "only its shards, from the meta device")
@click.option("--nproc", default=None, type=int, help="processes to launch (torchrun --standalone) when not under torchrun")
@user_errors
def train_cmd(spec, overrides, passes, steps, batch, lr, dtype, parallel, ac, compile_, ckpt_every, ckpt_dir,
              resume, seed, peak_tflops, init, nproc):
    """Train SPEC's generated module: random tokens with a next-token loss, or random images with a
    classification loss. One line per step: loss, tokens or images per second, and MFU from
    graphspec's exact FLOPs (3 x forward, 2 FLOPs per MAC) against --peak-tflops."""
    from graphspec.parallel import ParallelError
    from graphspec.train import TrainConfig, TrainError, preflight, train

    under_torchrun = "WORLD_SIZE" in os.environ
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if nproc is not None:
        have, what = _devices()
        if nproc < 1:
            raise UserError(f"--nproc {nproc}: use at least 1")
        if under_torchrun and nproc != world:
            raise UserError(f"--nproc {nproc} but torchrun started {world} processes (WORLD_SIZE); drop --nproc "
                            "under torchrun or make them agree")
        if nproc > have:
            raise UserError(f"--nproc {nproc}: this machine has {have} {what}; use at most {have}")
        world = nproc
    try:
        config = TrainConfig(steps=steps, batch=batch, lr=lr, dtype=dtype, parallel=parallel or "none",
                             checkpoint=_ac(ac), compile=compile_, ckpt_every=ckpt_every, ckpt_dir=ckpt_dir,
                             resume=resume, seed=seed, peak_tflops=peak_tflops, passes=passes, init=init)
        if nproc is not None and nproc > 1 and not under_torchrun:
            preflight(spec, config, overrides, world)  # bad input exits 2 here, before any process starts
            args = [a for a in _without_nproc(sys.argv[1:])]
            if args and args[0] == "train":
                args = args[1:]
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
                   "-m", "graphspec.cli.train_cmd", *args]
            sys.exit(subprocess.run(cmd).returncode)
        train(spec, config, overrides=overrides)
    except (TrainError, ParallelError) as e:
        raise UserError(str(e)) from e  # the process group train() joined: it destroys it


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


COMMANDS = (train_cmd,)

if __name__ == "__main__":  # torchrun -m graphspec.cli.train_cmd SPEC ...
    train_cmd()
