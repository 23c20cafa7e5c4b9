"""Schedule of a cell's training step: which values are computed where, in which stage, and their derivatives.

Stage: ``Cell`` (graph) -> :class:`Schedule` -> :mod:`symmft.harness.codegen` (source text) -> :mod:`symmft.harness.plan`.

What: the cell graph is cut at its affine maps into *elementwise stages* separated by *matrix products*.

* **Phases.** A node with no state among its ancestors depends on the inputs only (``x``, an affine map of ``x``
  alone, minimalRNN's ``z = tanh(W_z x + b_z)``): it belongs to the *pre* phase, computed once for all T*B rows
  before the time loop, like the input projections W x of every map. Everything else is the *step* phase.
* **Levels.** Within a phase, a previous state (or any pre value, seen from the step phase) has level 0; an
  affine map has level 1 + the highest level among its vectors of the same phase (vectors of the pre phase are
  hoisted into the big product before the loop); an elementwise value has the highest level of what it reads.
  Per step the program is: elementwise stage 0, products of level 1, stage 1, products of level 2, ... so a map
  that consumes an elementwise result (GRU reset-before ``U_n (r*h)``) gets a stage of its own before it.
* **Members.** Only some elementwise values are stored (*members* of their stage): every nonlinearity (its
  output is what the backward needs: sigmoid' = y(1-y), tanh' = 1-y^2), every vector an affine map multiplies,
  and every new state. Sums and products in between are inlined into the expressions that read them.
* **Derivatives.** sympy differentiates each member's definition; reverse accumulation over a stage's members
  gives the cotangent of each stage input (previous states, affine outputs, lower stages' members) as one closed
  expression in stored values and incoming cotangents, which ``sympy.cse`` then shares.

Nothing here knows about numpy or CuPy; the emitter prints the expressions. Cells this cannot schedule raise
:class:`~symmft.errors.CellDefinitionError` naming the cell file line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import networkx as nx
import sympy as sp

from symmft.cell.graph import NONLINEARITIES, Cell
from symmft.errors import CellDefinitionError
from symmft.theory.expectation import FUNCTIONS
_NUMERIC = {"sigmoid": lambda v: 1.0 / (1.0 + math.exp(-v)), "tanh": math.tanh, "erf": math.erf}
PRE, STEP = "pre", "step"
BIAS = "bias"


@dataclass(frozen=True)
class Value:
    """A stored value stages read. ``kind``: "state" (previous state), "affine" (a map's output), "member"
    (a stored elementwise value), "input" (x). ``name`` is both the sympy symbol and the code identifier."""

    name: str
    kind: str
    phase: str
    node: int | None = None
    state: str | None = None  # state: its name; member: the state it is the new value of (stored as S[t+1])
    affine: str | None = None

    @property
    def symbol(self) -> sp.Symbol:
        return sp.Symbol(self.name, real=True)


@dataclass
class Member:
    """A stored elementwise value: ``y = function(argument)`` or ``y = expression`` (``function`` None)."""

    value: Value
    function: str | None
    expression: sp.Expr  # the argument of the nonlinearity, or the value itself
    where: str
    level: int = 0

    def definition(self) -> sp.Expr:
        return FUNCTIONS[self.function](self.expression) if self.function else self.expression

    def partial(self, symbol: sp.Symbol) -> sp.Expr:
        """d(member)/d(symbol), the nonlinearity's derivative written through the member's own value."""
        inner = sp.diff(self.expression, symbol)
        if not self.function or inner == 0:
            return inner
        a = sp.Dummy("a", real=True)
        f = FUNCTIONS[self.function]
        outer = sp.diff(f(a), a).subs(f(a), self.value.symbol).evalf().subs(a, self.expression)  # 2/sqrt(pi) -> float
        return outer * inner


@dataclass
class Stage:
    """One fused elementwise stage: its members in order and, per input, the cotangent expression.

    ``pieces[member]`` are the incoming cotangent names of a member, summed: ``G<k>`` (cotangent accumulated from
    products and later stages), ``C_<s>`` (the carried cotangent of new state s), ``dout`` (d loss/d output).
    ``gradients[value]`` is d loss/d value in stored values and pieces after ``cse``'s ``shared`` assignments.
    """

    phase: str
    level: int
    members: list[Member]
    inputs: list[Value] = field(default_factory=list)
    pieces: dict[str, list[str]] = field(default_factory=dict)
    shared: list[tuple[sp.Symbol, sp.Expr]] = field(default_factory=list)
    gradients: dict[str, sp.Expr] = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)  # stored values the backward reads

    @property
    def name(self) -> str:
        return f"{self.phase}{self.level}"

    def derive(self, pieces: dict[str, list[str]]) -> None:
        """Reverse accumulation over the members; fills pieces, shared, gradients and reads."""
        self.pieces = pieces
        bar: dict[str, sp.Expr] = {}
        for k, m in reversed(list(enumerate(self.members))):
            total = sp.Add(*(sp.Symbol(p, real=True) for p in pieces.get(m.value.name, [])))
            for later in self.members[k + 1:]:
                total += bar[later.value.name] * later.partial(m.value.symbol)
            bar[m.value.name] = total
        grads = {}
        for v in self.inputs:
            g = sp.Add(*(bar[m.value.name] * m.partial(v.symbol) for m in self.members))
            if g != 0:
                grads[v.name] = g
        names = list(grads)
        shared, reduced = sp.cse([grads[k] for k in names], symbols=sp.numbered_symbols("e"))
        self.shared, self.gradients = shared, dict(zip(names, reduced))
        free = set().union(*(e.free_symbols for e in [*reduced, *(s for _, s in shared)])) if names else set()
        stored = [m.value.name for m in self.members] + [v.name for v in self.inputs]
        self.reads = [n for n in stored if sp.Symbol(n, real=True) in free]


@dataclass(frozen=True)
class Product:
    """``buffer[:, first:first+count maps] += vector @ W^T`` with W the maps' matrices for ``vector`` stacked."""

    buffer: tuple[str, int]  # (phase, level) of the maps' affine buffer
    vector: Value
    key: str  # the vector's name in parameter keys ("x", "h", "z", ...)
    first: int  # column block (in units of n) of the first map
    maps: tuple[str, ...]
    hoisted: bool  # a pre-phase vector feeding step-phase maps: done once before the loop over all rows

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(f"{a}.{self.key}" for a in self.maps)


@dataclass
class Schedule:
    """Everything the emitter needs; see the module docstring."""

    cell: Cell
    states: tuple[str, ...]
    output: str
    buffers: dict[tuple[str, int], list[str]]  # (phase, level) -> affine map names in column order
    stages: dict[tuple[str, int], Stage]
    products: list[Product]
    members: dict[str, Member]
    values: dict[str, Value]
    parameters: dict[str, tuple[str, ...]]  # key -> shape in "n", "m"

    def levels(self, phase: str) -> list[int]:
        keys = set(self.stages) | set(self.buffers)
        return sorted({lvl for ph, lvl in keys if ph == phase})

    def column(self, affine: str) -> tuple[tuple[str, int], int]:
        for buf, maps in self.buffers.items():
            if affine in maps:
                return buf, maps.index(affine)
        raise KeyError(affine)


# ---------------------------------------------------------------- building


def _args(g: nx.MultiDiGraph, node) -> list:
    return [u for u, _, d in sorted(g.in_edges(node, data=True), key=lambda e: e[2]["position"])]


def build(cell: Cell) -> Schedule:
    """Schedule ``cell``'s forward and backward step (see the module docstring)."""
    g = cell.graph
    for a in cell.affines:
        for inp in a.inputs:
            if inp.vector == BIAS:
                raise CellDefinitionError(f"{a.where}: ops.affine({a.name!r}) names a vector 'bias', which the "
                                          "generated code uses for the map's bias; rename the vector")
    order = [v for v in nx.topological_sort(g) if g.nodes[v]["op"] != "output"]
    has_state, has_input = {}, {}
    for v in order:
        op, args = g.nodes[v]["op"], _args(g, v)
        has_state[v] = op == "state" or any(has_state[a] for a in args)
        has_input[v] = op == "input" or any(has_input[a] for a in args)
    phase = {v: STEP if has_state[v] else PRE for v in order}
    constant = {v for v in order if not has_state[v] and not has_input[v]}
    vectors_of = {a.node: a for a in cell.affines}
    feeds_affine = {inp.node for a in cell.affines for inp in a.inputs}
    new_state = {}  # node -> first state it is the new value of
    for s in cell.states:
        new_state.setdefault(cell.outputs[s], s)

    values: dict[str, Value] = {}
    for s in cell.states:
        values[f"s_{s}"] = Value(f"s_{s}", "state", STEP, state=s)
    for a in cell.affines:
        values[f"u_{a.name}"] = Value(f"u_{a.name}", "affine", phase[a.node], node=a.node, affine=a.name)
    values["x"] = Value("x", "input", PRE)

    # members: nonlinearities, affine vectors and new states (elementwise, not constant)
    member_nodes = []
    for v in order:
        op = g.nodes[v]["op"]
        if op in ("input", "state", "const", "affine") or v in constant:
            if v in constant and (v in feeds_affine or v in new_state):
                raise CellDefinitionError(f"{g.nodes[v]['where']}: this value depends on neither x nor a state; "
                                          "an affine map or a new state must depend on the input or a state")
            continue
        if op in NONLINEARITIES or v in feeds_affine or (v in new_state and phase[v] == STEP):
            member_nodes.append(v)
    for v in member_nodes:
        s = new_state.get(v) if phase[v] == STEP else None
        values[f"y{v}"] = Value(f"y{v}", "member", phase[v], node=v, state=s)

    refs: dict = {}

    def ref(v) -> sp.Expr:
        if v in refs:
            return refs[v]
        op = g.nodes[v]["op"]
        if v in constant:
            r = sp.Float(_constant(g, v))
        elif op == "state":
            r = values[f"s_{g.nodes[v]['name']}"].symbol
        elif op == "affine":
            r = values[f"u_{g.nodes[v]['name']}"].symbol
        elif f"y{v}" in values:
            r = values[f"y{v}"].symbol
        else:
            r = _combine(op, [ref(a) for a in _args(g, v)])
        refs[v] = r
        return r

    members: dict[str, Member] = {}
    for v in member_nodes:
        op, args = g.nodes[v]["op"], _args(g, v)
        where = g.nodes[v]["where"]
        if op in NONLINEARITIES:
            members[f"y{v}"] = Member(values[f"y{v}"], op, ref(args[0]), where)
        else:
            members[f"y{v}"] = Member(values[f"y{v}"], None, _combine(op, [ref(a) for a in args]), where)
    # a new state that is not a stored step value of its own (a previous state, an affine output, a pre value,
    # or the new value of another state too) is copied
    for s in cell.states:
        v = cell.outputs[s]
        if f"y{v}" in values and values[f"y{v}"].state == s:
            continue
        name = f"y_copy_{s}"
        values[name] = Value(name, "member", STEP, node=None, state=s)
        members[name] = Member(values[name], None, ref(v), g.nodes[f"{s}'"]["where"])

    # levels
    by_symbol = {val.symbol: val for val in values.values()}
    level: dict[str, int] = {}

    def level_of(name: str, seen=()) -> int:
        if name in level:
            return level[name]
        val = values[name]
        if val.kind in ("state", "input"):
            lvl = 0
        elif val.kind == "affine":
            amap = vectors_of[val.node]
            lvl = 1 + max([level_of(_vector_value(g, inp.node, values, amap.where).name)
                           for inp in amap.inputs if phase_of(inp.node) == val.phase] + [0])
        else:
            syms = members[name].expression.free_symbols
            lvl = max([level_of(by_symbol[s].name) for s in syms if by_symbol[s].phase == val.phase] + [0])
        level[name] = lvl
        return lvl

    def phase_of(node) -> str:
        return phase[node]

    for name in values:
        level_of(name)

    stages: dict[tuple[str, int], Stage] = {}
    for name, m in members.items():  # insertion order is topological (copies last)
        m.level = level[name]
        stages.setdefault((m.value.phase, m.level), Stage(m.value.phase, m.level, [])).members.append(m)
    buffers: dict[tuple[str, int], list[str]] = {}
    for a in cell.affines:
        val = values[f"u_{a.name}"]
        buffers.setdefault((val.phase, level[val.name]), []).append(a.name)
    for st in stages.values():
        own = {m.value.symbol for m in st.members}
        syms = set().union(*(m.expression.free_symbols for m in st.members)) - own
        st.inputs = sorted((by_symbol[s] for s in syms), key=lambda val: val.name)

    products = []
    for buf, maps in buffers.items():
        runs: dict[str, list] = {}
        for col, amap_name in enumerate(maps):
            amap = cell.affine(amap_name)
            for inp in amap.inputs:
                vec = _vector_value(g, inp.node, values, amap.where)
                runs.setdefault((vec.name, inp.vector), []).append((col, amap_name))
        for (vec_name, key), cols in runs.items():
            vec = values[vec_name]
            start = 0
            for i in range(1, len(cols) + 1):  # split into runs of adjacent columns
                if i == len(cols) or cols[i][0] != cols[i - 1][0] + 1:
                    run = cols[start:i]
                    hoisted = buf[0] == STEP and vec.phase == PRE
                    products.append(Product(buf, vec, key, run[0][0], tuple(a for _, a in run), hoisted))
                    start = i

    _derive(cell, stages, products)
    parameters = {}
    for a in cell.affines:
        for inp in a.inputs:
            parameters[f"{a.name}.{inp.vector}"] = ("n", "m") if inp.vector == "x" else ("n", "n")
        parameters[f"{a.name}.{BIAS}"] = ("n",)
    return Schedule(cell, cell.states, cell.states[-1], buffers, stages, products, members, values, parameters)


def _derive(cell: Cell, stages: dict, products: list[Product]) -> None:
    """Derive every stage in backward order, so a member's accumulated cotangent G is a piece of its stage's
    backward exactly when some consumer (a product or a later stage) contributes to it."""
    consumed = {p.vector.name for p in products}
    done: list[Stage] = []
    for ph in (STEP, PRE):
        for lvl in sorted((lvl for p, lvl in stages if p == ph), reverse=True):
            st = stages[ph, lvl]
            pieces = {}
            for m in st.members:
                name, val = m.value.name, m.value
                ps = []
                if val.phase == STEP and val.state is not None:
                    ps.append(f"C_{val.state}")
                    if val.state == cell.states[-1]:
                        ps.append("dout")
                if name in consumed or any(name in d.gradients for d in done):
                    ps.append(f"G{name[1:]}")
                pieces[name] = ps
            st.derive(pieces)
            done.append(st)


def _vector_value(g, node, values, where) -> Value:
    op = g.nodes[node]["op"]
    if op == "input":
        return values["x"]
    if op == "state":
        return values[f"s_{g.nodes[node]['name']}"]
    if f"y{node}" in values:
        return values[f"y{node}"]
    raise CellDefinitionError(f"{where}: an affine map multiplies a value the code generator cannot store "
                              f"({op} node {node})")  # unreachable for traced cells: vectors are members


def _combine(op: str, args: list[sp.Expr]) -> sp.Expr:
    if op == "add":
        return args[0] + args[1]
    if op == "sub":
        return args[0] - args[1]
    if op == "mul":
        return args[0] * args[1]
    if op in FUNCTIONS:
        return FUNCTIONS[op](args[0])
    raise CellDefinitionError(f"the code generator does not know operation {op!r}")


def _constant(g, v) -> float:
    op = g.nodes[v]["op"]
    if op == "const":
        return g.nodes[v]["value"]
    a = [_constant(g, u) for u in _args(g, v)]
    if op in _NUMERIC:
        return _NUMERIC[op](a[0])
    return {"add": lambda: a[0] + a[1], "sub": lambda: a[0] - a[1], "mul": lambda: a[0] * a[1]}[op]()
