"""Mean-field maps derived from a cell graph (docs/theory.md §2), automatically for any cell.

Stage: ``Cell`` (graph) -> :class:`~symmft.theory.meanfield_map.MeanFieldMap` (sympy) -> :mod:`symmft.theory.compile`.
The map's type (:mod:`symmft.theory.meanfield_map`) and the closure vocabulary (:mod:`symmft.theory.closure`) are
leaf modules; their names are importable from here too.

At one coordinate and one step, the cell's new state is an expression in three kinds of atoms, each present in
two copies (input sequences a and b):

* previous states ``s_a, s_b`` — their law enters only through moments, the *keys* of the map:
  ``M_s = E[s]``, ``Q_s_t = E[s_a t_a]`` (second moments), ``C_s_t = E[s_a t_b]`` (cross moments);
* affine outputs ``u_k`` — Gaussian, independent of everything else at the coordinate (weights independent
  across steps, the paper's approximation), with mean ``mu_k``, variance
  ``V_k = sigma2_k q_x + sum_v nu2_kv E[v_a^2] + rho2_k`` and cross covariance
  ``K_k = sigma2_k q_x c_x + sum_v nu2_kv E[v_a v_b] + rho2_k``;
* nonlinearities of anything else (the LSTM's ``tanh(c')``, the GRU's ``tanh(u_n + r*u_hn)``): a *closure*.
  ``exact`` (the default): an argument built from affine outputs only is Gaussian given some of them, and its
  law is integrated exactly by nested quadrature (:mod:`symmft.theory.conditional`); any other argument (it holds
  a previous state: the LSTM's c') gets the Gaussian moment closure, and the map records that it did.
  ``gaussian``: every non-Gaussian argument X is replaced by a Gaussian pair with X's mean, variance and cross
  covariance (exact when X is a sum of independent Gaussians). ``population`` lives in
  :mod:`symmft.theory.population`. ``MeanFieldMap.nonlinearity_laws`` names the law each nonlinearity got
  (docs/laws.md).

An expectation is expanded into monomials; each monomial factorizes into independent blocks (one per affine map,
one for the previous state, one per closure variable), each block a 1-D or 2-D Gaussian expectation
(:mod:`symmft.theory.expectation`) or a key. The keys demanded by the expansion are derived in turn until the set closes.
Nothing here is written per cell.
"""

from __future__ import annotations

import os
from dataclasses import replace

import networkx as nx
import sympy as sp

from symmft import cache
from symmft.theory import store
from symmft.cell.graph import Cell
from symmft.errors import ClosureError
from symmft.theory import conditional
from symmft.theory.expansion import Expansion
from symmft.theory.closure import CLOSURES, DEFAULT_CLOSURE, MAP_CLOSURES, map_closure
from symmft.theory.expectation import E1, EL, FUNCTIONS, gaussian_expectation, gaussian_product_moment, u
from symmft.theory.meanfield_map import MeanFieldMap
from symmft.cell.params import chrono_names, names as hyperparameter_names

# the closure vocabulary and the map's type live in leaf modules; importable from here as before
__all__ = ["CLOSURES", "DEFAULT_CLOSURE", "MAP_CLOSURES", "Derivation", "FUNCTIONS", "MeanFieldMap", "derive",
           "hyperparameter_symbol", "map_closure", "two_sequence_conditional"]


def hyperparameter_symbol(name: str) -> sp.Symbol:
    """The sympy symbol of hyperparameter ``name`` (real: one spelling from the CLI to the maps)."""
    return sp.Symbol(name, real=True)


def derive(cell: Cell, closure: str = "exact", chrono: frozenset = frozenset()) -> MeanFieldMap:
    """Derive the mean-field map of ``cell`` (cached per cell-file hash, closure and chrono maps).

    ``closure``: one of MAP_CLOSURES ("auto" is read as "exact"; "population" has no map: it derives the moment
    closure's, as the population closure's deterministic companion).

    ``chrono``: the affine maps whose bias holds the chrono term beta_k L (params.chrono_maps); their laws are
    Gaussian given L, and expectations are integrated over L's log-uniform law (``EL``).
    """
    closure = map_closure(closure, grid=False)
    closure = "gaussian" if closure == "population" else closure
    key = (cell.file_hash, closure, frozenset(chrono))
    if key not in _CACHE:
        # stored on disk without the Cell (the user's step function), re-attached here
        stored = store.cached(cell.file_hash, "meanfield", (closure, tuple(sorted(chrono))),
                              lambda: replace(Derivation(cell, frozenset(chrono), closure).run(), cell=None))
        _CACHE[key] = replace(stored, cell=cell)
    return _CACHE[key]


