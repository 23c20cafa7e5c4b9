"""Cells: a gated recurrent cell file, traced into a computation graph.

A cell file is plain Python (see ``cells/lstm.py``)::

    STATE = ("c", "h")
    def step(x, c, h, ops):
        ...
        return c_new, h_new

``ops`` is a namespace of operations. :func:`load_cell` runs ``step`` once with a *tracing* ``ops`` whose
values are graph nodes; the result is a :class:`Cell` holding a ``networkx.MultiDiGraph`` (every node records its
operation, name, whether it is Gaussian in the mean-field limit and the ``file:line`` that created it) and the
step function itself, so the simulator can run the very same file with numeric ``ops``.

This module is the first stage: cell file -> ``Cell``. It imports nothing else from symmft but errors.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import importlib.util
import inspect
import keyword
import traceback
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import networkx as nx

from symmft.errors import CellDefinitionError

#: Elementwise nonlinearities a cell may use; each is defined once more in every interpreter (meanfield, simulate).
NONLINEARITIES = ("sigmoid", "tanh", "erf")
#: Every name an ``ops`` namespace offers to a cell file.
OPS = ("affine",) + NONLINEARITIES


def _builtin_dir() -> Path:
    """The top-level ``cells/`` of a source checkout, else the ``symmft.cells`` package an installed wheel ships
    (pyproject maps that package to ``cells/``)."""
    checkout = Path(__file__).resolve().parents[2] / "cells"
    if (checkout / "lstm.py").is_file():
        return checkout
    spec = importlib.util.find_spec("symmft.cells")
    return Path(next(iter(spec.submodule_search_locations))) if spec else checkout


#: Where built-in cells live (``load_cell("lstm")``).
BUILTIN_DIR = _builtin_dir()
INPUT = "x"


@dataclass(frozen=True)
class AffineInput:
    """One vector multiplied by its own random matrix inside an affine map.

    ``vector`` is ``"x"`` for the cell input (weights ~ N(0, sigma2_k/m)) or a state-derived name (weights ~
    N(0, nu2/n)); ``hyperparameter`` is the variance name that scales that matrix; ``node`` the graph node.
    """

    vector: str
    hyperparameter: str
    node: int


@dataclass(frozen=True)
class AffineMap:
    """``u^k = sum_v M_kv v + b_k``: one independent random matrix per input vector plus a bias vector."""

    name: str
    inputs: tuple[AffineInput, ...]
    node: int
    where: str

    @property
    def mean(self) -> str:
        return f"mu_{self.name}"

    @property
    def bias_variance(self) -> str:
        return f"rho2_{self.name}"


@dataclass(frozen=True)
class Cell:
    """A traced cell: its graph, state names, affine maps and the original step function."""

    name: str
    path: Path
    file_hash: str
    states: tuple[str, ...]
    graph: nx.MultiDiGraph  # multi: in ``v * v`` both arguments are edges from v
    outputs: dict[str, int]  # new state name -> node
    affines: tuple[AffineMap, ...]
    step: Callable
    doc: str

    def hyperparameter_names(self) -> tuple[str, ...]:
        """Every weight/bias hyperparameter of the cell, in definition order (without q_x, c_x)."""
        names = []
        for a in self.affines:
            names += [i.hyperparameter for i in a.inputs] + [a.mean, a.bias_variance]
        return tuple(names)

    def affine(self, name: str) -> AffineMap:
        return next(a for a in self.affines if a.name == name)

    def where(self, node: int) -> str:
        return self.graph.nodes[node]["where"]


def primary_states(cell: Cell) -> tuple[str, ...]:
    """States whose new value depends on no other state's new value (LSTM: ``("c",)``; one-state cells: all).

    The others are *derived* (the LSTM's h' = o*tanh(c')); the memory Jacobian is taken over the primary ones.
    """

    def derived(state: str) -> bool:
        node = cell.outputs[state]
        upstream = nx.ancestors(cell.graph, node) | {node}
        return any(cell.outputs[o] in upstream for o in cell.states if o != state)

    primary = tuple(s for s in cell.states if not derived(s))
    if not primary:
        raise CellDefinitionError(f"{cell.path}: every state's new value depends on another state's new value "
                                  f"({', '.join(cell.states)}), so no state is primary; return distinct values")
    return primary


# ---------------------------------------------------------------- loading


def available_cells() -> list[str]:
    """Names of the built-in cells (files in ``cells/``)."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.py") if not p.name.startswith("_"))


