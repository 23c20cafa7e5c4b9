"""The tracing ``ops`` namespace: a cell's ``step``, run once on :class:`Value` objects, records its computation graph.

Stage 1: :func:`symmft.cell.trace.load_cell` runs the cell file's ``step`` with a :class:`Tracer`; each operation
adds a node to a ``networkx.MultiDiGraph`` (its operation, name, whether it is Gaussian in the mean-field limit,
and the ``file:line`` that created it), and ``ops.affine`` records an :class:`~symmft.cell.graph.AffineMap`. Every
misuse of a cell value (a branch on it, a numpy function, division) is refused here with its ``file:line``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable

import networkx as nx

from symmft.cell.graph import INPUT, NONLINEARITIES, OPS, AffineInput, AffineMap
from symmft.errors import CellDefinitionError


class Value:
    """A traced value: arithmetic on it adds nodes to the tracer's graph."""

    __slots__ = ("tracer", "id")
    __array_ufunc__ = None  # numpy must not swallow a Value: np.tanh(v) fails loudly instead

    def __init__(self, tracer: "Tracer", node: int):
        self.tracer, self.id = tracer, node

    def _bin(self, op: str, a, b) -> "Value":
        return self.tracer.elementwise(op, a, b)

    def __add__(self, o): return self._bin("add", self, o)
    def __radd__(self, o): return self._bin("add", o, self)
    def __sub__(self, o): return self._bin("sub", self, o)
    def __rsub__(self, o): return self._bin("sub", o, self)
    def __mul__(self, o): return self._bin("mul", self, o)
    def __rmul__(self, o): return self._bin("mul", o, self)
    def __neg__(self): return self._bin("mul", -1.0, self)
    def __pos__(self): return self

    def __bool__(self):
        raise CellDefinitionError(f"{self.tracer.where()}: a cell value cannot be used in a Python condition (if/and/or)")

    def __float__(self):  # math.tanh(v), float(v)
        raise CellDefinitionError(
            f"{self.tracer.where()}: a cell value is a vector, not a number; apply "
            f"{', '.join('ops.' + n for n in NONLINEARITIES)} instead of math or numpy functions"
        )

    def _refuse(what: str, advice: str):
        def method(self, *_):
            raise CellDefinitionError(f"{self.tracer.where()}: {what} on a cell value is not supported: a cell value "
                                      f"is a random vector of the traced network, not a number; {advice}")

        return method

    _compare = "Python control flow is traced once, so a cell cannot branch on its values: write the two cases " \
        "as one expression with gates, e.g. g * a + (1 - g) * b with g = ops.sigmoid(...)"
    __lt__ = __le__ = __gt__ = __ge__ = _refuse("a comparison (<, <=, >, >=)", _compare)
    __eq__ = __ne__ = _refuse("a comparison (==, !=)", _compare)
    __hash__ = object.__hash__
    __abs__ = _refuse("abs()", "there is no ops.abs: use v * v for a magnitude, or a gate")
    __int__ = __index__ = __round__ = _refuse("int()/round()", "a cell value has no single numeric value")
    __iter__ = __getitem__ = __len__ = _refuse("iteration or indexing", "a cell value is one whole vector")
    del _refuse, _compare

    def __getattr__(self, name):
        if name.startswith("__"):  # protocol probes (numpy, copy) must see a plain AttributeError
            raise AttributeError(name)
        ops = ", ".join("ops." + o for o in OPS)
        hint = f"use ops.{name}(...)" if name in OPS else f"a cell may use {ops}, +, - and *"
        raise CellDefinitionError(f"{self.tracer.where()}: cell values have no attribute {name!r}; {hint}")

    def _unsupported(what: str, advice: str):
        def method(self, *_):
            raise CellDefinitionError(
                f"{self.tracer.where()}: {what} is not supported in a cell ({advice}); "
                f"only +, -, * and the ops {', '.join(OPS)} are"
            )

        return method

    __truediv__ = __rtruediv__ = _unsupported("division '/'", "to divide by a constant c, multiply by 1/c")
    __pow__ = __rpow__ = _unsupported("power '**'", "write v * v for a square")
    __matmul__ = __rmatmul__ = _unsupported("matrix product '@'", "random matrices enter only through ops.affine")
    del _unsupported


