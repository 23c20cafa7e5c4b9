"""Persistent cache of what sympy derives, so that a second process does not pay for it again.

Stage: beside :mod:`symmft.theory.meanfield`, :mod:`symmft.theory.jacobian` and :mod:`symmft.theory.compile`,
which call :func:`cached` around their sympy work (derived maps, Jacobian moments, generated source).

An entry is a pickle under ``symmft.cache.directory("derivations")``, named by a SHA-256 of: the cell file's hash,
:data:`symmft.cache.VERSION`, a hash of the deriving sources (every ``.py`` file of ``symmft/cell`` and
``symmft/theory``, so an edited derivation never reads an entry written by the old code) and the caller's
options. Writes are atomic (a temporary file, then ``os.replace``); an entry that cannot be read (truncated,
corrupted, written by an incompatible sympy) is ignored and rebuilt; a folder that cannot be written only
costs the speed-up. ``SYMMFT_CACHE=off`` disables it. Entries hold sympy expressions only, never the ``Cell``
(its step function is the user's code): callers re-attach the live objects on load.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import tempfile
from pathlib import Path
from typing import Callable, TypeVar

from symmft import cache

T = TypeVar("T")
KIND = "derivations"


@functools.lru_cache(maxsize=1)
def sources_hash() -> str:
    """SHA-256 of the deriving sources (symmft/cell and symmft/theory), computed once per process."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for path in sorted([*package.glob("cell/*.py"), *package.glob("theory/*.py")]):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


cache.register("hash of the deriving sources", sources_hash.cache_clear)


def entry(file_hash: str, what: str, options: tuple) -> Path:
    """The file that holds ``what`` (a name) for the cell with ``file_hash`` under ``options`` (reprs hashed)."""
    key = repr((file_hash, cache.VERSION, sources_hash(), what, options)).encode()
    return cache.directory(KIND) / f"{what}-{hashlib.sha256(key).hexdigest()[:32]}.pickle"


def cached(file_hash: str, what: str, options: tuple, build: Callable[[], T]) -> T:
    """The value stored for (``file_hash``, ``what``, ``options``), or ``build()``, stored for the next process."""
    if not cache.persistent():
        return build()
    path = entry(file_hash, what, options)
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except Exception:  # absent, truncated or corrupted: rebuilt below and overwritten
        pass
    value = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("wb", dir=path.parent, suffix=".tmp", delete=False) as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(f.name, path)  # atomic: a reader sees the old entry or the whole new one
    except OSError:  # read-only or full disk: the value is still returned
        try:
            os.unlink(f.name)
        except (OSError, NameError):
            pass
    return value
