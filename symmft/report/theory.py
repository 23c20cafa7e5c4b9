"""Section 2 of a report: the derived mean-field recursions, written short and pre-rendered, and the structure of
the state-to-state Jacobian.

The recursions :func:`symmft.theory.meanfield.derive` returns nest Gaussian expectations whose laws are written
out in full at every use (an LSTM's Q_h' is ~2000 characters of LaTeX). :func:`abbreviate` names each affine map's
law once, u_k ~ N(mu_k, V_k) with cross covariance K_k, writes E[F(u_k)] as <F(u_k)> and E[F(u_k^a) G(u_k^b)] as
<F(u_k^a) G(u_k^b)>, and names every other Gaussian (a closure variable, such as the LSTM's tanh argument c') z_j
with its mean and variance listed once. Nothing is dropped: the expansion of the short form is the derived map.
"""

from __future__ import annotations

from pathlib import Path

import sympy as sp

from symmft.cell.trace import primary_states
from symmft.report.context import Context
from symmft.report.document import Section
from symmft.report.figures import equations
from symmft.theory.expectation import E1, E2, u
from symmft.theory.jacobian import derive_jacobian
from symmft.theory.meanfield import MeanFieldMap, derive

#: Characters of LaTeX per rendered line before a sum is continued on the next one.
LINE = 110


class Abbreviation:
    """Short names for the Gaussian expectations of one derived map (see the module docstring)."""

    def __init__(self, mf: MeanFieldMap):
        self.laws = {(m, v): k for k, (m, v, _) in mf.laws.items()}
        self.cross = {(m, v, c): k for k, (m, v, c) in mf.laws.items()}
        self.names: dict[sp.Symbol, str] = {}  # placeholder -> LaTeX
        self.closures: list[tuple[sp.Expr, sp.Expr]] = []  # (mean, variance) of z_1, z_2, ...

    def short(self, e: sp.Expr) -> sp.Expr:
        """``e`` with every expectation replaced by a placeholder symbol (innermost first)."""
        if isinstance(e, (E1, E2)):
            return self._placeholder(e)
        if not e.args or isinstance(e, sp.Lambda):
            return e
        return e.func(*[self.short(a) for a in e.args])

    def _placeholder(self, e) -> sp.Symbol:
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
            body = (_latex_function(lf, f"u_{{{k}}}^{{a}}") + " " + _latex_function(lg, f"u_{{{k}}}^{{b}}")
                    if k else sp.latex(e))
        symbol = sp.Symbol("Zq" + _letters(len(self.names)))
        self.names[symbol] = rf"\langle {body} \rangle"
        return symbol

    def _closure(self, m, v) -> str:
        pair = (self.short(m), self.short(v))
        if pair not in self.closures:
            self.closures.append(pair)
        return f"z_{{{self.closures.index(pair) + 1}}}"

    def latex(self, e: sp.Expr) -> list[str]:
        """``e`` (already :meth:`short`) as LaTeX lines of at most ~LINE characters, split between terms."""
        terms = [self._text(sp.latex(t)) for t in sp.Add.make_args(e)]
        lines, current = [], ""
        for t in terms:
            piece = t if not current else (t if t.startswith("-") else "+ " + t)
            if current and len(current) + len(piece) > LINE:
                lines.append(current)
                current = piece if piece.startswith(("-", "+")) else "+ " + piece
            else:
                current = f"{current} {piece}".strip()
        return lines + [current]

    def _text(self, latex: str) -> str:
        for symbol in sorted(self.names, key=lambda s: -len(s.name)):
            latex = latex.replace(sp.latex(symbol), self.names[symbol])
        return latex.replace(r"\operatorname{sigmoid}", r"\sigma").replace(r"\left(", "(").replace(r"\right)", ")")


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
    laws = [(rf"u_{{{k}}} \sim \mathcal{{N}}({sp.latex(m)},\ V_{{{k}}}),\ V_{{{k}}} = {sp.latex(v)},\ "
             rf"K_{{{k}}} = {sp.latex(c)}", f"u_{k}: mean {m}, V = {v}, K = {c}") for k, (m, v, c) in mf.laws.items()]
    closures = [(rf"z_{{{j + 1}}} \sim \mathcal{{N}}({ab.latex(m)[0]},\ {ab.latex(v)[0]})",
                 f"z_{j + 1}: closure variable") for j, (m, v) in enumerate(ab.closures)]
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
    jm = {w: derive_jacobian(cell, "memory", w) for w in ("gaussian", "orthogonal")}
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
                                   "m1": str(jm["gaussian"].m1),
                                   "m2": {w: str(j.m2) for w, j in jm.items()}}