_CACHE = cache.memory("derived maps")


def two_sequence_conditional(cell: Cell) -> bool:
    """Whether the exact map of ``cell`` holds a conditional law of two input sequences (a 2k+2-level quadrature)."""
    return any(e.has(conditional.EC) for e in derive(cell, "exact").update.values())


class Derivation:
    """Builds the state updates as sympy expressions and takes their expectations."""

    def __init__(self, cell: Cell, chrono: frozenset = frozenset(), closure: str = "gaussian"):
        self.cell = cell
        self.chrono = chrono
        self.closure = closure  # "exact": conditional laws where they exist (else the moment closure)
        self.state_index = {s: i for i, s in enumerate(cell.states)}
        self.atom_group: dict[sp.Symbol, str] = {}  # atom symbol -> independence group
        self.to_b: dict[sp.Symbol, sp.Symbol] = {}  # a-copy atom -> b-copy atom
        self.state_atoms: dict[sp.Symbol, tuple[str, str]] = {}  # atom -> (state, copy)
        self.affine_atoms: dict[sp.Symbol, tuple[str, str]] = {}  # atom -> (affine map, copy)
        self.where: dict[sp.Expr, str] = {}  # nonlinearity expression -> file:line
        self.blocks: dict[sp.Symbol, str] = {}  # atom of an independent non-Gaussian block -> block name
        self.block_moment: dict[str, object] = {}  # block name -> f(monomial in its atoms) -> expectation
        self.atoms: dict = {}
        expr = self.walk()
        self.expr = expr
        self.new_state = {s: expr[n] for s, n in cell.outputs.items()}
        self.hyper = {n: hyperparameter_symbol(n) for n in hyperparameter_names(cell)}
        # the chrono bias L (per unit, redrawn each step with the biases under the untied approximation)
        self.L = sp.Symbol("L", real=True)
        self.atom_group[self.L] = "chrono"
        self.keys: dict[tuple, sp.Symbol] = {}
        self.demanded: list[tuple] = []
        self._laws: dict[str, tuple] = {}
        self._expect_cache: dict = {}
        self._expansion = Expansion()
        self._centered: set = set()  # the atoms of gaussian_atom: zero mean, independent of everything
        self._atoms_in: dict = {}  # expression -> the affine atoms it holds
        self._group_cache: dict = {}
        self._closure_args: dict = {}
        self._powers: dict = {}
        self._gaussian_cache: dict = {}
        self._decomposed: dict = {}
        self._linear: dict = {}
        self._given_law: dict = {}
        self._nested_cache: dict = {}

    def walk(self, overrides: dict | None = None) -> dict:
        """Sympy expression (a-copy atoms) of every graph node; ``overrides`` pins chosen nodes to given
        expressions (the Jacobian uses it to write a derived state in terms of a placeholder)."""
        g, expr = self.cell.graph, dict(overrides or {})
        for node in nx.topological_sort(g):
            if node in expr:
                continue
            attrs, args = g.nodes[node], sorted(g.in_edges(node, data="position"), key=lambda e: e[2])
            args = [expr[a] for a, _, _ in args]
            op = attrs["op"]
            if op == "input":
                expr[node] = None
            elif op == "state":
                expr[node] = self._atom(f"{attrs['name']}", "state", self.state_atoms, attrs["name"])
            elif op == "affine":
                expr[node] = self._atom(f"u_{attrs['name']}", f"affine {attrs['name']}", self.affine_atoms, attrs["name"])
            elif op == "const":
                expr[node] = sp.nsimplify(attrs["value"], rational=True)
            elif op == "add":
                expr[node] = args[0] + args[1]
            elif op == "sub":
                expr[node] = args[0] - args[1]
            elif op == "mul":
                expr[node] = args[0] * args[1]
            elif op in FUNCTIONS:
                expr[node] = FUNCTIONS[op](args[0])
                self.where.setdefault(expr[node], attrs["where"])
            elif op == "output":
                expr[node] = args[0]
            else:  # the tracer only creates the ops above
                raise ClosureError(f"{attrs['where']}: no mean-field rule for operation {op!r}")
        return expr

    def gaussian_atom(self, name: str, variance: sp.Expr) -> sp.Symbol:
        """A fresh zero-mean Gaussian, independent of everything (a tangent or cotangent of the Jacobian)."""
        atom = self._atom(name, f"affine {name}", self.affine_atoms, name)
        self._laws[name] = (sp.S.Zero, variance, sp.S.Zero)
        self._centered.add(atom)
        return atom

    def independent_block(self, block: str, atoms: dict, moment) -> None:
        """Atoms independent of every other group but not of each other; ``moment(monomial)`` gives E[monomial]."""
        for a in atoms:
            self.atom_group[a] = block
            self.blocks[a] = block
        self.block_moment[block] = moment

    def _atom(self, name, group, table, label):
        if name in self.atoms:
            return self.atoms[name]
        a, b = sp.Symbol(f"{name}_a", real=True), sp.Symbol(f"{name}_b", real=True)
        for sym, copy in ((a, "a"), (b, "b")):
            self.atom_group[sym] = group
            table[sym] = (label, copy)
        self.to_b[a] = b
        self.atoms[name] = a
        return a

    # ---------------------------------------------------------------- keys
    def key(self, kind: str, *states: str) -> sp.Symbol:
        """The symbol of a moment of the previous state: M (mean), Q (second), C (cross)."""
        states = tuple(sorted(states, key=self.state_index.get))
        k = (kind, states)
        if k not in self.keys:
            name = f"{kind}_{'_'.join(dict.fromkeys(states)) if kind != 'M' else states[0]}"
            if kind != "M" and states[0] != states[1]:
                name = f"{kind}_{states[0]}_{states[1]}"
            self.keys[k] = sp.Symbol(name, real=True)
            self.demanded.append(k)
        return self.keys[k]

    def b_copy(self, e: sp.Expr) -> sp.Expr:
        return e.xreplace(self.to_b)

    # ---------------------------------------------------------------- laws
    def law(self, name: str) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
        """(mean, variance, cross covariance) of affine map ``name``."""
        if name not in self._laws:
            a = self.cell.affine(name)
            h = self.hyper
            var = h[a.bias_variance]
            cov = h[a.bias_variance]
            for inp in a.inputs:
                scale = h[inp.hyperparameter]
                if inp.vector == "x":
                    var += scale * h["q_x"]
                    cov += scale * h["q_x"] * h["c_x"]
                else:
                    v = self.expr[inp.node]
                    var += scale * self.expect(v * v)
                    cov += scale * self.expect(v * self.b_copy(v))
            mean = h[a.mean] + (h[f"beta_{name}"] * self.L if name in self.chrono else 0)
            self._laws[name] = (mean, var, cov)
        return self._laws[name]

    # ---------------------------------------------------------------- expectations
    def expect(self, e: sp.Expr) -> sp.Expr:
        """E[e] for an expression in a- and b-copy atoms."""
        if e not in self._expect_cache:
            terms = self._expansion.terms(e)
            self._expect_cache[e] = sp.Add(*[self._expect_monomial(c, m) for m, c in terms.items()])
        return self._expect_cache[e]

    def _power(self, base: sp.Expr, power: int) -> sp.Expr:
        if (base, power) not in self._powers:
            self._powers[base, power] = base**power
        return self._powers[base, power]

    def _groups(self, e: sp.Expr) -> frozenset:
        if e not in self._group_cache:  # memoized: the same factors recur across monomials
            self._group_cache[e] = frozenset(self.atom_group[s] for s in e.free_symbols if s in self.atom_group)
        return self._group_cache[e]

    def _expect_monomial(self, coeff: sp.Expr, powers) -> sp.Expr:
        """E[coeff * prod(base**power for base, power in powers)]."""
        if any(power % 2 for base, power in powers if base in self._centered):
            return sp.S.Zero  # an odd power of a zero-mean Gaussian independent of everything (half the Jacobian's)
        factors = [self._power(base, power) for base, power in powers]
        affine: dict[str, dict[str, sp.Expr]] = {}  # map -> copy -> product of factors in u
        state: list[sp.Expr] = []
        closures: dict[sp.Expr, dict[str, sp.Expr]] = {}  # argument (a-copy) -> copy -> product in u
        independent: dict[str, sp.Expr] = {}  # independent block -> monomial in its atoms
        chrono_factors = sp.S.One  # functions of the chrono bias L alone (conditional expectations)
        for f, (base, power) in zip(factors, powers):
            groups = self._groups(base)
            if not groups:
                coeff *= f
            elif groups == {"chrono"}:
                chrono_factors *= f
            elif base in self.blocks:
                independent[self.blocks[base]] = independent.get(self.blocks[base], sp.S.One) * f
            elif base in self.state_atoms:
                state.append(f)
            elif len(groups) == 1 and next(iter(groups)).startswith("affine") and len(self._affine_in(base)) == 1:
                (atom,) = self._affine_in(base)
                name, copy = self.affine_atoms[atom]
                slot = affine.setdefault(name, {"a": sp.S.One, "b": sp.S.One})
                slot[copy] *= f.xreplace({atom: u})
            else:  # a nonlinearity of a non-Gaussian quantity: closure
                a_arg, copy = self._closure_argument(base)
                slot = closures.setdefault(a_arg, {"a": sp.S.One, "b": sp.S.One})
                slot[copy] *= base.func(u) ** power
        blocks = [frozenset({f"affine {k}"}) for k in affine] + [self._groups(x) for x in closures]
        if state:
            blocks.append(frozenset({"state"}))
        for i, bi in enumerate(blocks):
            for bj in blocks[i + 1 :]:
                if bi & bj:
                    nested = self._conditional([coeff, *factors], [None, *powers], closures, affine)
                    if nested is not None:
                        return nested
                    node = min((self._where(x) for x in closures), default=self.cell.name)
                    raise ClosureError(
                        f"{node}: the Gaussian closure needs the nonlinearity's argument to be independent of the other "
                        f"factors it multiplies, but they share {', '.join(sorted(bi & bj))} in "
                        f"E[{sp.Mul(coeff, *factors)}]; use --closure population"
                    )
        out = [coeff * self._state_moment(state)]  # (multiplied once at the end: one Mul, not one per factor)
        for block, monomial in independent.items():
            out.append(self.block_moment[block](monomial))
        for name, slot in affine.items():
            out.append(self._gaussian(slot["a"], slot["b"], self.law(name)))
        for arg, slot in closures.items():
            one_copy = (slot["a"] == 1) != (slot["b"] == 1)
            exact = self.closure == "exact" or (self.closure == "exact-diagonal" and one_copy)
            law = self._decompose(arg) if exact else None
            if law is not None and law.conditioning:  # (without conditioning atoms X is Gaussian: the closure is exact)
                atom_law = lambda a: self.law(self.affine_atoms[a][0])
                out.append(conditional.expectation(law, slot["a"], slot["b"], atom_law))
            else:
                out.append(self._gaussian(slot["a"], slot["b"], self.closure_law(arg)))
        return self._integrate_chrono(sp.Mul(*out, chrono_factors))

    def _gaussian(self, F_a: sp.Expr, F_b: sp.Expr, law: tuple) -> sp.Expr:
        """gaussian_expectation, memoized (the same blocks recur across monomials)."""
        key = (F_a, F_b, law)
        if key not in self._gaussian_cache:
            self._gaussian_cache[key] = gaussian_expectation(F_a, F_b, *law)
        return self._gaussian_cache[key]

    def _decompose(self, arg: sp.Expr):
        if arg not in self._decomposed:
            self._decomposed[arg] = conditional.decompose(arg, self.affine_atoms)
        return self._decomposed[arg]

    def _integrate_chrono(self, product: sp.Expr) -> sp.Expr:
        """Given L every factor is a conditional expectation; the L-dependent ones are averaged over L together."""
        if not self.chrono or not product.has(self.L):  # (L enters the laws of the chrono maps only)
            return product
        factors = sp.Mul.make_args(product)
        dependent = sp.Mul(*[f for f in factors if f.has(self.L)])
        rest = sp.Mul(*[f for f in factors if not f.has(self.L)])
        return rest * EL(sp.Lambda(u, dependent.xreplace({self.L: u})), self.hyper["chrono_length"])

    def _conditional(self, factors: list, powers: list, closures: dict, affine: dict) -> sp.Expr | None:
        """Exact expectation of a one-copy monomial (the product of ``factors``, each ``base**power`` with (base,
        power) in ``powers``, None for the coefficient) whose nonlinearity arguments are Gaussian given other atoms.

        The reset-after GRU's X = u_n + r*u_hn is Gaussian given (r, u_hn): E[G F(X)] = E[G E1(F, m, v)] with
        m = mu_n + r u_hn, v = V_n. After that substitution every factor is a function of independent Gaussian
        atoms, integrated one at a time (nested quadrature). Returns None where this does not apply (two copies,
        or an argument not linear in an atom of its own), leaving the Gaussian-closure error to be raised.
        """
        if any(slot["b"] != 1 for slot in list(closures.values()) + list(affine.values())):
            return None
        closure = {f: self._closure_args[p[0]][0] for f, p in zip(factors, powers) if p and p[0] in self._closure_args}
        # in a canonical order: ``closures`` follows the monomial's frozenset, whose order changes with Python's
        # string hashes, and which closure is integrated first shapes the nested expression
        for arg, slot in sorted(closures.items(), key=lambda item: sp.default_sort_key(item[0])):
            factors = [f for f in factors if closure.get(f) != arg]  # the factors of F(arg) are integrated below
            held = set().union(*(self._affine_in(f) for f in factors))
            own = frozenset(a for a in self._linear_atoms(arg) if a not in held)
            if not own:
                return None
            factors.append(E1(sp.Lambda(u, slot["a"]), *self._given(arg, own)))
        outside = [f for f in factors if not self._affine_in(f)]
        # the factors that hold atoms fall into independent groups (connected by shared atoms): each group is
        # integrated on its own, and memoized (the same groups recur in many monomials: only tangents differ)
        groups: list[tuple[set, list]] = []
        for f in factors:
            atoms, members = set(self._affine_in(f)), [f]
            if not atoms:
                continue
            for g in [g for g in groups if g[0] & atoms]:
                groups.remove(g)
                atoms |= g[0]
                members += g[1]
            groups.append((atoms, members))
        outside += [self._nested(frozenset(members)) for _, members in groups]
        return self.expect(sp.Mul(*outside))

    def _affine_in(self, e: sp.Expr) -> frozenset:
        """The affine atoms ``e`` holds (memoized: the same factors recur across monomials)."""
        if e not in self._atoms_in:
            self._atoms_in[e] = frozenset(s for s in e.free_symbols if s in self.affine_atoms)
        return self._atoms_in[e]

    def _linear_atoms(self, arg: sp.Expr) -> tuple:
        """The affine atoms ``arg`` is linear in (candidates to integrate a nonlinearity of ``arg`` over)."""
        if arg not in self._linear:
            self._linear[arg] = tuple(a for a in self._affine_in(arg) if not arg.diff(a).has(a))
        return self._linear[arg]

    def _given(self, arg: sp.Expr, own: frozenset) -> tuple:
        """(mean, variance) of ``arg`` given every atom but ``own`` (in which it is linear)."""
        if (arg, own) not in self._given_law:
            mean, var = arg.xreplace({a: 0 for a in own}), sp.S.Zero
            for a in own:
                m, v, _ = self.law(self.affine_atoms[a][0])
                mean, var = mean + arg.diff(a) * m, var + arg.diff(a) ** 2 * v
            self._given_law[arg, own] = mean, var
        return self._given_law[arg, own]

    def _nested(self, factors: frozenset) -> sp.Expr:
        """E[product of ``factors``] (a group connected by shared atoms), one atom at a time: nested quadrature."""
        if factors not in self._nested_cache:
            inside, values = list(factors), []
            while inside:  # integrate the atom held by the fewest factors first (innermost)
                atoms = set().union(*(self._affine_in(f) for f in inside))
                a = min(atoms, key=lambda a: (sum(a in self._affine_in(f) for f in inside), a.name))
                held = sp.Mul(*[f for f in inside if a in self._affine_in(f)])
                inside = [f for f in inside if a not in self._affine_in(f)]
                m, v, _ = self.law(self.affine_atoms[a][0])
                value = E1(sp.Lambda(u, held.xreplace({a: u})), m, v)
                (inside if self._affine_in(value) else values).append(value)
            self._nested_cache[factors] = sp.Mul(*values)
        return self._nested_cache[factors]

    def _closure_argument(self, f: sp.Expr) -> tuple[sp.Expr, str]:
        """(a-copy argument, copy) of a nonlinearity ``f`` of a non-Gaussian quantity (memoized per factor)."""
        if f not in self._closure_args:
            if not isinstance(f, sp.Function):
                raise ClosureError(f"cannot take the expectation of {f}")
            arg = f.args[0]
            copies = {self._copy(s) for s in arg.free_symbols if s in self.atom_group}
            copy = copies.pop() if len(copies) == 1 else "mixed"
            if copy == "mixed":
                raise ClosureError(f"{self._where(f)}: a nonlinearity mixes the two input sequences")
            self._closure_args[f] = (arg if copy == "a" else arg.xreplace({v: k for k, v in self.to_b.items()}), copy)
        return self._closure_args[f]

    def _copy(self, atom: sp.Symbol) -> str:
        return (self.state_atoms.get(atom) or self.affine_atoms[atom])[1]

    def _where(self, e: sp.Expr) -> str:
        return self.where.get(e) or self.where.get(e.xreplace({v: k for k, v in self.to_b.items()}), self.cell.name)

    def _state_moment(self, factors: list[sp.Expr]) -> sp.Expr:
        atoms = []
        for f in factors:
            base, power = f.as_base_exp()
            if not (power.is_Integer and power > 0):
                raise ClosureError(f"cell {self.cell.name}: a non-integer power of a state")
            atoms += [self.state_atoms[base]] * int(power)
        if not atoms:
            return sp.S.One
        if len(atoms) == 1:
            return self.key("M", atoms[0][0])
        if len(atoms) > 2:
            if len({c for _, c in atoms}) > 1:
                raise ClosureError(
                    f"cell {self.cell.name}: a cross moment beyond second order ({' * '.join(s for s, _ in atoms)}) "
                    "is needed; only second-order cross moments are tracked"
                )
            # beyond second order (the Jacobian's m2): Isserlis' theorem under the previous state's Gaussian closure
            return gaussian_product_moment([s for s, _ in atoms], lambda s: self.key("M", s),
                                           lambda s, t: self.key("Q", s, t))
        (s, cs), (t, ct) = atoms
        return self.key("Q" if cs == ct else "C", s, t)

    def closure_law(self, arg: sp.Expr) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
        """Gaussian closure: (mean, variance, cross covariance) of a non-Gaussian argument X (a-copy)."""
        mean = self.expect(arg)
        return mean, self.expect(arg * arg) - mean**2, self.expect(arg * self.b_copy(arg)) - mean**2

    # ---------------------------------------------------------------- the map
    def nonlinearity_laws(self) -> dict[str, str]:
        """The law each nonlinearity of the cell gets under this closure, keyed "file:line tanh(argument)"."""
        names = {a: sp.Symbol(n, real=True) for n, a in self.atoms.items()}  # u_n_a -> u_n
        out = {}
        for node, attrs in self.cell.graph.nodes(data=True):
            if attrs["op"] in FUNCTIONS:
                e = self.expr[node]
                law = conditional.classify(e.args[0], self.affine_atoms, self.closure)
                out[f"{os.path.basename(attrs['where'])} {sp.sstr(e.xreplace(names))}"] = law
        return dict(sorted(out.items()))

    def run(self) -> MeanFieldMap:
        closure = self.closure
        for s in self.cell.states:
            self.key("M", s), self.key("Q", s, s), self.key("C", s, s)
        update: dict = {}
        done = 0
        while done < len(self.demanded):  # deriving an update may demand new keys
            kind, (s, t) = self.demanded[done][0], (self.demanded[done][1] * 2)[:2]
            new_s, new_t = self.new_state[s], self.new_state[t]
            if kind == "M":
                value = self.expect(new_s)
            elif kind == "Q":
                value = self.expect(new_s * new_t)
            else:
                value = self.expect(new_s * self.b_copy(new_t))
            update[self.keys[self.demanded[done]]] = value
            done += 1
        order = lambda k: (self.state_index[k[1][0]], self.state_index[k[1][-1]])
        diagonal = tuple(self.keys[k] for k in sorted((k for k in self.keys if k[0] != "C"), key=lambda k: (k[0] != "M", order(k))))
        cross = tuple(self.keys[k] for k in sorted((k for k in self.keys if k[0] == "C"), key=order))
        laws = {a.name: self.law(a.name) for a in self.cell.affines}
        return MeanFieldMap(
            cell=self.cell,
            closure=closure,
            chrono=self.chrono,
            diagonal=diagonal,
            cross=cross,
            update=update,
            laws=laws,
            # the chrono names are arguments only of a map that holds the chrono bias
            hyperparameters=tuple(v for k, v in self.hyper.items() if self.chrono or k not in chrono_names(self.cell)),
            nonlinearity_laws=self.nonlinearity_laws(),
        )

