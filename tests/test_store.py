"""The on-disk derivation cache (symmft.theory.store): what a second process loads equals a fresh derivation, and
a corrupted entry is ignored and rebuilt."""

import pickle

import sympy as sp

from symmft import cache, load_cell, derive
from symmft.theory import compile as compile_module
from symmft.theory import jacobian, meanfield
from symmft.theory.compile import compile_map
from symmft.theory.jacobian import derive_jacobian


def _forbidden(*args, **kwargs):
    raise AssertionError("derived again although the disk cache holds the entry")


def _derive_all(cell):
    """Derived map, Jacobian moments and generated code, from an empty memory cache (a new process)."""
    cache.clear_caches()
    mf = derive(cell)
    jm = derive_jacobian(cell, "memory", "orthogonal")
    cm = compile_map(mf)
    return mf, jm, {name: getattr(cm, name).source for name in ("_diag", "_cross", "_jdiag", "_jcross")}


def _assert_same(a, b):
    (mf_a, jm_a, src_a), (mf_b, jm_b, src_b) = a, b
    assert mf_b.cell is mf_a.cell  # the live Cell is re-attached, never unpickled
    assert (mf_b.diagonal, mf_b.cross, mf_b.hyperparameters) == (mf_a.diagonal, mf_a.cross, mf_a.hyperparameters)
    for key, expr in mf_a.update.items():
        assert sp.srepr(mf_b.update[key]) == sp.srepr(expr), key
    assert (sp.srepr(jm_b.m1), sp.srepr(jm_b.m2), jm_b.primary) == (sp.srepr(jm_a.m1), sp.srepr(jm_a.m2), jm_a.primary)
    assert src_b == src_a


def test_disk_cache_returns_what_a_fresh_derivation_gives_and_rebuilds_corrupted_entries(tmp_path, monkeypatch):
    cell = load_cell("vanilla_rnn")
    monkeypatch.setenv("SYMMFT_CACHE", "off")
    fresh = _derive_all(cell)  # sympy, nothing stored
    folder = tmp_path / "derivations"
    monkeypatch.setenv("SYMMFT_CACHE", str(tmp_path))
    _derive_all(cell)  # derives and stores
    entries = sorted(folder.glob("*.pickle"))
    assert {p.name.split("-")[0] for p in entries} >= {"meanfield", "jacobian", "compiled"}
    with monkeypatch.context() as m:  # a new process would load everything: no sympy derivation may run
        m.setattr(meanfield.Derivation, "run", _forbidden)
        m.setattr(jacobian, "_derive", _forbidden)
        m.setattr(compile_module, "function_source", _forbidden)
        _assert_same(fresh, _derive_all(cell))
    for p in entries:  # truncated / overwritten files: ignored, derived again and rewritten whole
        p.write_bytes(b"not a pickle" if p.name.startswith("jacobian") else p.read_bytes()[:20])
    _assert_same(fresh, _derive_all(cell))
    for p in entries:
        pickle.loads(p.read_bytes())
    assert not list(folder.glob("*.tmp"))  # atomic writes leave no temporary behind
    cache.clear_caches()
