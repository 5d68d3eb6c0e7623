"""`graphspec import`, `graphspec export --format hf`, `graphspec import-weights`: to and from
Hugging Face.

    graphspec import config.json -o llama.yaml            # a HF config -> a readable spec
    graphspec export gpt2 --format hf -o out/              # out/config.json (AutoConfig loads it)
    graphspec export gpt2 --format hf -o out/ --weights build/gpt2-torch   # + out/model.safetensors
    graphspec export llama2_7b --format hf -o out/ --weights w.safetensors --max-shard-size 5GB  # + shards, index
    graphspec import-weights gpt2 hf/model.safetensors -o weights.safetensors

Config files and weights are data: JSON (at most 1 MiB) and safetensors only, never a pickle.
Outputs are published atomically (graphspec/io.py) and an existing one is replaced only with
--force. An option graphspec cannot express, or weights that do not fit, exit 2 naming it.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

import click
from graphspec.cli.main import OutputPath, UserError, user_errors

import graphspec
from graphspec.io import atomic_dir, atomic_write, refuse_holding

MAX_WEIGHTS = 64 << 30


def _refuse_existing(path: Path, force: bool, inputs: dict | None = None) -> None:
    for what, i in (inputs or {}).items():  # the file this command reads
        if os.path.exists(path) and os.path.exists(i) and os.path.samefile(path, i):
            raise UserError(f"-o {path} is {what} itself: writing there would destroy it (not even with --force); "
                            "give another file")
    if os.path.lexists(path) and not force:
        raise UserError(f"{path} exists; graphspec does not replace it without --force")


def _checked_spec(text: str, name: str, config: str) -> graphspec.Model:
    """The imported spec loaded, so that what is written is a spec graphspec reads; its errors
    (a window that does not divide a map: HF pads, graphspec does not) located at the config."""
    from graphspec.spec.errors import Diagnostic, Loc, SpecError

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"{name}.yaml"
        p.write_text(text)
        try:
            return graphspec.load(p)
        except SpecError as e:
            raise SpecError([Diagnostic(Loc(config, 1, 1), f"graphspec cannot build the model this config describes: "
                                        f"{x.message}", x.fix) for x in e.diagnostics]) from None


@click.command("import")
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", default="-", metavar="FILE", type=OutputPath(allow_dash=True),
              help="Write the spec here (atomically); '-' for stdout.")
@click.option("--name", default=None, help="The spec's name (default: the config's model_type).")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@click.option("--base", is_flag=True,
              help="Import the base model (BertModel, T5Model, ...) whatever head `architectures` declares.")
@user_errors
def import_cmd(config: Path, output: str, name: str | None, force: bool, base: bool) -> None:
    """A Hugging Face CONFIG (config.json) as a graphspec spec."""
    from graphspec.interchange.config import read_config
    from graphspec.interchange.hf_import import from_hf_config
    from graphspec.spec.source import display, read_spec_file

    data = read_config(config)
    text = from_hf_config(data, name=name, file=display(config), text=read_spec_file(config), base=base)
    model = _checked_spec(text, name or str(data["model_type"]), display(config))
    if output == "-":
        click.echo(text, nl=False)
        return
    _refuse_existing(Path(output), force, {"the config": config})
    atomic_write(output, text)
    click.echo(f"wrote {output}: {model.params():,} parameters", err=True)


def _open(path: Path, limit: int = MAX_WEIGHTS):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise UserError(f"cannot read weights {path}: {e.strerror or e}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_size > limit:  # before fdopen, which refuses a directory
        os.close(fd)
        raise UserError(f"weights {path}: not a regular file of at most {limit:,} bytes")
    return os.fdopen(fd, "rb")


def _file_bytes(path: Path, limit: int = MAX_WEIGHTS) -> bytes:
    with _open(path, limit) as f:
        return f.read()


def _tensor_bytes(path: Path) -> int:
    """The bytes of tensors safetensors file `path` lists, from its header (nothing else is read)."""
    from graphspec.backends.weights import tensor_bytes

    with _open(path) as f:
        try:
            return tensor_bytes(f, os.fstat(f.fileno()).st_size)
        except ValueError as e:
            raise UserError(f"weights {path}: not a safetensors file ({e}); graphspec reads safetensors "
                            "only (no pickle)") from None


def _check_fits(sizes: dict[Path, int], model: graphspec.Model) -> None:
    """Before a tensor is read: weights whose headers list (`sizes`: file -> tensor bytes) more
    than twice the model's float32 size are another model's, and reading must fit in free memory."""
    import math

    from graphspec.backends.budget import fmt, free_bytes

    from graphspec.analysis import tensors

    total, first = sum(sizes.values()), next(iter(sizes))
    where = first if len(sizes) == 1 else f"{first.parent} ({len(sizes)} shards)"
    numel = sum(math.prod(int(d) for d in shape) for shape in tensors(model.graph).values())
    if total > 8 * numel + (64 << 20):  # float64 and HF's extra buffers (GPT-2's attn.bias) fit
        raise UserError(f"weights {where} list {fmt(total)} of tensors, and {model.spec.name} has {numel:,} "
                        f"parameters and buffers ({fmt(4 * numel)} in float32): they are another model's "
                        "weights; check the spec and its --set values")
    need, free = 2 * total + max(sizes.values()), free_bytes()
    if free is not None and need > free:
        raise UserError(f"weights {where}: reading them needs about {fmt(need)} ({fmt(total)} of tensors, read "
                        f"and renamed, and the largest file's bytes while it is parsed), this machine has "
                        f"{fmt(free)} free; free memory (close other programs) or run on a machine with more")


def _parse(data: bytes, path: Path) -> dict:
    """The tensors of safetensors bytes, in their dtype (bf16 included); never a pickle."""
    from safetensors.torch import load

    try:
        return load(data)
    except Exception as e:  # SafetensorsError, or a builtin for a header that is not JSON
        raise UserError(f"weights {path}: not a safetensors file ({str(e)[:200]}); graphspec reads "
                        "safetensors only (no pickle)") from None


def _read_weights(path: Path, model: graphspec.Model) -> dict:
    """Tensors of a safetensors file, or of a build directory's weights.safetensors (read through
    its manifest: confined to the directory, sha256 as recorded), checked to fit first."""
    if not path.is_dir():
        _check_fits({path: _tensor_bytes(path)}, model)
        return _parse(_file_bytes(path), path)
    from graphspec.backends.manifest import ManifestError, artifact, read

    try:
        m = read(path)
        if "weights" not in m["artifacts"]:
            raise UserError(f"{path} is a {m.get('target', '?')} build without a weights.safetensors "
                            "(an ONNX build keeps its weights in model.onnx); build --target torch")
        name = m["artifacts"]["weights"]
        _check_fits({path / name: int(m["files"][name].get("bytes") or 0)}, model)  # the size it was built with
        return _parse(artifact(path, m, "weights"), path / name)
    except ManifestError as e:
        raise UserError(str(e)) from None


INDEX = "model.safetensors.index.json"
MAX_INDEX = 16 << 20


def _read_hf_weights(path: Path, model: graphspec.Model) -> dict:
    """A Hugging Face checkpoint: model.safetensors, or a model directory with one or with
    sharded `model-0000i-of-0000n.safetensors` listed in model.safetensors.index.json (shard
    names must be plain file names inside the directory), checked to fit first."""
    if not path.is_dir():
        _check_fits({path: _tensor_bytes(path)}, model)
        return _parse(_file_bytes(path), path)
    if (path / "model.safetensors").exists():
        return _read_hf_weights(path / "model.safetensors", model)
    if not (path / INDEX).exists():
        raise UserError(f"{path} holds neither model.safetensors nor {INDEX} (a pytorch_model.bin is a pickle: "
                        "graphspec does not read it; convert it with safetensors first)")
    try:
        index = json.loads(_file_bytes(path / INDEX, MAX_INDEX))  # HF's index of a 70B model is ~70 KB
        shards = sorted(set(index["weight_map"].values()))
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise UserError(f"{path / INDEX}: not a safetensors index ({str(e)[:200]})") from None
    for name in shards:
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise UserError(f"{path / INDEX}: shard {name!r} is not a file name inside {path}")
    _check_fits({path / name: _tensor_bytes(path / name) for name in shards}, model)
    out: dict = {}
    for name in shards:
        out.update(_parse(_file_bytes(path / name), path / name))  # a file: never another directory's index
    return out


def _graph_for(model: graphspec.Model, keys: set[str], state: dict | None = None):
    """The graph whose parameters the weights are named after: unfused, or after the default
    passes (a torch build's, with a fused `attn.qkv`); with `state`, its tensors' shapes and
    dtypes checked against that graph's parameters (floating point, the IR's shape)."""
    from graphspec.analysis import buffers, parameters

    graphs = [model.graph]
    try:
        from graphspec.passes import run_pipeline

        graphs.append(run_pipeline(model.graph, "default")[0])
    except ImportError:
        pass
    for g in graphs:
        if set(parameters(g)) <= keys <= set(parameters(g)) | set(buffers(g)):
            if state is not None:
                _check_tensors(state, {**buffers(g), **parameters(g)}, set(parameters(g)), model.spec.name)
            return g
    want = min((set(parameters(g)) for g in graphs), key=lambda w: len(w ^ keys))  # the nearer naming
    raise UserError(f"the weights are not {model.spec.name}'s: missing {sorted(want - keys)[:4]}, "
                    f"unexpected {sorted(keys - want)[:4]}")


def _check_tensors(state: dict, shapes: dict, params: set[str], name: str) -> None:
    """Each tensor has the IR's shape, and each parameter a floating-point dtype."""
    for k, want in shapes.items():
        t = state.get(k)
        if t is None:
            continue
        if tuple(t.shape) != tuple(want):
            raise UserError(f"weight {k}: shape {tuple(t.shape)}, {name} wants {tuple(want)}; the weights are "
                            "another configuration's (check the spec's --set values)")
        if k in params and not t.is_floating_point():
            raise UserError(f"weight {k}: dtype {str(t.dtype).removeprefix('torch.')}, not floating point; "
                            f"{name}'s parameters are float32, float16 or bfloat16")