class Tracer:
    """The symbolic ``ops`` namespace: each call adds a node to ``graph``."""

    def __init__(self, path: Path):
        self.path = path
        self.graph = nx.MultiDiGraph()
        self.affines: list[AffineMap] = []

    def where(self) -> str:
        frame = inspect.currentframe()
        line = None
        while frame is not None:
            if Path(frame.f_code.co_filename) == self.path:
                line = frame.f_lineno
                break
            frame = frame.f_back
        return f"{self.path}:{line}" if line else str(self.path)

    def add(self, op: str, *, args=(), gaussian=False, where=None, **attrs) -> Value:
        node = self.graph.number_of_nodes()
        self.graph.add_node(node, op=op, gaussian=gaussian, where=where or self.where(), **attrs)
        for position, a in enumerate(args):
            self.graph.add_edge(a, node, position=position)
        return Value(self, node)

    def node_of(self, value, where: str) -> int:
        if isinstance(value, Value):
            if value.tracer is not self:
                raise CellDefinitionError(f"{where}: a value from another cell was used")
            return value.id
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return self.add("const", value=float(value), where=where).id
        raise CellDefinitionError(f"{where}: expected a cell value or a number, got {type(value).__name__} {value!r}")

    def _elementwise_arg(self, value, where: str) -> int:
        node = self.node_of(value, where)
        if self.graph.nodes[node]["op"] == "input":
            raise CellDefinitionError(f"{where}: the input x can only enter the cell through ops.affine(name, x, ...)")
        return node

    def elementwise(self, op: str, *values) -> Value:
        where = self.where()
        args = [self._elementwise_arg(v, where) for v in values]
        ops = [self.graph.nodes[a]["op"] for a in args]
        # An affine output plus/times constants stays Gaussian (the mean-field law of a linear map of it).
        gaussian = op in ("add", "sub", "mul") and sorted(
            "g" if self.graph.nodes[a]["gaussian"] else ("c" if o == "const" else "o") for a, o in zip(args, ops)
        ) == ["c", "g"]
        return self.add(op, args=args, gaussian=gaussian, where=where)

    def _nonlinearity(self, op: str) -> Callable[[Value], Value]:
        def apply(value) -> Value:
            where = self.where()
            arg = self._elementwise_arg(value, where)
            return self.add(op, args=[arg], where=where)

        return apply

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if name in NONLINEARITIES:
            return self._nonlinearity(name)
        raise CellDefinitionError(
            f"{self.where()}: unknown operation ops.{name}; a cell may use {', '.join('ops.' + o for o in OPS)}, "
            "+, -, * and numbers"
        )

    def affine(self, name: str, *vectors, **named_vectors) -> Value:
        """``u = sum_v M_v v + b``: the cell input ``x`` and state-derived vectors, each with its own matrix."""
        where = self.where()
        if isinstance(name, Value):
            raise CellDefinitionError(
                f"{where}: ops.affine needs a name first (the map's name: it names its hyperparameters sigma2_<name>, "
                f"nu2_<name>, mu_<name>), got a cell value: write e.g. ops.affine(\"u\", x, h)"
            )
        if not isinstance(name, str) or not name.isidentifier():
            raise CellDefinitionError(f"{where}: ops.affine needs a name (an identifier) first, got {name!r}")
        if any(a.name == name for a in self.affines):
            raise CellDefinitionError(f"{where}: affine map {name!r} is defined twice (first at {self._affine(name).where})")
        if not vectors and not named_vectors:
            raise CellDefinitionError(f"{where}: ops.affine({name!r}) multiplies no vector")
        items = []  # (vector name or None, node)
        for v in vectors:
            node = self.node_of(v, where)
            attrs = self.graph.nodes[node]
            items.append((attrs["name"] if attrs["op"] in ("input", "state") else None, node))
        for k, v in named_vectors.items():
            node = self.node_of(v, where)
            if (k == INPUT) != (self.graph.nodes[node]["op"] == "input"):  # "x" means the input, everywhere
                raise CellDefinitionError(
                    f"{where}: ops.affine({name!r}, ..., {k}=...): pass the input x positionally and do not name "
                    "another vector 'x'"
                )
            items.append((k, node))
        for vec, node in items:
            if self.graph.nodes[node]["op"] == "const":
                raise CellDefinitionError(f"{where}: ops.affine({name!r}) multiplies a constant; biases are implicit")
        derived = [vec for vec, node in items if self.graph.nodes[node]["op"] != "input"]
        if len(derived) > 1 and None in derived:
            raise CellDefinitionError(
                f"{where}: ops.affine({name!r}) multiplies several state-derived vectors; pass the derived ones by "
                f"keyword so each matrix has a name, e.g. ops.affine({name!r}, x, h, r=r)"
            )
        names = [vec for vec, _ in items]
        if len(set(names)) != len(names):
            raise CellDefinitionError(f"{where}: ops.affine({name!r}) multiplies {names} (a vector twice)")
        inputs = []
        for vec, node in items:
            if self.graph.nodes[node]["op"] == "input":
                hyper = f"sigma2_{name}"
            elif len(derived) == 1:
                hyper = f"nu2_{name}"
            else:
                hyper = f"nu2_{name}_{vec}"
            inputs.append((vec or "v", hyper, node))
        for _, hyper, _ in inputs:  # e.g. map "u" with vectors h, c (nu2_u_h) beside a map "u_h" (nu2_u_h)
            other = next((a for a in self.affines if hyper in (i.hyperparameter for i in a.inputs)), None)
            if other is not None:
                raise CellDefinitionError(
                    f"{where}: ops.affine({name!r}) would name its matrix variance {hyper}, which map {other.name!r} "
                    f"(at {other.where}) already uses; rename one of the maps"
                )
        out = self.add("affine", args=[n for *_, n in inputs], gaussian=True, name=name, where=where)
        for vec, hyper, node in inputs:
            self.graph.edges[node, out.id, 0].update(vector=vec, hyperparameter=hyper)
        self.affines.append(
            AffineMap(name, tuple(AffineInput(v, h, n) for v, h, n in inputs), out.id, where)
        )
        return out

    def _affine(self, name: str) -> AffineMap:
        return next(a for a in self.affines if a.name == name)
