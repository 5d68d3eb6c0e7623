"""The user's top-level folders are installed under the graphspec namespace only.

NOTE: [Package layout] pyproject maps codegen/, backends/, cli/ and specs/ to graphspec.codegen,
graphspec.backends, graphspec.cli and graphspec.specs. Editable installs of remapped folders have
a bug history (setuptools #4248, #2662), so both the wheel and the editable install are checked,
from a directory outside the repository so that the folders cannot be picked up from the cwd.
"""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = (
    "import graphspec, graphspec.codegen, graphspec.backends, graphspec.cli.main, graphspec.specs;"
    "import importlib.util as u;"
    "print(graphspec.codegen.__file__);"
    "print(sorted(p.name for p in graphspec.SPECS_DIR.glob('*.yaml'))[:2]);"
    "print([m for m in ('codegen', 'backends', 'cli') if u.find_spec(m) is not None])"
)


def _probe(cwd: Path, env_path: str | None = None) -> list[str]:
    env = None
    if env_path is not None:
        import os

        env = {**os.environ, "PYTHONPATH": env_path}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_editable_install_maps_the_folders(tmp_path):
    codegen_file, specs, generic = _probe(tmp_path)
    assert Path(codegen_file).resolve().parent == ROOT / "codegen"
    assert specs.startswith("['bert_base.yaml'")
    assert generic == "[]", "generic top-level names must not be importable"


def test_wheel_installs_under_the_namespace(tmp_path):
    # built from a copy: setuptools writes build/ and *.egg-info into the source tree
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("graphspec", "codegen", "backends", "cli", "specs"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels)], check=True, capture_output=True)
    (wheel,) = wheels.glob("graphspec-*.whl")
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                    str(wheel)], check=True, capture_output=True)
    assert not (target / "codegen").exists() and not (target / "cli").exists()
    assert (target / "graphspec" / "codegen" / "__init__.py").exists()
    # every package folder of the source tree is in the wheel (graphspec.vocab once was not: the
    # editable install hid it, because it imports from the source folders)
    mapped = {"graphspec": "graphspec", "codegen": "graphspec/codegen", "backends": "graphspec/backends",
              "cli": "graphspec/cli", "specs": "graphspec/specs"}
    wanted = {(Path(mapped[top]) / init.parent.relative_to(ROOT / top)).as_posix()
              for top in mapped for init in (ROOT / top).rglob("__init__.py")
              if "__pycache__" not in init.parts}
    missing = sorted(w for w in wanted if not (target / w / "__init__.py").exists())
    assert not missing, f"packages missing from the wheel (add them to pyproject's packages): {missing}"
    codegen_file, specs, generic = _probe(tmp_path, env_path=str(target))
    assert Path(codegen_file).is_relative_to(target)
    assert specs.startswith("['bert_base.yaml'")
    assert generic == "[]"