def resolve_cell_path(spec: str | Path) -> Path:
    """A built-in cell name (``lstm``) or a path to a cell file -> the file's path."""
    p = Path(spec)
    if p.suffix == ".py" or p.parent != Path("."):
        if not p.is_file():
            raise CellDefinitionError(f"cell file {str(p)!r} does not exist")
        return p.resolve()
    builtin = BUILTIN_DIR / f"{spec}.py"
    if builtin.is_file():
        return builtin
    close = difflib.get_close_matches(str(spec), available_cells(), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise CellDefinitionError(
        f"unknown cell {str(spec)!r}: {hint}built-in cells are {', '.join(available_cells())}; "
        "or pass the path of a cell file (e.g. my_cells/janet.py)"
    )


def _load_module(path: Path) -> types.ModuleType:
    try:
        source = path.read_text()
    except UnicodeDecodeError:
        raise CellDefinitionError(f"{path}: not a cell file (not UTF-8 text: a binary file?); a cell file is Python "
                                  "source defining STATE and step(x, <states>, ops), like cells/lstm.py") from None
    except OSError as e:
        raise CellDefinitionError(f"{path}: cannot read the cell file: {e.strerror or e}") from None
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as e:
        if e.lineno is None:  # null bytes: a binary file that happens to decode as UTF-8
            raise CellDefinitionError(f"{path}: not a cell file ({e.msg}); a cell file is Python source") from None
        raise CellDefinitionError(f"{path}:{e.lineno}: syntax error in cell file: {e.msg}") from None
    except ValueError as e:  # null bytes, before Python 3.12
        raise CellDefinitionError(f"{path}: not a cell file ({e}); a cell file is Python source") from None
    module = types.ModuleType(f"symmft_cell_{path.stem}")
    module.__file__ = str(path)
    try:
        exec(code, module.__dict__)
    except Exception as e:  # the cell file itself failed at import
        raise CellDefinitionError(f"{_cell_frame(e, path)}: cell file failed to load: {type(e).__name__}: {e}") from None
    return module


def _cell_frame(exc: BaseException, path: Path) -> str:
    """``file:line`` of the innermost traceback frame inside the cell file."""
    where = str(path)
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename) == path:
            where = f"{path}:{frame.lineno}"
    return where


def _return_line(path: Path, step: Callable) -> int:
    """Line of ``step``'s return statement, for errors about what it returns.

    Read from the file's syntax tree (no runtime hooks). With no return statement or several of them, the line
    of ``def step``.
    """
    code = step.__code__
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.name != code.co_name:
            continue
        if code.co_firstlineno in (node.lineno, *(d.lineno for d in node.decorator_list)):
            returns, todo = [], list(node.body)
            while todo:  # the function's own returns, not those of nested functions or classes
                n = todo.pop()
                if isinstance(n, ast.Return):
                    returns.append(n.lineno)
                elif not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                    todo.extend(ast.iter_child_nodes(n))
            return returns[0] if len(returns) == 1 else node.lineno
    return code.co_firstlineno


def _assignment_line(path: Path, name: str) -> int | str:
    """Line of the last top-level assignment to ``name`` in the cell file ("?" when there is none)."""
    lines = [n.lineno for n in ast.parse(path.read_text()).body if isinstance(n, ast.Assign)
             and any(isinstance(t, ast.Name) and t.id == name for t in n.targets)]
    return lines[-1] if lines else "?"


