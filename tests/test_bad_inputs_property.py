"""Property: any small cell file from the ``ops`` grammar (forbidden constructs included) with any hyperparameters
gets a right answer or a clean refusal.

Hypothesis writes cell files: one or two states, each updated by a template over gates
``ops.<nonlinearity>(ops.affine(name, x, state))`` (every nonlinearity acts on an affine output, so the Gaussian
closure is exact and the theory must match the untied network), sometimes with one forbidden construct spliced
in. For each file and random hyperparameters (some out of range) one of these must hold:

- loading or analysis raises a :class:`~symmft.errors.SymmftError` (a forbidden construct always does);
- the status is not OK (its values are NaN, never a traceback);
- the status is OK, every fixed-point value and lambda is finite (c* too, unless Q* = 0 where it is undefined),
  and, where the map contracts fast enough for a short run, Q* matches an untied simulation started at Q*.

Default run: ``DEFAULT_EXAMPLES`` examples over a reduced grammar (few distinct cells, since each new cell costs a
sympy derivation of ~1 s); ``-m slow`` runs ``SLOW_EXAMPLES`` over the full grammar. What it found is in
docs/errors.md.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from symmft import load_cell, CellDefinitionError, SymmftError, Status, simulate, analyze
from symmft.theory.analysis import ZERO_SECOND_MOMENT

from tolerances import FINITE_WIDTH_BIAS, PROPERTY_SIMULATION_RELATIVE, SIMULATION_SIGMAS

DEFAULT_EXAMPLES = 200
SLOW_EXAMPLES = 1500

#: New value of a state s from gates g1 = act1(affine a), g2 = act2(affine b) and the other state o.
TEMPLATES = (
    "{g1}",
    "{g1} * {s} + {g2}",
    "{g1} * {s} + (1 - {g1}) * {g2}",
    "0.5 * {s} + {g2}",
    "{g1} * {g2}",
    "{g1} * {o} - 0.5 * {g2}",
)
#: Forbidden constructs, each as a statement or expression spliced into step; every one must be refused.
FORBIDDEN = (
    ("statement", "if {g1} > 0:\n        pass"),
    ("expression", "abs({g1})"),
    ("expression", "{g1} / 2"),
    ("expression", "{g1} ** 2"),
    ("expression", "ops.tanh(ops.affine(x, {s}))"),
    ("expression", "ops.relu({g1})"),
    ("expression", "__import__('math').tanh({g1})"),
    ("expression", "{g1} @ {g2}"),
    ("expression", "ops.tanh(x)"),
    ("state", 'STATE = ("{s}")'),
)
NONLINEARITIES = ("sigmoid", "tanh", "erf")


@st.composite
def cell_sources(draw, full: bool):
    """(source text, forbidden: bool)."""
    states = ("h", "c")[: draw(st.integers(1, 2))]
    acts = NONLINEARITIES if full else ("sigmoid", "tanh")
    templates = TEMPLATES if full else TEMPLATES[:3]
    lines, new = [], []
    for k, s in enumerate(states):
        g1 = f"ops.{draw(st.sampled_from(acts))}(ops.affine('a{k}', x, {s}))"
        g2 = f"ops.{draw(st.sampled_from(acts))}(ops.affine('b{k}', x, {s}))"
        other = states[(k + 1) % len(states)]
        lines.append(f"    g1_{k} = {g1}\n    g2_{k} = {g2}\n")
        template = draw(st.sampled_from(templates if len(states) == 2 else [t for t in templates if "{o}" not in t]))
        new.append(template.format(g1=f"g1_{k}", g2=f"g2_{k}", s=s, o=other))
    forbidden = draw(st.booleans()) and draw(st.sampled_from(FORBIDDEN))
    state_line = f"STATE = ({', '.join(repr(s) for s in states)},)"
    if forbidden:
        where, text = forbidden
        text = text.format(g1="g1_0", g2="g2_0", s=states[0])
        if where == "statement":
            lines.append(f"    {text}\n")
        elif where == "expression":
            new[0] = f"{new[0]} + {text}" if text.startswith(("abs", "__", "ops")) else text
        elif len(states) == 1:
            state_line = text
        else:
            forbidden = False
    source = (f"{state_line}\n\n\ndef step(x, {', '.join(states)}, ops):\n" + "".join(lines)
              + f"    return {', '.join(new)}\n")
    return source, bool(forbidden)


#: Hyperparameter draws, by prefix; ranges reach past the valid domain (negative variances, |c_x| > 1).
VALUES = {
    "sigma2_": st.floats(-0.2, 3.0), "nu2_": st.floats(-0.2, 3.0), "mu_": st.floats(-4.0, 6.0),
    "rho2_": st.floats(0.0, 1.0), "q_x": st.floats(0.0, 2.0), "c_x": st.floats(-1.1, 1.1),
}
#: The slow run reaches further: saturated gates (|mu| up to 40: past float64's resolution of 1 - sigmoid) and
#: strongly chaotic or divergent recurrences (variances up to 8).
WIDE = {**VALUES, "sigma2_": st.floats(-0.2, 8.0), "nu2_": st.floats(-0.2, 8.0), "mu_": st.floats(-40.0, 40.0)}


def _write(tmp_path_factory, source: str):
    folder = tmp_path_factory.getbasetemp() / "property_cells"
    folder.mkdir(exist_ok=True)
    path = folder / f"cell_{hashlib.sha256(source.encode()).hexdigest()[:16]}.py"
    if not path.exists():
        path.write_text(source)
    return path


def _check(tmp_path_factory, source: str, forbidden: bool, data, values=VALUES) -> None:
    path = _write(tmp_path_factory, source)
    try:
        cell = load_cell(path)
    except CellDefinitionError as e:
        assert str(e).startswith(str(path)) and "\n" not in str(e), str(e)
        event("cell file refused" + (" (forbidden construct)" if forbidden else ""))
        return
    assert not forbidden, f"a forbidden construct was accepted:\n{source}"
    names = [n for n in cell.hyperparameter_names() if not n.startswith("beta_")] + ["q_x", "c_x"]
    chosen = data.draw(st.lists(st.sampled_from(names), unique=True, max_size=4), label="names")
    h = {n: data.draw(next(v for k, v in values.items() if n.startswith(k)), label=n) for n in chosen}
    try:
        a = analyze(cell, h)
    except SymmftError as e:  # out-of-range values: a clean one-line refusal naming the parameter
        assert any(n in str(e) for n in h), str(e)
        event("hyperparameter refused")
        return
    status = Status(int(a.status))
    event(f"status {status.name}")
    if status != Status.OK:
        return
    for k, v in a.fixed_point.items():
        assert math.isfinite(float(v)), (k, source, h)
    assert math.isfinite(float(a.lambda_)) and abs(float(a.diagonal_lambda)) < 1, (source, h)
    for s in cell.states:
        q = float(a.fixed_point[f"Q_{s}"])
        assert math.isfinite(float(a.correlation[s])) or q <= ZERO_SECOND_MOMENT, (s, source, h)
    if abs(float(a.diagonal_lambda)) < 0.8 and all(float(a.fixed_point[f"Q_{s}"]) < 1e3 for s in cell.states):
        _compare_with_simulation(cell, h, a, source)
        event("Q* compared with the untied simulation")


def _compare_with_simulation(cell, h, a, source, width=256, steps=40, burn_in=10, blocks=6):
    """Q* against an untied network started at Q* (zero-mean Gaussian states), averaged after a short burn-in in
    which the means settle (rate |diagonal lambda| < 0.8: 0.8^10 ~ 0.1 of an O(M) gap, then averaged away)."""
    initial = {s: (max(float(a.fixed_point[f"Q_{s}"]), 0.0), 1.0) for s in cell.states}
    sim = simulate(cell, h, width=width, steps=steps, batch=4, tied=False, seed=3, initial=initial)
    for s in cell.states:
        series = np.asarray(sim.states[s].second_moment[burn_in:], dtype=float)
        means = np.array([b.mean() for b in np.array_split(series, blocks)])
        q_sim, q_se = float(series.mean()), float(means.std(ddof=1) / np.sqrt(blocks))
        q_th = float(a.fixed_point[f"Q_{s}"])
        allowed = (SIMULATION_SIGMAS * q_se + (FINITE_WIDTH_BIAS / width + PROPERTY_SIMULATION_RELATIVE) * q_th
                   + 1e-6)
        assert abs(q_sim - q_th) <= allowed, (s, q_th, q_sim, q_se, source, h)


_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
                 derandomize=True, print_blob=True)


@settings(max_examples=DEFAULT_EXAMPLES, **_SETTINGS)
@given(cell=cell_sources(full=False), data=st.data())
def test_small_cell_files_get_a_right_answer_or_a_clean_refusal(tmp_path_factory, cell, data):
    _check(tmp_path_factory, *cell, data)


@pytest.mark.slow
@settings(max_examples=SLOW_EXAMPLES, **_SETTINGS)
@given(cell=cell_sources(full=True), data=st.data())
def test_cell_files_of_the_full_grammar_get_a_right_answer_or_a_clean_refusal(tmp_path_factory, cell, data):
    _check(tmp_path_factory, *cell, data, WIDE)
