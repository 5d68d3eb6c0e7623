"""Run by tests/test_train.py under `torchrun --nproc-per-node 2` (gloo, CPU): trains each
(spec, mode) of argv for three steps with a checkpoint at step 2, resumes from it for step 3;
trains a map-style dataset for three steps with a checkpoint at 3, resumes for three more; writes
the losses (rank 0) to the JSON file argv[1] (gpt:ddp:raise: a step raises on rank 1). The first train() call joins the process group,
the others use it, train()'s atexit handler destroys it: the process exits as any script does,
and writes the threads left at exit to argv[1].threads-RANK."""

import atexit
import json
import os
import sys
from pathlib import Path

import torch
from specs_small import SWIN

from graphspec.train import TrainConfig, train


class NextToken(torch.utils.data.Dataset):
    """`n` fixed random sequences of 16 tokens (vocabulary 256), as (input, next-token target)."""

    def __init__(self, n: int = 10):
        self.ids = torch.randint(256, (n, 17), generator=torch.Generator().manual_seed(0))

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return self.ids[i, :-1], self.ids[i, 1:]


def main(out: str, ckpt_root: str, cases: str, gpt_spec: str) -> None:
    SPECS["gpt"] = (gpt_spec, [])

    results = {}
    for case in cases.split(","):
        spec, mode, *more = case.split(":")  # gpt:fsdp:block — activation checkpointing; :none:sharded — init
        spec_path, sets = SPECS[spec]
        ckpt = str(Path(ckpt_root) / case.replace(":", "-"))
        if more == ["raise"]:  # rank 1's loss raises at step 2: it leaves the group, rank 0's all-reduce fails
            def fail_on_rank_1(out, y, calls=[]):  # noqa: B006  (the calls so far)
                calls.append(1)
                if os.environ["RANK"] == "1" and len(calls) == 2:
                    raise RuntimeError("a bad batch on rank 1")
                return torch.nn.functional.cross_entropy(out.flatten(0, -2), y.flatten())

            train(spec_path, TrainConfig(steps=3, batch=4, parallel=mode), dataset=NextToken(), loss=fail_on_rank_1,
                  log=None)
        if more == ["data"]:  # 3 steps, a checkpoint, 3 more: the sampler continues where it stopped
            opts = {"parallel": mode, "seed": 1, "batch": 4, "ckpt_dir": ckpt}
            losses = train(spec_path, TrainConfig(steps=3, ckpt_every=3, **opts), dataset=NextToken(), log=None)
            resumed = train(spec_path, TrainConfig(steps=6, resume=True, **opts), dataset=NextToken(), log=None)
            results[case] = {"losses": losses + resumed}
            continue
        ac, init = (more + ["none", "full"][len(more):])[:2]
        opts = {"parallel": mode, "seed": 1, "checkpoint": ac, "init": init}
        losses = train(spec_path, TrainConfig(steps=3, batch=4, ckpt_every=2, ckpt_dir=ckpt, **opts),
                       overrides=sets, log=None)
        resumed = train(spec_path, TrainConfig(steps=3, batch=4, ckpt_dir=ckpt, resume=True, **opts),
                        overrides=sets, log=None)
        results[case] = {"losses": losses, "resumed": resumed}
    if os.environ["RANK"] == "0":
        Path(out).write_text(json.dumps(results))


def threads_at_exit(out: str) -> None:
    """Registered before train() registers its teardown, so run after it (atexit is last in,
    first out): the threads still running as the interpreter shuts down, by name (Linux)."""
    tasks = Path("/proc/self/task")
    names = sorted({(t / "comm").read_text().strip() for t in tasks.iterdir()}) if tasks.exists() else None
    Path(f"{out}.threads-{os.environ['RANK']}").write_text(json.dumps(names))


SPECS = {"swin": ("swin_t", SWIN)}  # gpt: argv

if __name__ == "__main__":
    atexit.register(threads_at_exit, sys.argv[1])
    main(*sys.argv[1:])
