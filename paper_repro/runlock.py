"""One writer per run folder: an exclusive lock (`fcntl.flock` on `<run>/.lock`) held for the whole run.

A second writer of the same folder stops at once with one line naming the folder and the holder's pid. The
kernel drops the lock when its holder exits, however it exits (kill -9 included), so a lock file left behind
never blocks a resume. Reading a finished run takes no lock and writes nothing (a read-only cache serves it).
Taking the lock also removes what a killed writer left in the folder (`storage.remove_stale_temps`).

Writers take the lock where their run folder is known, mid-function: `lock_run_folder(rdir)` inside a function
decorated with `@holds_run_locks` keeps it until that function returns or raises.
"""
from __future__ import annotations

import contextlib
import contextvars
import fcntl
import functools
import os
from pathlib import Path

from .storage import load_checkpoint, remove_stale_temps

LOCK_NAME = ".lock"


class RunLockedError(RuntimeError):
    pass


@contextlib.contextmanager
def run_lock(folder):
    """Hold `folder`'s lock (creating the folder) or raise RunLockedError at once if another writer holds it."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise OSError(f"{folder}: cannot write this run folder ({e.strerror or e})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise RunLockedError(f"{folder}: another process (pid {holder}) is writing to this folder. Wait for "
                                 "it to end, or stop it and run again: the run resumes.") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        remove_stale_temps(folder)
        yield folder
    finally:
        os.close(fd)  # releases the lock


def is_locked(folder) -> bool:
    """Whether another process holds `folder`'s lock now (a writer is training it). Writes nothing; it holds a
    shared lock for an instant, so a writer starting in that instant is refused and says so (run it again)."""
    path = Path(folder) / LOCK_NAME
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # refused while a writer holds LOCK_EX
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


_HOLDER: contextvars.ContextVar[contextlib.ExitStack | None] = contextvars.ContextVar("run_locks", default=None)


def holds_run_locks(fn):
    """Decorator: run folders locked by `lock_run_folder` inside `fn` are released when `fn` returns or raises."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with contextlib.ExitStack() as stack:
            token = _HOLDER.set(stack)
            try:
                return fn(*args, **kwargs)
            finally:
                _HOLDER.reset(token)
    return wrapper


def lock_run_folder(folder) -> Path:
    """Lock `folder` until the enclosing `@holds_run_locks` function ends (see `run_lock`)."""
    stack = _HOLDER.get()
    if stack is None:
        raise RuntimeError("lock_run_folder: call it inside a function decorated with @holds_run_locks")
    return stack.enter_context(run_lock(folder))


def epochs_done(checkpoint, expect: dict | None = None) -> int:
    """The epochs a run's checkpoint records (0 when there is none), read without the lock: is it finished?"""
    return load_checkpoint(checkpoint, expect=expect)["epoch"] if Path(checkpoint).exists() else 0
