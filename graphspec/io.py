"""Atomic output: a failed, killed or concurrent write never leaves a half-written file or directory.

NOTE: [Publishing a build directory] `atomic_dir(path)` yields a temporary directory
`.NAME.<pid>.<random>.tmp` beside `path`; the caller fills it, and publishing is one step:

* `path` does not exist: `rename(tmp, path)`, atomic.
* `path` exists (Linux): `renameat2(tmp, path, RENAME_EXCHANGE)` swaps the two directories
  atomically, then the old copy (now under the temporary name) is removed. A reader, or a kill
  at any moment, sees the complete old directory or the complete new one, never neither.
* Where the filesystem has no RENAME_EXCHANGE (ENOSYS, EINVAL, EOPNOTSUPP), `path` becomes a
  symlink to a sibling `.NAME.<pid>.<random>.build`, and a new build is published by replacing
  the symlink with `os.replace`, atomic as well. The one step that is not atomic there is the
  first publish over a plain directory: it is renamed to `.NAME.*.old` before the symlink takes
  its place; a kill between the two leaves `path` missing, and the next build of `path`
  renames the `.old` directory back before doing anything else.

Builds of one `path` are serialized by an exclusive `fcntl.flock` on `.NAME.lock` beside it:
a second build does not wait, it fails at once with an `OutputError` naming the holder's pid
(exit code 2 in the CLI). Holding the lock, a build removes the temporaries that killed builds
left (`.NAME.<pid>.*.tmp|.build|.lnk|.old` whose process is gone).

NB: files are fsynced, the parent directory is not: publishing is atomic against kills and
concurrent readers; after a power loss the filesystem's journal decides which build survives.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path


class OutputError(Exception):
    """The output location cannot be written (a user error: exit code 2)."""


# Called with "publish" right before the directory is swapped in and "published" right after
# (before the old copy is removed); tests set it to pause a build there and kill it.
_hook: Callable[[str], None] | None = None

AT_FDCWD = -100
RENAME_EXCHANGE = 2


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


_CHAR_NAMES = {"\0": "a NUL", "\n": "a newline", "\r": "a carriage return", "\t": "a tab", "\x1b": "an escape",
               "\u2028": "a line separator", "\u2029": "a paragraph separator"}


def check_name(path: str | Path, option: str | None = None) -> None:
    """Refuse an output path holding a control character (C0, DEL, C1) or a line or paragraph
    separator: such a name breaks the lines of logs, manifests and `ls`, and NUL ends it in the OS."""
    import unicodedata

    bad = next((c for c in str(path) if unicodedata.category(c) in ("Cc", "Zl", "Zp")), None)
    if bad is not None:
        what = _CHAR_NAMES.get(bad, "a control character")
        raise OutputError(f"{option + ' ' if option else ''}{str(path)!r}: the name holds {what} (U+{ord(bad):04X}); "
                          "give a name of printable characters")


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write `data` to a temporary file beside `path`, then rename it over `path`."""
    check_name(path)
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a directory; give a file name, "
                          f"e.g. {path / 'model.py'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        try:
            _write_all(fd, data.encode() if isinstance(data, str) else data)
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# -- the lock ----------------------------------------------------------------------------------
def lock_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


