"""Spectral moments of the state-to-state Jacobian in the large-width limit (docs/theory.md §3), for any cell.

Stage: ``Cell`` -> :class:`JacobianMap` (sympy) -> compiled with :mod:`symmft.theory.compile`'s code generator ->
``m1, m2`` at a fixed point from :mod:`symmft.theory.dynamics`.

Which Jacobian. *Primary* states are those whose new value does not depend on another new state; the others are
*derived* (the LSTM's h' = o*tanh(c') is derived from c'). ``kind="memory"`` is J = d primary_t / d primary_{t-1},
with each derived state at t-1 a function of the primary ones through its same-step dependence, every other
quantity of that step held (for the LSTM: h_{t-1} = o_{t-1} tanh(c_{t-1}), the output gate held, as docs/theory.md
states). ``kind="full"`` treats every state as an input: the S*n x S*n Jacobian.

How. m1 = tr(JJ^T)/N = E|J d|^2/N and m2 = tr((JJ^T)^2)/N = E|J^T J d|^2/N for an isotropic Gaussian d, and
both are computed by mean-field propagation of tangents through the cell graph, i.e. forward-mode and then
reverse-mode differentiation of the step done with sympy, where every random matrix acts on a tangent as follows
(diagonals free from the matrices, as in the paper):

* forward, ``U v``: a fresh zero-mean Gaussian with variance nu2 E[v^2], independent of everything at the unit;
* backward, ``U^T a`` for a cotangent a built from the forward pass: nu2 E[da/dg] v (g = U v, the same matrix's
  forward use) plus a fresh Gaussian of variance nu2 E[a^2] (Gaussian U) or nu2 E[a^2] - nu2^2 E[da/dg]^2 E[v^2]
  (orthogonal U, whose U^T U = nu2 I leaves no Wishart fluctuation).

For J = U this gives m2 = 2 (Marchenko-Pastur) and 1 (orthogonal); for J = D U, m2 = <D^4> + <D^2>^2 and <D^4>,
the free-probability values. Nested words (the reset-before GRU's U_n D U_r) need no special case; the
reset-after GRU's tanh'(u_n + r u_hn) times u_hn-dependent factors is integrated exactly, conditionally on
(r, u_hn) (meanfield's conditional closure, nested quadrature). Fourth moments of the previous state (E[c^4],
from the LSTM's D(c sigma'(u_f)) U_f word) use the Gaussian closure of that state. The diagonals
of the previous step (the LSTM's o_{t-1} tanh'(c_{t-1})) enter as one block independent of the current step, its
moments taken at stationarity.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from symmft import cache
from symmft.cell.graph import Cell, primary_states
from symmft.errors import ClosureError
from symmft.theory import store
from symmft.theory.meanfield import Derivation, derive
from symmft.theory.meanfield_map import MeanFieldMap

KINDS = ("memory", "full")
WEIGHTS = ("gaussian", "orthogonal")


@dataclass(frozen=True)
class JacobianMap:
    """m1 and m2 of J as expressions in the diagonal keys (fixed-point moments) and hyperparameters."""

    cell: Cell
    kind: str
    weights: str
    primary: tuple[str, ...]
    m1: sp.Expr
    m2: sp.Expr
    map: MeanFieldMap


def derive_jacobian(cell: Cell, kind: str = "memory", weights: str = "gaussian", chrono: frozenset = frozenset()) -> JacobianMap:
    """Derive m1, m2 of the ``kind`` Jacobian for ``weights`` (cached per file hash; ``chrono`` as in derive)."""
    if kind not in KINDS:
        raise ClosureError(f"unknown Jacobian kind {kind!r}; choose one of {', '.join(KINDS)}")
    if weights not in WEIGHTS:
        raise ClosureError(f"unknown weight distribution {weights!r}; choose one of {', '.join(WEIGHTS)}")
    key = (cell.file_hash, kind, weights, frozenset(chrono))
    if key not in _CACHE:
        # sympy's work (seconds to tens of seconds for the GRU) is stored on disk; the Cell is re-attached
        options = (kind, weights, tuple(sorted(chrono)))
        primary, m1, m2 = store.cached(cell.file_hash, "jacobian", options, lambda: _derive(cell, kind, weights, frozenset(chrono)))
        _CACHE[key] = JacobianMap(cell, kind, weights, primary, m1, m2, derive(cell, chrono=frozenset(chrono)))
    return _CACHE[key]


_CACHE = cache.memory("Jacobian maps")


def _derive(cell: Cell, kind: str, weights: str, chrono: frozenset) -> tuple:
    """(primary states, m1, m2)."""
    key = (cell.file_hash, kind, chrono)
    if key not in _SHARED:
        _SHARED[key] = _derive_shared(cell, kind, chrono)
    primary, m1, m2, variances = _SHARED[key]
    # each backward Gaussian's variance holds those of the later maps' (created before it): resolved in that order
    values: dict = {}
    for symbol, by_weights in variances.items():
        values[symbol] = by_weights[weights].xreplace(values)
    return primary, m1, m2.xreplace(values)


#: The weights change only the variances of the backward Gaussians eta (orthogonal weights subtract the part that
#: U^T U = nu2 I fixes): the moments are derived once per cell with a symbol for each, shared by both weights.
_SHARED = cache.memory("Jacobian moments for either weights")


def _derive_shared(cell: Cell, kind: str, chrono: frozenset) -> tuple:
    """(primary states, m1, m2 in symbols V_eta, {V_eta: {weights: its variance}}), in creation order."""
    mf = derive(cell, chrono=chrono)
    D = Derivation(cell, chrono)
    # the map's keys are what the moments are written in; reuse the fixed-point derivation's symbols
    primary = primary_states(cell) if kind == "memory" else cell.states
    derived = [t for t in cell.states if t not in primary]
    state = {s: D.atoms[s] for s in cell.states}

    # tangent of the previous state: isotropic for primary states; derived ones follow through d_{t,s}
    tangent = {s: D.gaussian_atom(f"dS_{s}", sp.S.One) for s in primary}
    if derived:
        placeholders = {cell.outputs[s]: sp.Symbol(f"P_{s}") for s in primary}
        pinned = D.walk(placeholders)
        exprs = {}  # atom d_t_s (d t'/d s' at the previous step) -> its expression in current-step atoms
        for t in derived:
            for s in primary:
                d = pinned[cell.outputs[t]].diff(placeholders[cell.outputs[s]])
                exprs[sp.Symbol(f"d_{t}_{s}")] = d.xreplace({placeholders[cell.outputs[p]]: D.new_state[p] for p in primary})
        D.independent_block("previous step", exprs, lambda monomial: D.expect(monomial.xreplace(exprs)))
        for t in derived:
            tangent[t] = sp.Add(*[a * tangent[s] for a in exprs for s in primary if a.name == f"d_{t}_{s}"])
            _refuse_elementwise_use(D, cell, t, state[t])

    def forward(e: sp.Expr) -> sp.Expr:
        """Tangent of an expression in atoms: sum over atoms of (d e / d atom) * tangent(atom)."""
        out = sp.Add(*[e.diff(state[s]) * tangent[s] for s in cell.states if e.has(state[s])])
        return out + sp.Add(*[e.diff(D.atoms["u_" + k]) * g for k, g in gtan.items() if e.has(D.atoms["u_" + k])])

    h = D.hyper
    gtan: dict[str, sp.Symbol] = {}  # affine map -> tangent of its output (U applied to the vectors' tangents)
    vectors: dict[str, list] = {}  # affine map -> [(nu2 symbol, vector expr, tangent of the vector)]
    for a in cell.affines:
        vectors[a.name] = [(h[i.hyperparameter], D.expr[i.node], forward(D.expr[i.node])) for i in a.inputs if i.vector != "x"]
        variance = sp.Add(*[nu2 * D.expect(dv * dv) for nu2, _, dv in vectors[a.name]])
        gtan[a.name] = D.gaussian_atom(f"dG_{a.name}", variance)
    y = {s: forward(D.new_state[s]) for s in primary}
    m1 = sp.Add(*[D.expect(y[s] ** 2) for s in primary]) / len(primary)

    # backward: J^T y, maps in reverse order (a vector of a later map may depend on an earlier map's output)
    cot = {k: sp.Add(*[D.new_state[s].diff(D.atoms["u_" + k]) * y[s] for s in primary]) for k in gtan}
    z = {s: sp.Add(*[D.new_state[p].diff(state[s]) * y[p] for p in primary]) for s in cell.states}
    variances: dict = {}
    for a in reversed(cell.affines):
        k = a.name
        kappa = D.expect(cot[k].diff(gtan[k]))  # E[d a / d g]: the forward use of the same matrices
        for j, (nu2, v, dv) in enumerate(vectors[k]):
            var = nu2 * D.expect(cot[k] ** 2)
            symbol = sp.Symbol(f"V_eta_{k}_{j}")
            variances[symbol] = {"gaussian": var, "orthogonal": var - nu2**2 * kappa**2 * D.expect(dv * dv)}
            back = D.gaussian_atom(f"eta_{k}_{j}", symbol) + nu2 * kappa * dv
            for p in cell.states:
                z[p] += v.diff(state[p]) * back
            for other in gtan:
                if v.has(D.atoms["u_" + other]):
                    cot[other] += v.diff(D.atoms["u_" + other]) * back
    for t in derived:
        for s in primary:
            (slope_atom,) = [a for a in D.blocks if a.name == f"d_{t}_{s}"]
            z[s] += slope_atom * z[t]
    m2 = sp.Add(*[D.expect(z[s] ** 2) for s in primary]) / len(primary)
    used = (m1.free_symbols | m2.free_symbols) & set(D.keys.values())
    missing = sorted(k.name for k in used - set(mf.diagonal))
    if missing:
        raise ClosureError(f"cell {cell.name}: the Jacobian needs moments {missing} that the fixed point does not track")
    return tuple(primary), m1, m2, variances


def _refuse_elementwise_use(D: Derivation, cell: Cell, derived: str, atom: sp.Symbol) -> None:
    """A derived state used elementwise would correlate the previous-step block with the current step."""
    for s, e in D.new_state.items():
        if e.has(atom):
            raise ClosureError(
                f"{cell.path}: state {derived!r} is derived from another state at the same step and also enters "
                f"{s}' elementwise; the memory Jacobian does not cover that: use kind='full'"
            )


# ---------------------------------------------------------------- evaluation at a fixed point


def jacobian_moments(analysis, kind: str = "memory", weights: str = "gaussian", length: int | None = None) -> dict:
    """m1, m2, spectral variance m2 - m1^2 and backward time scale 1/|log m1| at ``analysis``'s fixed point
    (arrays over its grid; NaN where the fixed point failed). With ``length`` T, also the predicted growth of the
    squared gradient norm over T steps, m1^T, and of the relative spectral variance, T (m2/m1^2 - 1)."""
    import numpy as np

    from symmft.backend import get_xp, to_numpy
    from symmft.theory.compile import compile_expressions

    from symmft.cell.params import chrono_maps

    chrono = chrono_maps(analysis.cell, analysis.hyperparameters)
    if kind not in KINDS or weights not in WEIGHTS:
        derive_jacobian(analysis.cell, kind, weights, chrono)  # raises the error that names the choices
    mf = derive(analysis.cell, chrono=chrono)  # the moments are written in its keys and hyperparameters
    backend = "numpy" if analysis.backend == "mpmath" else analysis.backend
    key = (analysis.cell.file_hash, kind, weights, chrono, backend)
    if key not in _COMPILED:
        args = list(mf.diagonal) + list(mf.hyperparameters)

        def moments() -> list:  # derived only when the generated code is not on disk yet
            jm = derive_jacobian(analysis.cell, kind, weights, chrono)
            return [jm.m1, jm.m2]

        options = (kind, weights, tuple(sorted(chrono)))
        _COMPILED[key] = compile_expressions(
            "jacobian_moments", args, moments, backend, key=(analysis.cell.file_hash, options)
        )
    xp = get_xp(backend)
    values = [np.asarray(analysis.fixed_point[k.name], dtype=float) for k in mf.diagonal]
    values += [np.asarray(analysis.hyperparameters[s.name], dtype=float) for s in mf.hyperparameters]
    shape = np.broadcast_shapes(*(v.shape for v in values))
    with np.errstate(all="ignore"):
        result = _COMPILED[key](*(xp.asarray(v) for v in values))
        m1, m2 = (np.broadcast_to(to_numpy(v).astype(float), shape) for v in result)
        out = {
            "m1": m1,
            "m2": m2,
            "variance": m2 - m1**2,
            "xi_backward": np.where(m1 == 1, np.inf, 1 / np.abs(np.log(m1))),
        }
        if length is not None:
            out["gradient_growth"] = m1**length
            out["relative_spectral_variance"] = length * (m2 / m1**2 - 1)
    return out


_COMPILED = cache.memory("compiled Jacobian maps")
