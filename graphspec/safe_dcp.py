"""torch.distributed.checkpoint (DCP) folders read as data: `graphspec train --resume` loads one
without running code that it holds.

DCP (torch 2.13) unpickles two things a checkpoint folder supplies: `.metadata` with
`pickle.load` (FileSystemReader.read_metadata) and each non-tensor value (an optimizer's
`param_groups`: lr, betas, ...) with `torch.load(weights_only=False)` (DefaultLoadPlanner.load_bytes);
a crafted folder runs code in either (a `__reduce__` to os.system). Tensors are already read with
`weights_only=True`. Here the metadata goes through an unpickler that resolves only the globals
DCP's Metadata is made of, and the values through `torch.load(weights_only=True)`:

    load(state, "ckpt/step-3")   # like dcp.load(state, checkpoint_id=...); UnsafeCheckpoint if refused

The globals a real checkpoint's metadata references (listed by a find_class hook over graphspec's
checkpoints, fp32 and bf16, one process and FSDP): the metadata dataclasses below,
filesystem._StorageInfo, torch.Size, a dtype, torch.serialization._get_layout (a layout by its
name) and pathlib's path classes (StorageMeta.checkpoint_id). Everything else is refused.
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path

import torch
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner

MAX_METADATA = 256 << 20  # a 7B model's with its optimizer state is about 2 MB
_METADATA = "torch.distributed.checkpoint.metadata"
ALLOWED = {
    *((_METADATA, n) for n in ("Metadata", "MetadataIndex", "StorageMeta", "ChunkStorageMetadata",
                               "TensorStorageMetadata", "BytesStorageMetadata", "TensorProperties",
                               "_MEM_FORMAT_ENCODING")),
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
    ("torch", "Size"),
    ("torch.serialization", "_get_layout"),
    *(("pathlib", n) for n in ("Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath", "PureWindowsPath")),
}


class UnsafeCheckpoint(pickle.UnpicklingError):
    """A checkpoint file that refers to something a DCP checkpoint never holds (not loaded)."""


class _MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in ALLOWED or (module == "torch" and isinstance(getattr(torch, name, None), torch.dtype)):
            return super().find_class(module, name)
        raise UnsafeCheckpoint(f"refers to {module}.{name}")


class SafeReader(FileSystemReader):
    """A FileSystemReader whose metadata is unpickled with the classes of DCP's Metadata only.
    `refused`: why a file was refused (DCP swallows the first read's exception and retries with
    the rank-local metadata, so the caller asks here)."""

    refused: str | None = None

    def read_metadata(self, *args, **kwargs):
        from torch.distributed.checkpoint.metadata import Metadata, StorageMeta

        path = Path(self._get_metadata_path(kwargs.get("rank")))
        with open(path, "rb") as f:
            data = f.read(MAX_METADATA + 1)  # in memory: a claimed length cannot size an allocation
        if len(data) > MAX_METADATA:
            raise UnsafeCheckpoint(f"{path} is over {MAX_METADATA:,} bytes, more than DCP metadata holds")
        try:
            metadata = _MetadataUnpickler(io.BytesIO(data)).load()
        except UnsafeCheckpoint as e:
            self.refused = f"{path} {e}"
            raise
        if not isinstance(metadata, Metadata):
            self.refused = f"{path} holds a {type(metadata).__name__}, not DCP Metadata"
            raise UnsafeCheckpoint(self.refused)
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        metadata.storage_meta.load_id = self.load_id
        return metadata


class SafePlanner(DefaultLoadPlanner):
    """DefaultLoadPlanner reading non-tensor values with torch.load(weights_only=True)."""

    refused: str | None = None

    def load_bytes(self, read_item, value: io.BytesIO) -> None:
        # NB: DefaultLoadPlanner.load_bytes with the one change (weights_only=True), as of torch 2.13;
        # set_element is private to DCP
        from torch.distributed.checkpoint._traverse import set_element

        fqn = read_item.dest_index.fqn
        try:
            obj = torch.load(value, weights_only=True)
        except pickle.UnpicklingError as e:  # torch names the global: "Unsupported global: GLOBAL posix.system"
            name = re.search(r"GLOBAL ([\w.]+)", str(e))
            self.refused = f"the value of {fqn} " + (f"refers to {name[1]}" if name else
                                                     f"is not plain data ({str(e).splitlines()[0][:200]})")
            raise UnsafeCheckpoint(self.refused) from None
        if self.flatten_state_dict:
            set_element(self.original_state_dict, self.mappings[fqn], obj)
        else:
            self.state_dict[fqn] = obj


def load(state: dict, checkpoint: str | Path) -> None:
    """dcp.load(state, checkpoint_id=checkpoint) with the metadata and values read as data.
    Raises UnsafeCheckpoint when a file was refused, else what dcp.load raises."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.api import CheckpointException

    reader, planner = SafeReader(str(checkpoint)), SafePlanner()
    try:
        dcp.load(state, storage_reader=reader, planner=planner)
    except (Exception, CheckpointException):  # CheckpointException is a BaseException
        if reader.refused or planner.refused:
            raise UnsafeCheckpoint(reader.refused or f"{checkpoint}: {planner.refused}") from None
        raise
