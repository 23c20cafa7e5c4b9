"""Empirical Jacobian spectra of the finite-width random network: the measured side of dynamical isometry.

What: for one draw of the network a cell file describes, the state-to-state Jacobian J_t = ds_t/ds_{t-1}
(docs/theory.md §3) at stationarity, its moments m1 = tr(JJ^T)/N and m2 = tr((JJ^T)^2)/N with its squared singular
values, and the growth of tr(P_t P_t^T)/N for the product P_t = J_t ... J_1 along a trajectory and the product's
whole spectrum (:func:`jacobian_product_spectrum`: the spread criterion's measured side).

Which Jacobian: a state is *derived* when its new value depends, inside one step, on another state's new value
(LSTM: h' = o tanh(c')); the others are *primary* (:func:`primary_states`). ``kind="memory"`` (default) is
J = dp_t/dp_{t-1} over the primary states, each derived state at t-1 recomputed from the primary ones through its
same-step dependence with every other quantity of step t-1 held fixed (the LSTM's o_{t-1}: docs/theory.md §3's form).
``kind="full"`` treats every state as an independent input: J over the stacked state (S n x S n).

How: exact forward-mode differentiation. Every node of the traced graph carries a value and a tangent matrix
(n x K): an affine map sends tangents through its own matrices (M @ T), elementwise ops by the chain rule
(D(f'(u)) T). A step is one pass seeded at the state nodes; the memory Jacobian adds a pass over step t-1 seeded
at the primary states' new-value nodes. Only the graph names those intermediate nodes, so this module interprets
``cell.graph`` with the :class:`~symmft.network.simulate.Network`'s stored matrices and biases (the same ``ops`` as the
simulator: sigmoid(u) = (1 + tanh(u/2))/2) instead of calling ``cell.step``. Forming J costs O(n^3); the product
propagates K random unit probe vectors instead (O(n^2 K) per step), or the identity when ``probes=None``.

Independence: imports only ``simulate``, ``cell``, ``params`` (through simulate) and ``errors`` -- never the
mean-field code. Burn-in runs the simulator's own ``Network.step``; untied runs draw a fresh tied ``Network``
for every step whose Jacobian enters (the untied approximation), tied runs keep one.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import networkx as nx
import numpy as np

from symmft.cell.elementwise import DERIVATIVES, arguments, evaluate
from symmft.cell.trace import Cell, load_cell
from symmft.cell.trace import primary_states as _primary_states
from symmft.errors import CellDefinitionError, HyperparameterError, Status, integer_option
from symmft.network.simulate import Network

KINDS = ("memory", "full")

#: Each elementwise op once: its value from the argument u, and its derivative from (u, value).


def primary_states(cell: Cell | str | Path) -> tuple[str, ...]:
    """States whose new value depends on no other state's new value (:func:`symmft.cell.trace.primary_states`)."""
    return _primary_states(_cell(cell))


def jacobian(net: Network, x_prev: Any, x: Any, states: Mapping[str, Any], *, kind: str = "memory",
             net_prev: Network | None = None) -> np.ndarray:
    """J at step t, from the states s_{t-2} (each shape (n,)), the inputs x_{t-1} = ``x_prev`` and x_t = ``x``.

    Step t-1 runs on ``net_prev`` (default ``net``: tied) and gives the memory Jacobian its same-step dependence
    of derived on primary states; step t runs on ``net``. Rows and columns are the states of
    :func:`jacobian_states` stacked in that order, n each.
    """
    names, n = jacobian_states(net.cell, kind), net.width
    states = {s: np.asarray(states[s], dtype=float).reshape(n) for s in net.cell.states}
    x_prev, x = (np.asarray(v, dtype=float).reshape(net.input_dim) for v in (x_prev, x))
    seeds = _blocks(np.eye(len(names) * net.width), names, net.width)
    s1, tangents = _advance(net_prev or net, x_prev, states, {}, kind, reseed=seeds)
    _, tangents = _advance(net, x, s1, tangents, kind)
    return _stack(tangents, names, net.width, len(names) * net.width)


