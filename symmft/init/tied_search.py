"""Critical initialization whose criteria hold for the tied network, the one people train (docs/criteria.md,
"On the tied network"; docs/tied.md).

What: :func:`symmft.init.search.find_critical` searches the untied mean-field maps -- deterministic, vectorized,
milliseconds a point. The tied network differs where memory is long (benchmarks/RESULTS.md §3, §7), and a tied
evaluation is a Monte Carlo run of seconds to minutes, so a search on the tied theory alone is out of reach.
:func:`find_critical_tied` starts from the untied rule and corrects it on the tied theory with a few tied
evaluations. Stage: untied rule -> tied rule (:class:`~symmft.init.rule.CriticalResult` with ``tied`` set), used
by ``symmft critical --theory tied``.

How: every tied evaluation is :func:`symmft.init.tied_check.tied_criteria` with one seed, so all of them share
their random numbers (common random numbers): the judged quantities are then smooth functions of the
hyperparameters and a secant converges although each value carries Monte Carlo error.

1. Judge the untied rule. If every criterion holds: status "holds", the hyperparameters unchanged.
2. A state second moment above its bound is corrected along the *write* gate's bias mean (LSTM mu_i: the gate
   scaling what enters the memory; Q of the memory ~ E[i^2]): a secant on log max_s Q_s toward
   log(Q_max / safety), accepted below Q_max / sqrt(safety).
3. A spread above its bound along the *write* gate's bias mean too (docs/criteria.md, "The correction"): the
   tied network's spread is the units' cross-correlations built up by the recurrent coupling reused every step,
   ~ (T b)^2 for a coupling b, and b ~ E[i] through the write gate (benchmarks/RESULTS.md, "Which knob corrects
   the tied spread": log spread falls 1.9 per unit of mu_i at the T = 200 LSTM rule, 1.2-1.4 at T = 1000, and
   does not move with mu_f; of the knobs that lower it, mu_i costs the other criteria least). A secant on log
   spread toward log(max_spread / safety), accepted within a factor sqrt(safety) of it (two-sided: the least
   move that holds with room); its first step uses the untied criterion's slope (the free sum ~ T b^2 falls with
   the same b). A cell without a free write gate: the free parameter other than the memory knob the untied
   spread is most sensitive to (a variance moves by factors).
4. A mean gain outside its range, or a forward memory xi < T, along the *memory* gate's bias mean (LSTM mu_f,
   GRU mu_z; a cell without one: the free parameter the untied m1 is most sensitive to; a longer memory raises
   both m1 and xi): a secant on log m1 toward the untied search's target m1* = exp(-1/(2 safety T)), accepted
   within 1/(2 safety T) of it. Its first step uses the untied slope.
5. Steps 2-4 move each other's quantities: they alternate until every criterion holds or ``max_evaluations``
   tied evaluations are spent.

Anything else -- a failed tied status, the spread failing with no knob to move it, xi failing with m1 at its
target, a knob at the edge of its box, the budget spent -- raises :class:`~symmft.init.search.InfeasibleError`
naming the best point, the failing criteria with their tied values and standard errors, and what to change. The
result's margins are those of the untied search at the untied point: they are not recomputed on the tied theory
(each would need tied evaluations), and the rule's notes say so when the point moved.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from symmft.cell.trace import Cell, load_cell
from symmft.errors import HyperparameterError
from symmft.init.evaluate import evaluate_points, gate_roles
from symmft.init.rule import CriticalResult
from symmft.init.search import InfeasibleError, default_bounds, find_critical
from symmft.init.tied_check import SPREAD_NETWORKS, SPREAD_WIDTH, UNCERTAIN, tied_criteria

#: Tied evaluations a correction may spend (each a transient of T steps over the population: O(P T^2)).
MAX_EVALUATIONS = 8
#: Untied finite-difference step for a knob's first secant step (a bias mean: the slope is smooth on this scale).
SLOPE_STEP = 1e-3


def find_critical_tied(cell: Cell | str, length: int, *, rule: CriticalResult | dict | None = None,
                       input_dim: int | None = None, weights: str = "orthogonal", population: int = 4000,
                       seed: int = 0, max_evaluations: int = MAX_EVALUATIONS, safety: float = 2.0,
                       bounds: dict | None = None, spread_width: int = SPREAD_WIDTH,
                       spread_networks: int = SPREAD_NETWORKS, **search) -> CriticalResult:
    """A rule for sequences of ``length`` T whose criteria hold on the tied theory (module docstring).

    ``rule``: the untied rule to start from, or its JSON (:func:`~symmft.init.rule.read_rule`); default
    ``find_critical(cell, length, weights=weights, safety=safety, **search)``; a given rule keeps its own
    weights. ``bounds`` {name: (lo, hi)}: the search box, of the untied search and of the correction's knobs
    (default: the rule's search box). ``input_dim``: the layer's input size m (None: infinite). ``population`` and
    ``seed``: the tied theory's Monte Carlo population (standard errors ~ 1/sqrt(population)) and its one seed.
    Returns the rule with ``tied`` set ({"status": "holds" | "corrected", "values", "standard_error",
    "judged_on", "uncertain", "untied_hyperparameters", "corrections", "evaluations", ...}) and ``predicted``
    the tied values; raises :class:`InfeasibleError` when no corrected point is found.
    """
    start = time.perf_counter()
    cell = cell if isinstance(cell, Cell) else load_cell(cell)
    if isinstance(max_evaluations, bool) or not isinstance(max_evaluations, int) or max_evaluations < 1:
        raise HyperparameterError(f"max_evaluations must be an integer >= 1, got {max_evaluations!r}")
    if isinstance(rule, dict):
        rule = CriticalResult.from_json(rule, cell)
    if rule is None:
        rule = find_critical(cell, length, weights=weights, safety=safety, bounds=bounds, **search)
    elif rule.cell.file_hash != cell.file_hash or rule.length != length:
        raise HyperparameterError(f"the starting rule is for cell {rule.cell.name}, T = {rule.length}; "
                                  f"asked for {cell.name}, T = {length}")
    problem = _Correction(cell, rule, input_dim, rule.weights, population, seed, max_evaluations, safety, bounds or {},
                          spread_width, spread_networks)
    point, verdict = problem.run()
    moved = {n: [rule.hyperparameters[n], point[n]] for n in point if point[n] != rule.hyperparameters[n]}
    tied = {"status": "corrected" if moved else "holds", "judged_on": verdict["judged_on"],
            "settled": verdict["settled"],
            "values": verdict["values"], "standard_error": verdict["standard_error"],
            "uncertain": verdict["uncertain"], "tied_status": verdict["status"],
            "untied_hyperparameters": dict(rule.hyperparameters), "untied_prediction": dict(rule.predicted),
            "corrections": moved, "evaluations": problem.history, "input_dim": input_dim,
            "population": verdict["population"], "seed": seed, "spread_networks": verdict["spread_networks"],
            "seconds": round(time.perf_counter() - start, 2)}
    notes = [n for n in rule.notes if not n.startswith("predictions assume weights redrawn")]  # answered here
    if moved:
        moves = ", ".join(f"{n}: {a:.4g} -> {b:.4g}" for n, (a, b) in moved.items())
        notes.append(f"corrected on the tied theory ({moves}); the margins are those of the untied search at the "
                     "untied point, not recomputed")
    if verdict["uncertain"]:
        notes.append(f"within {UNCERTAIN:g} Monte Carlo standard errors of its threshold on the tied theory: "
                     f"{', '.join(verdict['uncertain'])}; a larger --population decides it")
    return dataclasses.replace(rule, hyperparameters=point, predicted=verdict["values"], notes=tuple(notes), tied=tied)


@dataclasses.dataclass
class _Correction:
    """The alternating 1-D corrections of the module docstring; ``history`` records every tied evaluation."""

    cell: Cell
    rule: CriticalResult
    input_dim: int | None
    weights: str
    population: int
    seed: int
    budget: int
    safety: float
    bounds: dict
    spread_width: int
    spread_networks: int
    history: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        roles, free = gate_roles(self.cell), self.rule.free
        self.criteria, T = self.rule.criteria, self.rule.length
        default_target = math.exp(-self.criteria.m1_tolerance / (2 * self.safety))
        self.m1_target = float(self.rule.search.get("m1_target", default_target))
        # only parameters the rule left free move: a value the user fixed stays fixed
        memory = [f"mu_{k}" for k in roles["memory"] if f"mu_{k}" in free]
        self.m1_knob = memory[0] if memory else self._most_sensitive(free)
        self.q_knob = next((f"mu_{k}" for k in roles["write"] if f"mu_{k}" in free), None)
        self.write_gates = [f"mu_{k}" for k in roles["write"]]
        others = [n for n in free if n != self.m1_knob]
        self.spread_knob = self.q_knob or (self._most_sensitive(others, "spread") if others else None)
        self.knobs = list(dict.fromkeys(n for n in (self.m1_knob, self.q_knob, self.spread_knob) if n))
        names = self.knobs
        searched = {n: tuple(b) for n, b in self.rule.search.get("bounds", {}).items()}
        self.box = {**default_bounds(self.cell, T, names), **searched,
                    **{n: tuple(map(float, b)) for n, b in self.bounds.items()}}

    def judge(self, point: dict) -> dict:
        if len(self.history) >= self.budget:
            raise _BudgetSpent
        v = tied_criteria(self.cell, point, self.rule.length, self.criteria, weights=self.weights,
                          input_dim=self.input_dim, population=self.population, seed=self.seed,
                          spread_width=self.spread_width, spread_networks=self.spread_networks)
        self.history.append({"point": {n: point[n] for n in self.knobs},
                             "m1": v["values"]["m1"], "xi": v["values"]["xi"], "spread": v["values"]["spread"],
                             "Q_max": max(x for k, x in v["values"].items() if k.startswith("Q_")),
                             "fails": v["fails"], "tied_status": v["status"]})
        return v

    def run(self) -> tuple[dict, dict]:
        point = dict(self.rule.hyperparameters)
        verdict = self.judge(point)
        best = (point, verdict)
        try:
            for _ in range(self.budget):
                fails = verdict["fails"]
                if not fails:
                    return point, verdict
                if any(f.startswith("status:") for f in fails) or "signal" in fails:
                    break
                before = point
                if "second_moment" in fails:
                    if self.q_knob is None:
                        break
                    point, verdict = self._secant(point, verdict, self.q_knob, "Q", _log_q_max,
                                                  math.log(self.criteria.max_second_moment / self.safety),
                                                  lambda g: g <= 0.5 * math.log(self.safety))
                elif "spread" in fails:
                    if self.spread_knob is None or not math.isfinite(verdict["values"]["spread"]):
                        break  # nothing to move, or a network's product overflowed: refused
                    # two-sided, unlike Q's: the least move from the untied rule's optimum that holds with room
                    point, verdict = self._secant(point, verdict, self.spread_knob, "spread", _log_spread,
                                                  math.log(self.criteria.max_spread / self.safety),
                                                  lambda g: abs(g) <= 0.5 * math.log(self.safety))
                elif {"m1", "xi"} & set(fails) and self.m1_knob is not None:  # a longer memory raises both
                    tolerance = self.criteria.m1_tolerance / (2 * self.safety)
                    point, verdict = self._secant(point, verdict, self.m1_knob, "m1", _log_m1, math.log(self.m1_target),
                                                  lambda g: abs(g) <= tolerance)
                if self._violation(verdict) < self._violation(best[1]):
                    best = (point, verdict)
                if point is before:  # no move possible (a knob at its box edge, or its first trial failed)
                    break
        except _BudgetSpent:
            pass
        if not verdict["fails"]:
            return point, verdict
        raise InfeasibleError(self._refusal(*best))

    def _secant(self, point: dict, verdict: dict, knob: str, quantity: str, value, target: float,
                accept) -> tuple[dict, dict]:
        """Move ``knob`` until ``accept(value - target)``, the box edge, or a failed evaluation; first step from
        the untied slope of the same ``quantity`` ("m1", "Q" or "spread"), then secant steps on the tied values.
        A variance (nu2_*, sigma2_*, rho2_*) moves by factors, along its log: the judged quantities go like powers
        of it (the spread ~ nu2_g, benchmarks/RESULTS.md), so their logs are near linear there, and a step cannot
        overshoot to 0, which would cut the coupling it scales (measured on the JANET user cell, tests)."""
        lo, hi = self.box[knob]
        by_factor = knob.startswith(("nu2_", "sigma2_", "rho2_")) and point[knob] > 0
        to_y = (lambda p: math.log(p) if p > 0 else -math.inf) if by_factor else float
        y_lo, y_hi = to_y(lo), to_y(hi)
        y0, g0 = to_y(point[knob]), value(verdict) - target
        slope = self._untied_slope(point, knob, quantity) * (point[knob] if by_factor else 1.0)  # d/dy
        if not (np.isfinite(slope) and slope != 0):
            slope = 1.0 if knob == self.q_knob else 0.1  # direction only: each quantity rises with its gate
        def rank(g: float, v: dict) -> tuple:  # fewer criteria failing first, then nearer the target
            return (*self._violation(v)[:2], abs(g))

        best = (rank(g0, verdict), point, verdict)
        y1 = float(np.clip(y0 - g0 / slope, y_lo, y_hi))
        try:
            for _ in range(self.budget):
                if y1 == y0 or accept(g0):
                    break
                trial = {**point, knob: math.exp(y1) if by_factor else y1}
                v1 = self.judge(trial)
                if any(f.startswith("status:") for f in v1["fails"]):
                    break
                g1 = value(v1) - target
                if not math.isfinite(g1):  # e.g. a network's product overflowed: keep the best finite point
                    break
                if accept(g1) or rank(g1, v1) < best[0]:
                    best = (rank(g1, v1), trial, v1)
                if accept(g1) or g1 == g0:
                    break
                y0, g0, y1 = y1, g1, float(np.clip(y1 - g1 * (y1 - y0) / (g1 - g0), y_lo, y_hi))
        except _BudgetSpent:  # spent on the way: a point that already holds is still the answer
            pass
        return best[1], best[2]

    def _violation(self, verdict: dict) -> tuple:
        """(failed status, criteria failing, their total log shortfall): smaller is better, for the best point."""
        fails = verdict["fails"]
        if any(f.startswith("status:") for f in fails):
            return (1, len(fails), math.inf)
        slack = self.criteria.slacks(verdict["values"])
        return (0, len(fails), sum(-float(slack[k]) for k in fails if k in slack))

    def _untied_slope(self, point: dict, knob: str, quantity: str) -> float:
        """d log(quantity)/d knob on the untied maps (quantity "m1", "spread" or "Q": the largest Q_s), one batch
        of two."""
        h = {**point, knob: np.array([point[knob], point[knob] + SLOPE_STEP])}
        ev = evaluate_points(self.cell, h, weights=self.weights, length=self.rule.length)
        if quantity in ("m1", "spread"):
            y = np.log(ev[quantity])
        else:
            y = np.log(np.max([ev[k] for k in ev if k.startswith("Q_")], axis=0))
        return float((y[1] - y[0]) / SLOPE_STEP)

    def _most_sensitive(self, free, quantity: str = "m1") -> str | None:
        """The free parameter the untied ``quantity`` (m1 or spread) moves most with, in log (m1: cells without a
        memory gate, vanilla RNN nu2_h; spread: cells without a free write gate)."""
        if not free:
            return None
        x = self.rule.hyperparameters
        h = {**x, **{n: np.array([x[n]] + [x[n] + SLOPE_STEP * (n == m) for m in free]) for n in free}}
        ev = evaluate_points(self.cell, h, weights=self.rule.weights, length=self.rule.length)
        with np.errstate(all="ignore"):
            slopes = np.abs(np.nan_to_num(np.log(ev[quantity][1:]) - np.log(ev[quantity][0])))
        return free[int(np.argmax(slopes))]

    def _refusal(self, point: dict, verdict: dict) -> str:
        v, se, crit, T = verdict["values"], verdict["standard_error"], self.criteria, self.rule.length
        m_lo, m_hi = crit.m1_range()
        qs = ", ".join(f"{k} = {v[k]:.4g} +- {se[k]:.2g}" for k in v if k.startswith("Q_"))
        knobs = ", ".join(f"{n} = {point[n]:.4g}" for n in self.knobs)
        tried = len(self.history) - 1
        outcome = (f"{tried} corrective tied evaluations found no point that holds" if tried
                   else "no correction could be tried")
        text = (f"cell {self.cell.name}: the untied rule for T = {T} fails {', '.join(self.history[0]['fails'])} on the "
                f"tied theory (input size {self.input_dim or 'infinite'}, population {verdict['population']}), and "
                f"{outcome}. Best point "
                f"({knobs}) fails {', '.join(verdict['fails'])}: xi = {v['xi']:.4g} +- {se['xi']:.2g} (needs >= {T}), "
                f"m1 = {v['m1']:.6g} +- {se['m1']:.1g} (needs [{m_lo:.6g}, {m_hi:.6g}]), {qs} (needs <= "
                f"{crit.max_second_moment:g}), spread = {v['spread']:.3g} +- {se['spread']:.2g} (needs <= "
                f"{crit.max_spread:g}); judged on the {verdict['judged_on']}.")
        fails = set(verdict["fails"])
        if "second_moment" in fails and self.q_knob is None:
            text += (f" The write gate's mean {self.write_gates[0]} is fixed by the rule: free it (--free)." if self.write_gates
                     else " The cell has no write gate to scale what enters its memory: lower a recurrent or input "
                          "variance (--fix) or raise the bound (max_second_moment).")
        for n in self.knobs:
            if point[n] in self.box[n]:
                text += f" {n} sits at the edge of its box {list(self.box[n])}: --bound {n}=LO:HI may help."
        if len(self.history) >= self.budget:
            text += f" The budget of {self.budget} tied evaluations was spent: raise max_evaluations."
        if "spread" in fails and self.spread_knob is None:
            text += (" No free parameter is left to lower the spread (the write gate's mean, or another besides the "
                     "memory gate's): free one (--free), or a shorter T.")
        elif "spread" in fails:
            text += (f" The spread is corrected along {self.spread_knob} (lower writes, weaker recurrent coupling); "
                     "where that is spent, lower recurrent variances (--fix nu2_*) or a shorter T.")
        if "xi" in fails and "m1" not in fails:
            text += (" xi is short of T with m1 at its target: a longer memory would break the mean gain; a shorter T "
                     "or a larger --population (xi is the noisiest tied number).")
        return text


class _BudgetSpent(Exception):
    """The tied evaluation budget is spent (internal: ends the correction loop)."""


def _log_m1(verdict: dict) -> float:
    return math.log(verdict["values"]["m1"])


def _log_spread(verdict: dict) -> float:
    return math.log(max(verdict["values"]["spread"], 1e-300))  # as Criteria.slacks: a vanishing spread passes


def _log_q_max(verdict: dict) -> float:
    return math.log(max(x for k, x in verdict["values"].items() if k.startswith("Q_")))


