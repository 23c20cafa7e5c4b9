"""Section 2 of a report: the derived mean-field recursions, written short and pre-rendered, and the structure of
the state-to-state Jacobian.

The recursions :func:`symmft.theory.meanfield.derive` returns nest Gaussian expectations whose laws are written
out in full at every use (an LSTM's Q_h' is ~2000 characters of LaTeX). :func:`abbreviate` names each affine map's
law once, u_k ~ N(mu_k, V_k) with cross covariance K_k, writes E[F(u_k)] as <F(u_k)> and E[F(u_k^a) G(u_k^b)] as
<F(u_k^a) G(u_k^b)>, and names every other Gaussian (a closure variable, such as the LSTM's tanh argument c') z_j
with its mean and variance listed once. Nothing is dropped: the expansion of the short form is the derived map.
"""

from __future__ import annotations

import re
from pathlib import Path

import sympy as sp

from symmft.cell.graph import primary_states
from symmft.report.context import Context
from symmft.report.document import Section
from symmft.report.figures import equations
from symmft.theory.expectation import E1, E2
from symmft.theory.jacobian import derive_jacobian
from symmft.theory.meanfield import derive
from symmft.theory.meanfield_map import MeanFieldMap

#: sympy's LaTeX for a variance name (nu2_f -> \nu_{2 f}), rewritten as the variance it is (\nu^2_{f}).
VARIANCE = re.compile(r"\\(nu|sigma|rho)_\{2 ?([^}]*)\}")
#: Characters of LaTeX per rendered line before a sum is continued on the next one.
LINE = 110


class Abbreviation:
    """Short names for the Gaussian expectations of one derived map (see the module docstring)."""

    def __init__(self, mf: MeanFieldMap):
        self.laws = {(m, v): k for k, (m, v, _) in mf.laws.items()}
        self.cross = {(m, v, c): k for k, (m, v, c) in mf.laws.items()}
        self.names: dict[sp.Symbol, str] = {}  # placeholder -> LaTeX
        self.memo: dict[sp.Expr, sp.Symbol] = {}  # expectation -> its placeholder
        self.closures: list[tuple[sp.Expr, sp.Expr]] = []  # (mean, variance) of z_1, z_2, ...
        self.cross_covariances: list[sp.Expr | None] = []  # of z_j^a, z_j^b where a two-copy expectation needs it

    def short(self, e: sp.Expr) -> sp.Expr:
        """``e`` with every expectation replaced by a placeholder symbol (innermost first)."""
        if isinstance(e, (E1, E2)):
            return self._placeholder(e)
        if not e.args or isinstance(e, sp.Lambda):
            return e
        return e.func(*[self.short(a) for a in e.args])

    def _placeholder(self, e) -> sp.Symbol:
        if e not in self.memo:  # one name per distinct expectation, so equal closure laws are recognised as one
            self.memo[e] = self._name(e)
        return self.memo[e]

    def _name(self, e) -> sp.Symbol:
        if isinstance(e, E1):
            lam, m, v = e.args
            k = self.laws.get((m, v))
            if k is None:
                z = self._closure(m, v)
                body = _latex_function(lam, z)
            else:
                body = _latex_function(lam, f"u_{{{k}}}")
        else:
            lf, lg, m, v, c = e.args
            k = self.cross.get((m, v, c))
            name = f"u_{{{k}}}" if k else self._closure(m, v, c)
            body = _latex_function(lf, f"{name}^{{a}}") + " " + _latex_function(lg, f"{name}^{{b}}")
        symbol = sp.Symbol("Zq" + _letters(len(self.names)))
        self.names[symbol] = rf"\langle {body} \rangle"
        return symbol

    def _closure(self, m, v, c=None) -> str:
        """The name z_j of the Gaussian with mean m, variance v (and cross covariance c between the copies)."""
        key = (self.short(m), self.short(v))
        if key not in self.closures:
            self.closures.append(key)
            self.cross_covariances.append(None)
        j = self.closures.index(key)
        if c is not None:
            self.cross_covariances[j] = self.short(c)
        return f"z_{{{j + 1}}}"

    def latex(self, e: sp.Expr) -> list[str]:
        """``e`` (already :meth:`short`) as LaTeX lines of at most ~LINE characters, split between terms."""
        terms = [self.tex(sp.latex(t)) for t in sp.Add.make_args(e)]
        lines, current = [], ""
        for t in terms:
            piece = t if not current else (t if t.startswith("-") else "+ " + t)
            if current and len(current) + len(piece) > LINE:
                lines.append(current)
                current = piece if piece.startswith(("-", "+")) else "+ " + piece
            else:
                current = f"{current} {piece}".strip()
        return lines + [current]

    def tex(self, latex: str) -> str:
        """LaTeX with the placeholders spelled out and sympy's spellings made short."""
        for symbol in sorted(self.names, key=lambda s: -len(s.name)):
            latex = latex.replace(sp.latex(symbol), self.names[symbol])
        latex = latex.replace(r"\operatorname{sigmoid}", r"\sigma").replace(r"\left(", "(").replace(r"\right)", ")")
        return VARIANCE.sub(r"\\\1^2_{\2}", latex)  # sympy writes nu2_f as nu_{2 f}: show nu^2_f