def jacobian_states(cell: Cell, kind: str = "memory") -> tuple[str, ...]:
    """The states J is taken over: the primary ones (``memory``) or all (``full``)."""
    if kind not in KINDS:
        raise HyperparameterError(f"option kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return primary_states(cell) if kind == "memory" else cell.states


def empirical_jacobian_moments(cell: Cell | str | Path, hyperparameters: Mapping[str, Any] | None = None, *,
                     width: int = 1000, burn_in: int = 200, tied: bool = False, weights: str = "gaussian",
                     seed: int = 0, kind: str = "memory", samples: int = 1) -> dict[str, Any]:
    """Moments of JJ^T at stationarity, from ``samples`` independent runs (each its own network and inputs).

    Each run starts at the zero state, runs ``burn_in`` steps with inputs x = sqrt(q_x) z, z ~ N(0, I_m), and forms
    J at step burn_in + 1. Returns m1 = tr(JJ^T)/N, m2 = tr((JJ^T)^2)/N, ``variance`` = m2 - m1^2 and
    ``ratio`` = m2/m1^2 (means over runs), ``*_stderr`` (standard errors over runs; None when samples = 1),
    ``*_samples`` (per run), ``singular_values_squared`` (every run's, pooled and sorted), N, ``states``, and
    the options.
    """
    cell = _cell(cell)
    names = jacobian_states(cell, kind)
    samples, burn_in = integer_option("samples", samples), integer_option("burn_in", burn_in)
    rows, spectra = [], []
    for run in np.random.SeedSequence(integer_option("seed", seed, 0)).spawn(samples):
        nets, x, states = _stationary(cell, hyperparameters, width, burn_in, tied, weights, run)
        net_prev, net, x_prev, x_t = next(nets), next(nets), next(x), next(x)
        J = jacobian(net, x_prev, x_t, states, kind=kind, net_prev=net_prev)
        s2 = np.sort(np.linalg.svd(J, compute_uv=False) ** 2)
        rows.append((s2.mean(), (s2 * s2).mean(), s2.var(), (s2 * s2).mean() / s2.mean() ** 2))
        spectra.append(s2)
    out: dict[str, Any] = {}
    for key, column in zip(("m1", "m2", "variance", "ratio"), np.array(rows).T):
        out[key] = float(column.mean())
        out[f"{key}_stderr"] = float(column.std(ddof=1) / math.sqrt(samples)) if samples > 1 else None
        out[f"{key}_samples"] = column
    return {**out, "singular_values_squared": np.sort(np.concatenate(spectra)), "N": len(names) * width,
            "states": names, "width": width, "burn_in": burn_in, "tied": tied, "weights": weights, "seed": seed,
            "kind": kind, "samples": samples}


def jacobian_product_growth(cell: Cell | str | Path, hyperparameters: Mapping[str, Any] | None = None, *,
                            width: int = 1000, steps: int = 50, burn_in: int = 200, tied: bool = False,
                            weights: str = "gaussian", seed: int = 0, kind: str = "memory",
                            probes: int | None = 64) -> dict[str, Any]:
    """log(tr(P_t P_t^T)/N) for t = 1..steps, P_t = J_t ... J_1 along one trajectory at stationarity.

    ``probes`` K: propagate K independent uniform unit vectors v (E vv^T = I/N), so mean_k |P v_k|^2 estimates
    tr(P P^T)/N without bias (its log is biased low by about half its relative variance, which grows with t as
    P's spectrum spreads); ``probes=None`` propagates the identity (exact, O(n^3) per step). Tangents are
    renormalized every step and the scale accumulated in logs, so long products neither overflow nor underflow.
    Returns ``log_norm2`` (length ``steps``), ``slope`` and ``intercept`` (least squares over t; theory: slope =
    log m1), N, ``states`` and the options.
    """
    cell = _cell(cell)
    names = jacobian_states(cell, kind)
    steps, burn_in = integer_option("steps", steps), integer_option("burn_in", burn_in)
    N = len(names) * width
    run, probe_rng = np.random.SeedSequence(integer_option("seed", seed, 0)).spawn(2)
    if probes is None:
        V = np.eye(N)
    else:
        V = np.random.default_rng(probe_rng).standard_normal((N, integer_option("probes", probes)))
        V /= np.linalg.norm(V, axis=0)
    nets, x, states = _stationary(cell, hyperparameters, width, burn_in, tied, weights, run)
    states, tangents = _advance(next(nets), next(x), states, {}, kind, reseed=_blocks(V, names, width))
    log_scale, growth = 0.0, []
    for _ in range(steps):
        states, tangents = _advance(next(nets), next(x), states, tangents, kind)
        P = _stack(tangents, names, width, V.shape[1])
        norm2 = float(np.sum(P * P)) / (N if probes is None else V.shape[1])
        growth.append(log_scale + math.log(norm2) if norm2 > 0 else -math.inf)
        if norm2 > 0:  # one common factor for every tangent keeps the map linear
            c = 1.0 / math.sqrt(norm2)
            tangents, log_scale = {s: T * c for s, T in tangents.items() if T is not None}, growth[-1]
    log_norm2 = np.array(growth)
    t = np.arange(1, steps + 1)
    slope, intercept = np.polyfit(t, log_norm2, 1) if steps > 1 and np.all(np.isfinite(log_norm2)) else (np.nan,) * 2
    return {"log_norm2": log_norm2, "slope": float(slope), "intercept": float(intercept), "N": N, "states": names,
            "width": width, "steps": steps, "burn_in": burn_in, "tied": tied, "weights": weights, "seed": seed,
            "kind": kind, "probes": probes, "method": "exact" if probes is None else "probes"}


def jacobian_product_spectrum(cell: Cell | str | Path, hyperparameters: Mapping[str, Any] | None = None, *,
                              width: int = 1000, steps: int = 20, tied: bool = True, weights: str = "gaussian",
                              seed: int = 0, kind: str = "memory", input_dim: int | None = None,
                              record: tuple[int, ...] = ()) -> dict[str, Any]:
    """The squared singular values of the product P = J_{T+1} ... J_2 of T = ``steps`` Jacobians along one
    sequence started at the zero state, formed exactly (identity tangents, O(n^3) per step).

    P is the product :func:`jacobian_product_growth` follows with ``burn_in=1`` and
    :func:`symmft.theory.tangent.tied_gain` predicts: a perturbation of the primary states after step 1, carried
    to step T + 1 (J_{t+1} acts on the state of step t, t = 1..T). The spread criterion (docs/criteria.md) judges
    the relative variance of its squared singular values, m2/m1^2 - 1 with m_k = tr((P^T P)^k)/N.

    The tangents are rescaled by one common factor per step (the map is linear) and the scale is accumulated in
    logs, so long products neither overflow nor underflow. Returns ``log_m1`` (log tr(P^T P)/N), ``m1``, ``m2``,
    ``spread`` = m2/m1^2 - 1, ``log_spread_variance`` (the variance of log sigma^2 over the spectrum: the
    spectrum's width on a log scale, which keeps growing after m2/m1^2 saturates on a few large singular
    values), ``spread_diagonal`` (the part of m2/m1^2 - 1 carried by the diagonal of P P^T: the relative
    variance over units of (P P^T)_ii, each unit's own squared gain; m2 = mean_i (P P^T)_ii^2 + the off-diagonal
    sum / N, so the rest is the units' cross-correlations), ``singular_values_squared`` (sorted, divided by their
    mean), ``status`` (NAN where the product
    overflowed or vanished; the numbers are then NaN), ``spread_at`` ({t: m2/m1^2 - 1 of the product of the first
    t Jacobians} for each t in ``record``, a growth curve from one run), N and the options. ``input_dim``: the
    network's input size (default: ``width``).
    """
    cell = _cell(cell)
    names = jacobian_states(cell, kind)
    steps = integer_option("steps", steps)
    N = len(names) * width
    run, _ = np.random.SeedSequence(integer_option("seed", seed, 0)).spawn(2)  # jacobian_product_growth's network and inputs
    nets, x, states = _stationary(cell, hyperparameters, width, 1, tied, weights, run, input_dim)
    states, tangents = _advance(next(nets), next(x), states, {}, kind, reseed=_blocks(np.eye(N), names, width))
    log_scale = 0.0
    options = {"N": N, "states": names, "width": width, "steps": steps, "tied": tied, "weights": weights,
               "seed": seed, "kind": kind, "input_dim": width if input_dim is None else input_dim}
    record = {integer_option("record", t) for t in record}
    spread_at = {}
    for step in range(1, steps + 1):
        with np.errstate(all="ignore"):  # a diverging network becomes a status
            states, tangents = _advance(next(nets), next(x), states, tangents, kind)
            norm2 = float(sum(np.sum(tangents[s] ** 2) for s in names if tangents.get(s) is not None)) / N
        if not (norm2 > 0 and math.isfinite(norm2)):
            return {"status": Status.NAN, **{k: math.nan for k in ("log_m1", "m1", "m2", "spread",
                                                                    "log_spread_variance", "spread_diagonal")},
                    "spread_at": spread_at, **options}
        c = 1.0 / math.sqrt(norm2)  # one common factor for every tangent keeps the map linear
        tangents = {s: T * c for s, T in tangents.items() if T is not None}
        log_scale += math.log(norm2)
        if step in record and step < steps:
            P = _stack(tangents, names, width, N)
            gram = P.T @ P
            spread_at[step] = N * float(np.sum(gram * gram)) / float(np.trace(gram)) ** 2 - 1
    P = _stack(tangents, names, width, N)  # rows: the units at step T + 1; columns: the perturbed units at step 1
    s2 = np.sort(np.linalg.svd(P, compute_uv=False) ** 2)
    mean = s2.mean()  # 1 up to rounding: the last rescaling made tr(P^T P)/N = 1 over the primary states
    ratio = float(np.mean(s2 * s2) / mean ** 2)
    # (P P^T)_ii: the variance of unit i's tangent over isotropic probes, the single-site part of m2
    per_unit = np.einsum("ik,ik->i", P, P)
    with np.errstate(divide="ignore"):
        log_s2 = np.log(s2 / mean)
    return {"log_m1": log_scale + math.log(mean), "m1": math.exp(log_scale) * mean,
            "m2": math.exp(2 * log_scale) * mean ** 2 * ratio, "spread": ratio - 1,
            "log_spread_variance": float(np.var(log_s2)) if np.all(np.isfinite(log_s2)) else math.inf,
            "spread_diagonal": float(np.mean(per_unit ** 2) / np.mean(per_unit) ** 2 - 1),
            "singular_values_squared": s2 / mean, "status": Status.OK, "spread_at": {**spread_at, steps: ratio - 1},
            **options}


# ---------------------------------------------------------------- trajectory


def _stationary(cell: Cell, hp, width: int, burn_in: int, tied: bool, weights: str, run: np.random.SeedSequence,
                input_dim: int | None = None):
    """Run burn_in - 1 simulator steps from zero; return (networks for later steps, inputs for later steps, states).

    Tied: one network throughout. Untied: the simulator's untied network (exact in law, cheap) for the burn-in,
    then a fresh tied draw for every step that is differentiated.
    """
    weight_seed, input_seed = run.spawn(2)
    rng, input_rng = np.random.default_rng(weight_seed), np.random.default_rng(input_seed)
    net = Network(cell, hp, width=width, input_dim=input_dim, weights=weights, tied=tied, rng=rng)
    scale = math.sqrt(net.hyperparameters["q_x"])

    def inputs():
        while True:
            yield scale * input_rng.standard_normal(net.input_dim)

    def networks():
        while True:
            yield net if tied else Network(cell, hp, width=width, input_dim=input_dim, weights=weights, tied=True,
                                           rng=rng)

    x = inputs()
    states = {s: np.zeros((width, 1)) for s in cell.states}
    for _ in range(burn_in - 1):
        states = net.step(next(x)[:, None], states)
    return networks(), x, {s: np.array(v[:, 0]) for s, v in states.items()}


def _advance(net: Network, x: np.ndarray, states: Mapping[str, np.ndarray], tangents: Mapping[str, Any],
             kind: str, reseed: Mapping[str, np.ndarray] | None = None) -> tuple[dict, dict]:
    """One step of (states, tangents); a missing or None tangent is zero.

    ``reseed`` replaces the new tangents of the states it names (the start of a product). Memory kind: a derived
    state's new tangent comes from a second pass seeded only at the primary states' new values, so the other
    quantities of this step (the LSTM's o) are held fixed.
    """
    cell, n = net.cell, net.width
    seeds = {_state_node(cell, s): T for s, T in tangents.items() if T is not None}
    values, tan = _forward(net, x, states, seeds)
    new = {s: np.broadcast_to(values[cell.outputs[s]], (n,)) for s in cell.states}
    out = {s: tan.get(cell.outputs[s]) for s in cell.states}
    out.update(reseed or {})
    if kind == "memory":
        primary = primary_states(cell)
        derived = [s for s in cell.states if s not in primary]
        if derived:
            seeds = {cell.outputs[p]: out[p] for p in primary if out[p] is not None}
            _, tan = _forward(net, x, states, seeds, values)
            out.update({s: tan.get(cell.outputs[s]) for s in derived})
    return new, out


def _forward(net: Network, x, states, seeds: Mapping[Any, np.ndarray], values: dict | None = None):
    """Values and tangents of every graph node; tangents start at ``seeds`` (node -> n x K), zero elsewhere."""
    cell, g = net.cell, net.cell.graph
    fresh = values is None
    values = {} if fresh else values
    tan: dict[Any, np.ndarray] = {}
    for node in _order(cell):
        attrs, args = g.nodes[node], arguments(g, node)
        op, a = attrs["op"], [values[p] for p in args]  # topological order: arguments are done
        if fresh:
            values[node] = _value(net, node, attrs, a, x, states)
        ta = [tan.get(p) for p in args]
        if node in seeds:
            tan[node] = seeds[node]
        elif op == "affine":
            amap = cell.affine(attrs["name"])
            terms = [net.matrices[amap.name, i.vector] @ tan[i.node] for i in amap.inputs if i.node in tan]
            if terms:
                tan[node] = sum(terms[1:], terms[0])
        elif op in ("add", "sub") and any(t is not None for t in ta):
            t0 = ta[0] if ta[0] is not None else 0.0
            t1 = ta[1] if ta[1] is not None else 0.0
            tan[node] = t0 + t1 if op == "add" else t0 - t1
        elif op == "mul" and any(t is not None for t in ta):
            terms = [_diag(a[1 - k], ta[k]) for k in (0, 1) if ta[k] is not None]
            tan[node] = sum(terms[1:], terms[0])
        elif op in DERIVATIVES and ta[0] is not None:
            tan[node] = _diag(DERIVATIVES[op](a[0], values[node]), ta[0])
        elif op == "output" and ta[0] is not None:
            tan[node] = ta[0]
    return values, tan


def _value(net: Network, node, attrs: dict, a: list, x, states):
    op = attrs["op"]
    if op == "input":
        return x
    if op == "state":
        return states[attrs["name"]]
    if op == "const":
        return attrs["value"]
    if op == "affine":
        amap = net.cell.affine(attrs["name"])
        u = net.biases[amap.name][:, 0]
        for inp, v in zip(amap.inputs, a):
            u = u + net.matrices[amap.name, inp.vector] @ v
        return u
    value = evaluate(op, a)
    if value is not None:
        return value
    raise CellDefinitionError(f"{net.cell.where(node)}: spectrum cannot differentiate graph operation {op!r}")


# ---------------------------------------------------------------- graph helpers


def _order(cell: Cell) -> list:
    return list(nx.topological_sort(cell.graph))


def _state_node(cell: Cell, state: str):
    return next(n for n, d in cell.graph.nodes(data=True) if d["op"] == "state" and d["name"] == state)


def _diag(d, T: np.ndarray) -> np.ndarray:
    """D(d) T for a vector d (or a scalar)."""
    return d[:, None] * T if np.ndim(d) == 1 else d * T


def _blocks(V: np.ndarray, names: tuple[str, ...], n: int) -> dict[str, np.ndarray]:
    return {s: V[k * n:(k + 1) * n] for k, s in enumerate(names)}


def _stack(tangents: Mapping[str, Any], names: tuple[str, ...], n: int, K: int) -> np.ndarray:
    return np.vstack([tangents[s] if tangents.get(s) is not None else np.zeros((n, K)) for s in names])


def _cell(cell: Cell | str | Path) -> Cell:
    return cell if isinstance(cell, Cell) else load_cell(cell)