def load_cell(spec: str | Path) -> Cell:
    """Load and trace a cell by built-in name or file path.

    Raises :class:`CellDefinitionError` naming ``file:line`` for any problem in the file.
    """
    path = resolve_cell_path(spec)
    module = _load_module(path)
    states = getattr(module, "STATE", None)
    if isinstance(states, str):
        raise CellDefinitionError(
            f"{path}:{_assignment_line(path, 'STATE')}: STATE is the string {states!r}, not a tuple of state names "
            f"(parentheses alone make no tuple): write STATE = ({states!r},) with the comma"
        )
    if not isinstance(states, (tuple, list)) or not states or not all(isinstance(s, str) for s in states):
        raise CellDefinitionError(f"{path}: the cell file must define STATE, a tuple of state names, e.g. STATE = (\"h\",)")
    states = tuple(states)
    for s in states:
        if not s.isidentifier() or keyword.iskeyword(s) or s in (INPUT, "ops"):
            raise CellDefinitionError(f"{path}: state name {s!r} must be an identifier other than 'x' and 'ops'")
    if len(set(states)) != len(states):
        raise CellDefinitionError(f"{path}: STATE {states} names a state twice")
    step = getattr(module, "step", None)
    if not callable(step):
        raise CellDefinitionError(f"{path}: the cell file must define a function step(x, {', '.join(states)}, ops)")
    line = step.__code__.co_firstlineno
    params = list(inspect.signature(step).parameters)
    expected = [INPUT, *states, "ops"]
    if params != expected:
        raise CellDefinitionError(
            f"{path}:{line}: step must take ({', '.join(expected)}) to match STATE; it takes ({', '.join(params)})"
        )
    tracer = _Tracer(path)
    x = tracer.add("input", name=INPUT, where=f"{path}:{line}")
    prev = [tracer.add("state", name=s, where=f"{path}:{line}") for s in states]
    try:
        result = step(x, *prev, tracer)
    except CellDefinitionError:
        raise
    except Exception as e:
        hint = ""
        if isinstance(e, TypeError) and "does not support ufuncs" in str(e):
            hint = f"; numpy functions cannot act on cell values: use {', '.join('ops.' + n for n in NONLINEARITIES)}"
        raise CellDefinitionError(f"{_cell_frame(e, path)}: error while tracing step: {type(e).__name__}: {e}{hint}") from None
    returned = f"{path}:{_return_line(path, step)}"  # errors about the returned values point at the return
    if result is None:
        raise CellDefinitionError(f"{returned}: step returns nothing; it must return the new {', '.join(states)}")
    if not isinstance(result, tuple):
        result = (result,)
    if len(result) != len(states):
        raise CellDefinitionError(
            f"{returned}: step returns {len(result)} value{'s' * (len(result) != 1)} but STATE has {len(states)} "
            f"({', '.join(states)})"
        )
    outputs = {}
    for s, value, p in zip(states, result, prev):
        node = tracer.node_of(value, returned)
        if node == p.id:
            raise CellDefinitionError(f"{returned}: state {s!r} is never updated (step returns it unchanged)")
        if tracer.graph.nodes[node]["op"] == "input":
            raise CellDefinitionError(f"{returned}: state {s!r} is set to the raw input x; pass x through ops.affine")
        outputs[s] = node
        tracer.graph.add_node(f"{s}'", op="output", name=s, gaussian=False, where=returned)
        tracer.graph.add_edge(node, f"{s}'", position=0)
    return Cell(
        name=path.stem,
        path=path,
        file_hash=hashlib.sha256(path.read_bytes()).hexdigest(),
        states=states,
        graph=tracer.graph,
        outputs=outputs,
        affines=tuple(tracer.affines),
        step=step,
        doc=(module.__doc__ or "").strip(),
    )


# ---------------------------------------------------------------- tracing


class Value:
    """A traced value: arithmetic on it adds nodes to the tracer's graph."""

    __slots__ = ("tracer", "id")
    __array_ufunc__ = None  # numpy must not swallow a Value: np.tanh(v) fails loudly instead

    def __init__(self, tracer: "_Tracer", node: int):
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


class _Tracer:
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
