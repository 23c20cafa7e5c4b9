"""What a report is computed from: the cell, the sequence length, the effort (quick or full) and the options, plus
the results several sections share (the critical rule, the tied theory), each computed once.

Stage: built by :func:`symmft.report.build.build_report`, read by every section module.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from symmft.cell import params as params_mod
from symmft.cell.graph import Cell
from symmft.errors import SymmftError
from symmft.init.baselines import evaluate_baselines
from symmft.init.rule import CriticalResult
from symmft.init.search import find_critical

THEORIES = ("untied", "tied", "both")


@dataclass(frozen=True)
class Profile:
    """How much work each section does. ``search`` holds :func:`~symmft.init.search.find_critical`'s effort
    options (empty: its defaults)."""

    name: str
    phase_points: tuple[int, int]  # grid of the phase diagrams (x, y)
    width: int  # units of the simulated network
    steps: int  # simulated steps
    seeds: int  # independent networks per simulated curve (error bands)
    spectrum_width: int  # units of the network whose Jacobian is formed exactly (O(n^3))
    spectrum_samples: int  # independent networks pooled in the singular-value histogram
    population: int  # units of the tied theory's population
    search: dict = field(default_factory=dict)
    # Steps per unit the tied theory's stationary solver may take (None: analyze_tied's default). At a long-memory
    # rule it needs ~10^5 (a minute); a quick report bounds it and shows NOT_CONVERGED where that is too few.
    stationary_steps: int | None = None
    # The spread measured on finite tied networks of the rule (symmft.init.tied_check.network_spread): networks of
    # this width, this many (None: the tied check's defaults, 2 of width 300: ~2.6 s CPU a network at T = 300).
    spread_width: int | None = None
    spread_networks: int | None = None


#: ``--quick``: a few minutes on 2 CPU cores for an LSTM (benchmarks/RESULTS.md, "symmft report").
QUICK = Profile("quick", (20, 16), 256, 120, 3, 160, 2, 5000, {"coarse": 12, "starts": 1, "max_iterations": 6},
                stationary_steps=2 ** 14)
#: The full report: finer grids, wider networks, more seeds, the search at its default effort.
#: Its stationary budget stays 2^17 (analyze_tied's default before it rose to 2^19), so the report keeps its cost.
FULL = Profile("full", (48, 40), 1000, 300, 5, 400, 4, 20000, spread_networks=4, stationary_steps=2 ** 17)


class TiedUnavailable(SymmftError):
    """The tied theory is not installed in this version of symmft, or was not asked for (--theory untied)."""


@dataclass
class Context:
    """The inputs of one report and the results shared between its sections (computed on first use)."""

    cell: Cell
    length: int
    profile: Profile
    theory: str = "both"
    input_dim: int | None = None
    width: int = 128  # width H of the baselines' variances (as symmft critical)
    axes: tuple | None = None  # ((x_name, values), (y_name, values)) or None for the default plane
    confirm: Path | None = None
    progress: bool = False
    _rule: CriticalResult | None = None
    _rule_error: str | None = None
    _searched: bool = False
    _baselines: list | None = None
    _start: float = field(default_factory=time.perf_counter)

    def say(self, message: str) -> None:
        """A progress line on stderr (long work shows progress)."""
        if self.progress:
            print(f"[report {self.cell.name} {time.perf_counter() - self._start:6.1f} s] {message}", file=sys.stderr,
                  flush=True)

    @property
    def defaults(self) -> dict:
        """Every hyperparameter at its default (scalars)."""
        return {k: float(v) for k, v in params_mod.resolve(self.cell, {}).items()}

    @property
    def rule(self) -> CriticalResult | None:
        """The critical initialization for T (searched once); None when the search found none (see
        :attr:`rule_error`)."""
        if not self._searched:
            self._searched = True
            self.say(f"searching a critical initialization for T = {self.length}")
            try:
                self._rule = find_critical(self.cell, self.length, progress=self.progress, **self.profile.search)
            except SymmftError as e:  # no rule for this cell and T (or invalid input): the sections say why
                self._rule_error = f"{type(e).__name__}: {e}"
        return self._rule

    @property
    def rule_error(self) -> str | None:
        self.rule  # noqa: B018 - run the search if it has not run
        return self._rule_error

    @property
    def baselines(self) -> list[dict]:
        """The baselines' rows (:func:`symmft.init.baselines.evaluate_baselines`) for T, width H, input size m."""
        if self._baselines is None:
            self.say("evaluating the baselines")
            self._baselines = evaluate_baselines(self.cell, self.length, width=self.width, input_dim=self.input_dim)
        return self._baselines

    def points(self) -> dict[str, dict]:
        """The points the statics are shown at: the defaults, and the rule when there is one."""
        out = {"defaults": self.defaults}
        if self.rule is not None:
            out["rule"] = dict(self.rule.hyperparameters)
        return out

    def wants(self, theory: str) -> bool:
        """Whether ``--theory`` asks for ``theory`` ("untied" or "tied")."""
        return self.theory in (theory, "both")

    def analyze_tied(self, hyperparameters: dict, weights: str, steps: int | None = None, stationary: bool = True):
        """The tied theory (:func:`symmft.theory.tied.analyze_tied`) at one point; raises :class:`TiedUnavailable`
        when it is not installed, not asked for, or fails (its failure must not hide the untied results).
        ``stationary`` False: the transient only (a trajectory needs no stationary solve)."""
        if not self.wants("tied"):
            raise TiedUnavailable("not asked for (--theory untied)")
        try:
            from symmft.theory.tied import analyze_tied
        except ImportError:
            raise TiedUnavailable("not available: this version of symmft has no symmft.theory.tied") from None
        try:
            budget = {} if self.profile.stationary_steps is None else {"max_steps": self.profile.stationary_steps}
            return analyze_tied(self.cell, hyperparameters, steps=steps, input_dim=self.input_dim, weights=weights,
                                population=self.profile.population, stationary=stationary, **budget)
        except Exception as e:  # another stage's solver: whatever it raises, the report says so and goes on
            raise TiedUnavailable(f"failed: {type(e).__name__}: {e}") from e