@contextmanager
def dir_lock(path: str | Path) -> Iterator[Path]:
    """Hold an exclusive flock on `.NAME.lock` beside `path`; refuse at once if it is held."""
    import fcntl

    path = Path(os.path.abspath(path))
    lock = lock_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise OutputError(f"cannot write {path}: cannot create its lock {lock}: "
                              f"{e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise OutputError(f"{path} is being built by another process (pid {holder} holds "
                              f"{lock}); wait for that build to finish, then run again") from None
        try:  # the file may have been unlinked by the previous holder between open and flock
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        try:  # the holder's pid, for the message a second build gets (a full disk may refuse it)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass
        yield lock
    finally:
        lock.unlink(missing_ok=True)  # while holding it: a later opener re-checks the inode
        os.close(fd)


# -- stale temporaries -------------------------------------------------------------------------
def _temp_re(path: Path) -> re.Pattern:
    # current names carry the pid; `.NAME.<random>.tmp` and `.NAME.old` are older graphspec's
    return re.compile(rf"\.{re.escape(path.name)}\.(?:(?:(\d+)\.)?\w+\.(tmp|build|lnk|old)|(old))")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # we hold the lock: no other build of ours is running
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _link_target(path: Path, name: str | None = None) -> Path | None:
    """The sibling `.NAME.*.build` directory that `path` (a symlink of ours) points to."""
    if not path.is_symlink():
        return None
    target = os.readlink(path)
    if "/" in target or not re.fullmatch(rf"\.{re.escape(name or path.name)}\.\d+\.\w+\.build", target):
        return None
    return path.with_name(target)


def _remove(p: Path) -> None:
    if p.is_symlink() or p.is_file():
        p.unlink(missing_ok=True)
    else:
        shutil.rmtree(p, ignore_errors=True)


def clean_stale(path: Path) -> list[str]:
    """Remove what killed builds of `path` left beside it (call with the lock held)."""
    pat, removed = _temp_re(path), []
    try:
        entries = sorted(path.parent.iterdir())
    except OSError:
        return removed
    current = _link_target(path)
    for e in entries:
        m = pat.fullmatch(e.name)
        if not m or (m[1] and _alive(int(m[1]))):
            continue
        kind = m[2] or m[3]
        if e == current:
            continue
        try:
            if kind == "old" and not os.path.lexists(path):  # killed between the two renames
                os.rename(e, path)
                removed.append(f"{e.name} (restored as {path.name})")
                continue
            _remove(e)
        except OSError:  # not ours to remove after all (permissions): leave it
            continue
        removed.append(e.name)
    return removed


# -- publishing --------------------------------------------------------------------------------
def _exchange(a: Path, b: Path) -> bool:
    """Swap `a` and `b` atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _step(stage: str) -> None:
    if _hook is not None:
        _hook(stage)


def _publish(tmp: Path, path: Path) -> None:
    _step("publish")
    if not os.path.lexists(path):
        os.rename(tmp, path)
        _step("published")
    elif _exchange(tmp, path):
        _step("published")
        old = _link_target(tmp, path.name)  # `path` was a symlink of the fallback scheme
        _remove(tmp)
        if old is not None:
            _remove(old)
    else:
        _publish_by_link(tmp, path)


def _publish_by_link(tmp: Path, path: Path) -> None:
    """Without RENAME_EXCHANGE: `path` is a symlink to `.NAME.<id>.build`, replaced atomically."""
    token = tmp.name[len(path.name) + 2:-len(".tmp")]
    final, link = (path.with_name(f".{path.name}.{token}.{k}") for k in ("build", "lnk"))
    os.rename(tmp, final)
    os.symlink(final.name, link)
    old = _link_target(path)
    if old is None:  # a plain directory: moved aside first (the one non-atomic step)
        old = path.with_name(f".{path.name}.{token}.old")
        os.rename(path, old)
    os.replace(link, path)
    _step("published")
    _remove(old)


def target_dir(path: str | Path) -> Path:
    """`path` made absolute; a user's symlink followed; the cwd and its parents refused."""
    check_name(path)
    p = Path(os.path.abspath(path))
    if p.is_symlink() and _link_target(p) is None:
        p = p.resolve()
    cwd = Path.cwd().resolve()
    if not p.name or p.resolve() == cwd or p.resolve() in cwd.parents:
        raise OutputError(f"cannot replace {path}: it is the current directory or one of its "
                          "parents; give a new subdirectory, e.g. build/NAME")
    real = p.resolve()
    if any(real == h or real in h.parents for h in _homes()):
        raise OutputError(f"cannot replace {path}: it is a home directory or one of its parents (not even "
                          "with --force); give a new subdirectory, e.g. build/NAME")
    if real.parent == Path(real.anchor) and real.is_dir() and any(real.iterdir()) \
            and not (real / "manifest.json").is_file():  # /usr, /etc; a new /out (a container's volume) is fine
        raise OutputError(f"cannot replace {path}: it is a top-level directory of the filesystem (not even "
                          "with --force); give a new subdirectory, e.g. build/NAME")
    return p


def _homes() -> set[Path]:
    """$HOME and the user's home directory in the password database."""
    import pwd

    homes = {os.path.expanduser("~")}
    try:
        homes.add(pwd.getpwuid(os.getuid()).pw_dir)
    except KeyError:
        pass
    return {Path(h).resolve() for h in homes if h and h.startswith("/") and h != "/"}


def refuse_holding(out: str | Path, inputs: dict[str, str | Path | None]) -> None:
    """Refuse to replace the directory `out` when it is or holds one of the command's `inputs`
    (option -> path: the spec being built, the weights being read): publishing would delete it."""
    real = Path(os.path.abspath(out)).resolve()
    for what, i in inputs.items():
        if i is None:
            continue
        where = Path(os.path.abspath(i)).resolve()
        if where == real or real in where.parents:
            raise OutputError(f"cannot replace {out}: it holds {what} {i}, which replacing it would delete "
                              "(not even with --force); choose another -o")


@contextmanager
def atomic_dir(path: str | Path, *, lock: bool = True) -> Iterator[Path]:
    """Yield a temporary directory beside `path`; on success it replaces `path` in one step.

    `lock=False` when the caller already holds `dir_lock(path)`. OSErrors while the directory
    is filled or published (a full disk) become an OutputError; `path` is left as it was and
    the temporary directory is removed."""
    path = target_dir(path)
    with dir_lock(path) if lock else nullcontext():
        clean_stale(path)
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                                        dir=path.parent))
        except OSError as e:
            raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
        try:
            yield tmp
            _publish(tmp, path)
        except (OSError, OutputError) as e:  # a full disk, a read-only or vanished folder
            shutil.rmtree(tmp, ignore_errors=True)
            why = e.strerror or e if isinstance(e, OSError) else str(e).replace(str(tmp), str(path))
            kept = "its previous contents are untouched" if os.path.lexists(path) else "nothing was written"
            raise OutputError(f"cannot write {path}: {why}; {kept}") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