def _latex_function(lam: sp.Lambda, argument: str) -> str:
    return sp.latex(lam(sp.Symbol("ARGQ"))).replace("ARGQ", argument)


def _letters(k: int) -> str:
    """k as four letters (fixed width, so no placeholder is a prefix of another)."""
    out = ""
    for _ in range(4):
        k, r = divmod(k, 26)
        out += chr(ord("a") + r)
    return out


def build(ctx: Context, section: Section, out: Path) -> None:
    cell = ctx.cell
    mf = derive(cell)
    ab = Abbreviation(mf)
    short = [(k, ab.short(e)) for k, e in mf.equations()]
    lines = []
    for k, e in short:
        body = ab.latex(e)
        lines += [(f"{sp.latex(k)}' = {body[0]}", f"{k}' = ...")] + [(rf"\quad {b}", "...") for b in body[1:]]
    laws = [(rf"u_{{{k}}} \sim \mathcal{{N}}({ab.tex(sp.latex(m))},\ V_{{{k}}}),\ V_{{{k}}} = {ab.tex(sp.latex(v))},\ "
             rf"K_{{{k}}} = {ab.tex(sp.latex(c))}", f"u_{k}: mean {m}, V = {v}, K = {c}") for k, (m, v, c) in mf.laws.items()]
    closures = []
    for j, ((m, v), c) in enumerate(zip(ab.closures, ab.cross_covariances), 1):
        closures += [(rf"z_{{{j}}} \sim \mathcal{{N}}(m_{{{j}}},\ v_{{{j}}})" + (rf",\ \mathrm{{cov}}(z_{{{j}}}^a, z_{{{j}}}^b) = k_{{{j}}}" if c is not None else ""), f"z_{j}")]
        for name, e in (("m", m), ("v", v)) + ((("k", c),) if c is not None else ()):
            body = ab.latex(e)
            closures += [(rf"\quad {name}_{{{j}}} = {body[0]}", f"{name}_{j} = ...")] + [(rf"\qquad {b}", "...") for b in body[1:]]
    section.assumes.append("Width n -> infinity with weights redrawn at every step (untied, the paper's "
                           "approximation), under which each affine output is Gaussian; a nonlinearity of a "
                           "non-Gaussian quantity (a closure variable z_j) is replaced by a Gaussian with the same "
                           "mean and variance (the default Gaussian closure).")
    section.fails_where.append("The Gaussian closure is approximate where a closure variable is far from Gaussian "
                               "(compare `symmft analyze --closure population`); the untied maps miss the coherent "
                               "writes of a real network's reused weights at long memory (section 5).")
    section.text("Keys: M_s = E[s], Q_s = E[s_a^2] and C_s = E[s_a s_b] between two input sequences a, b; primed is "
                 "the next step. <F(u_k)> is the Gaussian expectation under map k's law, <F(u^a) G(u^b)> its "
                 "two-copy version with covariance K_k.")
    section.figure(equations(laws + closures, out / "laws.png"), "Gaussian laws of the affine maps (mean, variance "
                   "V_k, cross covariance K_k between the sequences) and the closure variables.")
    section.figure(equations(lines, out / "recursions.png"), f"The derived recursions of `{cell.name}`.")
    section.code(mf.text(), language="text", title="the recursions in full (symmft derive)")
    section.results["recursions"] = {str(k): str(e) for k, e in mf.equations()}
    section.results["laws"] = {k: {"mean": str(m), "variance": str(v), "cross_covariance": str(c)}
                               for k, (m, v, c) in mf.laws.items()}
    _jacobian(ctx, section, out, ab)


def _jacobian(ctx: Context, section: Section, out: Path, ab: Abbreviation) -> None:
    cell = ctx.cell
    primary = primary_states(cell)
    derived = [s for s in cell.states if s not in primary]
    jm = {"gaussian": derive_jacobian(cell, "memory", "gaussian")}
    matrices = [i.hyperparameter for a in cell.affines for i in a.inputs if i.vector != "x"]
    section.text(f"The state-to-state Jacobian J = d({', '.join(primary)})_t / d({', '.join(primary)})_(t-1) "
                 f"(the memory Jacobian, N = {len(primary)} n rows)"
                 + (f"; the derived state{'s' if len(derived) > 1 else ''} {', '.join(derived)} at t-1 "
                    "are recomputed from the primary ones with that step's other quantities held" if derived else "")
                 + f". It is a sum of words in diagonal matrices and the recurrent matrices ({', '.join(matrices)}); "
                 "free probability gives m1 = tr(JJ^T)/N and m2 = tr((JJ^T)^2)/N at the fixed point. Gaussian and "
                 "orthogonal recurrent matrices share m1 and differ in m2.")
    m1 = ab.short(jm["gaussian"].m1)
    lines = [(f"m_1 = {ab.latex(m1)[0]}", "m1 = ...")] + [(rf"\quad {b}", "...") for b in ab.latex(m1)[1:]]
    section.figure(equations(lines, out / "jacobian_m1.png"), "m1 of the memory Jacobian at the fixed point "
                   "(the expectations as in the recursions, evaluated at the fixed-point moments).")
    section.results["jacobian"] = {"kind": "memory", "primary_states": list(primary), "derived_states": derived,
                                   "recurrent_matrices": matrices,
                                   "m1": str(jm["gaussian"].m1)}  # m2's expressions run to ~1 MB: not shown
