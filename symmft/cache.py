"""Every cache symmft keeps, registered in one place, with a way to clear them (a leaf module).

Two kinds:
- in memory, per process: derived maps, compiled functions, Jacobian maps, gate roles, quadrature rules. Each is a
  dict from :func:`memory` (or a function registered with :func:`register`), keyed by cell-file hash and options.
- on disk, under ``$SYMMFT_CACHE`` (default ``~/.cache/symmft``), one folder per kind (:func:`directory`):
  ``codegen`` (generated training steps), ``rules`` (critical rules of ``train --init critical``) and whatever
  later stages add. Disk entries are keyed by cell-file hash *and* :data:`VERSION`, so an upgrade never reads a
  stale entry.

``SYMMFT_CACHE=off`` keeps nothing for a later process (:func:`persistent`).

``clear_caches()`` empties the memory caches; ``clear_caches(disk=True)`` also deletes the folders
(``symmft cache --clear`` on the command line).
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable

try:
    VERSION = version("symmft")
except PackageNotFoundError:  # a source tree that was never installed
    VERSION = "0+unknown"

_MEMORY: dict[str, dict] = {}
_CLEARERS: dict[str, Callable[[], None]] = {}


def memory(name: str) -> dict:
    """The in-memory cache called ``name`` (created empty on first use; the same dict on every call)."""
    return _MEMORY.setdefault(name, {})


def register(name: str, clear: Callable[[], None]) -> None:
    """Register a cache that is not a :func:`memory` dict (e.g. ``functools.lru_cache``'s ``cache_clear``)."""
    _CLEARERS[name] = clear


def persistent() -> bool:
    """False when ``SYMMFT_CACHE=off``: nothing is kept on disk for a later process."""
    return os.environ.get("SYMMFT_CACHE") != "off"


def root() -> Path:
    """``$SYMMFT_CACHE``, or ``~/.cache/symmft``; with ``SYMMFT_CACHE=off``, a folder of this process's own, removed
    at exit (generated training steps still need a file to be imported from)."""
    if not persistent():
        return _scratch()
    return Path(os.environ.get("SYMMFT_CACHE") or Path.home() / ".cache" / "symmft")


@functools.cache
def _scratch() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="symmft-cache-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def directory(kind: str) -> Path:
    """The on-disk cache folder for ``kind`` (not created here: writers create it when they write)."""
    return root() / kind


def clear_caches(disk: bool = False) -> list[str]:
    """Empty every in-memory cache; with ``disk``, also delete the on-disk folders. Returns what was cleared."""
    cleared = []
    for name, d in _MEMORY.items():
        d.clear()
        cleared.append(name)
    for name, clear in _CLEARERS.items():
        clear()
        cleared.append(name)
    if disk and root().exists():
        for folder in sorted(p for p in root().iterdir() if p.is_dir()):
            shutil.rmtree(folder, ignore_errors=True)
            cleared.append(str(folder))
    return cleared


def summary() -> dict:
    """What is cached now: entries per memory cache, files and bytes per disk folder."""
    disk = {}
    if root().exists():
        for folder in sorted(p for p in root().iterdir() if p.is_dir()):
            files = [f for f in folder.rglob("*") if f.is_file()]
            disk[folder.name] = {"files": len(files), "bytes": sum(f.stat().st_size for f in files)}
    return {"root": str(root()), "version": VERSION, "memory": {k: len(v) for k, v in _MEMORY.items()},
            "registered": sorted(_CLEARERS), "disk": disk}