def _shard_size(ctx, param, value):
    if value is None:
        return None
    from graphspec.interchange.hf_export import shard_size

    try:
        shard_size(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    return value


@click.command("export")
@click.argument("spec")
@click.option("--format", "fmt", type=click.Choice(["hf"]), required=True, help="hf: a Hugging Face model directory.")
@click.option("-o", "--output", required=True, metavar="DIR", type=OutputPath(),
              help="The directory to write (atomically).")
@click.option("--weights", type=click.Path(path_type=Path), default=None,
              help="A build directory or a safetensors file of graphspec-named weights: writes model.safetensors.")
@click.option("--max-shard-size", default=None, callback=_shard_size, metavar="SIZE",
              help="Split the weights as save_pretrained does: 5GB, 500MB or bytes (default: transformers' 50GB).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a variable or field of the spec.")
@click.option("--force", is_flag=True, help="Replace an existing output directory.")
@user_errors
def export_cmd(spec: str, fmt: str, output: str, weights: Path | None, max_shard_size: str | None,
               overrides: tuple[str, ...], force: bool) -> None:
    """SPEC as a Hugging Face model directory (config.json [+ model.safetensors, or shards
    model-0000i-of-0000n.safetensors and model.safetensors.index.json])."""
    from graphspec.interchange.hf_export import (
        DEFAULT_SHARD_SIZE,
        ExportError,
        to_hf_config,
        to_hf_weights,
        write_hf_weights,
    )

    if max_shard_size is not None and weights is None:
        raise UserError("--max-shard-size splits the weights: give --weights too")
    model = graphspec.load(spec, overrides)
    out = Path(output)
    refuse_holding(out, {"the spec": graphspec.resolve_spec(spec), "--weights": weights})
    _refuse_existing(out, force)
    try:
        cfg = to_hf_config(model)
        hf = None
        if weights is not None:
            state = _read_weights(weights, model)
            hf = to_hf_weights(state, _graph_for(model, set(state), state), cfg)
    except ExportError as e:
        raise UserError(str(e)) from None
    except ImportError as e:
        raise UserError(f"exporting weights needs transformers ({e}); pip install transformers") from None
    files: list[str] = []
    with atomic_dir(out) as tmp:
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        if hf is not None:
            files = write_hf_weights(tmp, hf, cfg, max_shard_size or DEFAULT_SHARD_SIZE)
    shards = f"{len(files) - 1} shards and {files[-1]}" if len(files) > 1 else "model.safetensors"
    what = f"config.json ({cfg['architectures'][0]})" + (f", {shards} ({len(hf)} tensors)" if hf else "")
    click.echo(f"wrote {output}: {what}", err=True)


@click.command("import-weights")
@click.argument("spec")
@click.argument("weights", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, metavar="FILE", type=OutputPath(),
              help="graphspec-named weights.safetensors to write.")
@click.option("--passes", type=click.Choice(["none", "default"]), default="none",
              help="Name the weights for the unfused IR (none) or after the default passes (fused qkv).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a variable or field of the spec.")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@user_errors
def import_weights_cmd(spec: str, weights: Path, output: str, passes: str, overrides: tuple[str, ...],
                       force: bool) -> None:
    """Hugging Face WEIGHTS (model.safetensors, or a model directory, sharded or not) renamed for
    SPEC's generated module."""
    from graphspec.interchange.hf_export import ExportError, family, to_graphspec_weights

    model = graphspec.load(spec, overrides)
    _refuse_existing(Path(output), force, {"WEIGHTS": weights, "the spec": graphspec.resolve_spec(spec)})
    graph = model.graph
    if passes == "default":
        from graphspec.passes import run_pipeline

        graph = run_pipeline(graph, "default")[0]
    try:
        out = to_graphspec_weights(_read_hf_weights(weights, model), graph, family(model.spec))
    except ExportError as e:
        raise UserError(str(e)) from None
    from graphspec.analysis import buffers, parameters

    _check_tensors(out, {**buffers(graph), **parameters(graph)}, set(parameters(graph)), model.spec.name)
    from safetensors.torch import save

    atomic_write(output, save({k: v.contiguous() for k, v in out.items()}))
    click.echo(f"wrote {output}: {len(out)} tensors named for {model.spec.name} (passes: {passes})", err=True)


COMMANDS = [import_cmd, export_cmd, import_weights_cmd]
