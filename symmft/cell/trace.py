"""Cells: a gated recurrent cell file, loaded and traced into a :class:`~symmft.cell.graph.Cell`.

A cell file is plain Python (see ``cells/lstm.py``)::

    STATE = ("c", "h")
    def step(x, c, h, ops):
        ...
        return c_new, h_new

``ops`` is a namespace of operations. :func:`load_cell` checks the file (STATE, ``step``'s signature, what it
returns), runs ``step`` once with a *tracing* ``ops`` (:mod:`symmft.cell.tracer`) whose values are graph nodes,
and returns a :class:`Cell` (:mod:`symmft.cell.graph`) holding that ``networkx.MultiDiGraph`` (every node records
its operation, name, whether it is Gaussian in the mean-field limit and the ``file:line`` that created it) and the
step function itself, so the simulator can run the very same file with numeric ``ops``.

This module is the first stage: cell file -> ``Cell``. It imports nothing else from symmft but errors and the
cell package. The names of :mod:`symmft.cell.graph` are importable from here too.
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
from pathlib import Path
from typing import Callable

from symmft.cell.graph import INPUT, NONLINEARITIES, OPS, AffineInput, AffineMap, Cell, primary_states
from symmft.cell.tracer import Tracer, Value
from symmft.errors import CellDefinitionError

__all__ = ["BUILTIN_DIR", "INPUT", "NONLINEARITIES", "OPS", "AffineInput", "AffineMap", "Cell", "Value",
           "available_cells", "load_cell", "primary_states", "resolve_cell_path"]


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
    tracer = Tracer(path)
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
