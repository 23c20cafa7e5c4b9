"""Code generation: a cell's exact forward and backward (BPTT) training step, as readable Python source.

Stage: ``Cell`` -> :mod:`symmft.harness.schedule` (stages, products, sympy derivatives) -> :func:`generate` (this module,
source text) -> :mod:`symmft.harness.plan` (``load_plan``: cached, imported, run on numpy or CuPy).

Using it (the API training code builds on)::

    from symmft.harness.plan import load_plan
    plan = load_plan("lstm", xp="numpy", dtype="float32")   # or a cell file path; xp "cupy" on a GPU
    plan.states, plan.output                      # ("c", "h"), "h": the state read out (last of STATE)
    shapes = plan.param_shapes(width, input_dim)  # {"i.x": (n, m), "i.h": (n, n), "i.bias": (n,), ...}
    params = plan.params_from_network(Network(cell, hyperparameters, width=n, input_dim=m))  # or your own arrays
    outputs, tape = plan.forward(params, xs, initial=None)   # xs (T, B, m) -> outputs (T, B, n)
    grads = plan.backward(params, tape, d_outputs, d_final=None, input_gradient=False)

* parameters: ``"{map}.{vector}"`` -> matrix stored (out, in) like PyTorch and ``symmft.network.simulate.Network``
  (``Network.matrices[map, vector]``): (n, m) for the input ``x``, (n, n) for a state or named vector
  (minimalRNN ``"u.z"``); ``"{map}.bias"`` -> (n,) (``Network.biases[map]`` flattened).
* ``forward``: ``initial`` maps state -> (B, n) (zeros by default); ``outputs[t]`` is the output state after step
  t+1 (a view into the tape); ``tape`` is a dict of arrays (``tape["S_c"]`` (T+1, B, n) holds every state).
* ``backward``: ``d_outputs`` (T, B, n) = dL/d outputs (None = zeros), ``d_final`` = {state: dL/d final state}
  (missing = zeros); returns dL/d params with the keys of ``params`` (+ ``"x"``, dL/d xs (T, B, m), with
  ``input_gradient=True``). Exact: equal to PyTorch autograd to rounding (tests/test_codegen.py).
* numpy or CuPy arrays and float32 or float64, fixed per plan (inputs are converted to the plan's dtype).

The generated module (``symmft codegen CELL`` prints it) holds

* ``forward(xp, K, params, xs, initial)`` and ``backward(xp, K, params, tape, d_outputs, d_final,
  input_gradient)``: the driver, the same for numpy and CuPy (``xp`` is the array module). Forward: one big
  product (T*B, m) @ W_x^T for the input projections of all maps before the loop (and everything that depends on
  the inputs only, e.g. minimalRNN's z); per step the recurrent products ``xp.matmul`` (BLAS / cuBLAS) and one
  call per elementwise stage. Backward per step, in reverse: each stage's derivative call, then the products
  that carry cotangents to the states; the weight gradients are accumulated after the loop as large products
  (dU^T (T*B, n_maps) @ V (T*B, d)) over the stored per-step pre-activation gradients.
* ``numpy_stages()``: the elementwise stages as numpy functions (vectorized expressions, ``out=`` writes);
* ``cupy_stages(cupy)``: the same stages as fused ``cupy.ElementwiseKernel``s, one per stage and direction, their
  CUDA bodies printed from the same sympy expressions (``CUDA_STAGES``).

The tape keeps every state (T+1, B, n), every stored elementwise value (gates, tanh(c'), ...: (T, B, n)) and the
affine buffers (T, B, n_maps*n); the backward overwrites an affine buffer with its gradient when no derivative
reads the pre-activations (LSTM, vanilla RNN), so backward may be called again on the same tape.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from symmft.backend import BACKENDS
from symmft.cell.graph import Cell
from symmft.cell.trace import load_cell
from symmft.harness.kernel import cuda_stage_source, numpy_stage_source
from symmft.harness.schedule import PRE, STEP, Product, Schedule, Stage, Value, build

def _generator_hash() -> str:
    """sha256 of the generator's own source (this module, the scheduler, the kernel printer, and the tracing and
    symbolic functions they print): the cache key changes with any of them. Read through each module's own
    ``__file__``, so it works the same in a checkout and in an installed wheel."""
    from symmft.cell import trace
    from symmft.harness import kernel, schedule
    from symmft.theory import expectation

    h = hashlib.sha256()
    for module in (sys.modules[__name__], kernel, schedule, expectation, trace):
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()


#: Identifies the generator version in cache keys and in the generated module.
GENERATOR_VERSION = _generator_hash()[:12]


def generate(cell: Cell | str, backends: tuple[str, ...] = BACKENDS) -> str:
    """Python source of the training step of ``cell`` (a ``Cell``, built-in name or path); ``backends`` chooses
    which stage implementations it contains (the driver is shared)."""
    cell = cell if isinstance(cell, Cell) else load_cell(cell)
    return _Emitter(build(cell), backends).source()


# ---------------------------------------------------------------- the emitter


def _cols(first: int, count: int) -> str:
    def at(k):
        return "" if k == 0 else ("n" if k == 1 else f"{k} * n")

    return f"{at(first)}:{at(first + count)}"


class _Emitter:
    def __init__(self, schedule: Schedule, backends: tuple[str, ...]):
        self.s, self.backends = schedule, backends
        self.weights: dict[tuple, str] = {}  # (buffer, key, first, count) -> stacked weight name
        for p in schedule.products:
            self.weights.setdefault((p.key, p.maps), f"W{len(self.weights)}")
        self.accumulate: dict[str, dict[str, bool]] = {}  # stage -> gradient -> adds to earlier writes
        self.alias = {buf: not any(f"u_{a}" in st.reads for st in schedule.stages.values() for a in maps)
                      for buf, maps in schedule.buffers.items()}

    # ---- names of arrays in the generated code
    @staticmethod
    def buf(b: tuple[str, int]) -> str:
        return f"{'U' if b[0] == STEP else 'P'}{b[1]}"

    def member_array(self, v: Value) -> str:
        return f"{'Y' if v.phase == STEP else 'Z'}{v.name[1:]}"

    def value_ref(self, v: Value, context: str) -> str:
        """Code reading value v at step t (context STEP) or for all rows (context PRE)."""
        if v.kind == "state":
            return f"S_{v.state}[t]"
        if v.kind == "affine":
            b, col = self.s.column(v.affine)
            if context == PRE:
                return f"{self.buf(b)}[:, {_cols(col, 1)}]"
            return f"{self.buf(b)}{'_t' if b[0] == PRE else ''}[t, :, {_cols(col, 1)}]"
        if v.phase == STEP:
            return f"S_{v.state}[t + 1]" if v.state else f"{self.member_array(v)}[t]"
        return self.member_array(v) if context == PRE else f"{self.member_array(v)}_t[t]"

    def cotangent(self, v: Value, context: str) -> tuple[str, str]:
        """(code, identity for first-writer tracking) of d loss / d v."""
        if v.kind == "state":
            return f"Cp_{v.state}", f"Cp_{v.state}"
        if v.kind == "affine":
            b, col = self.s.column(v.affine)
            ident = f"d{self.buf(b)}:{col}"
            if context == PRE:
                return f"d{self.buf(b)}[:, {_cols(col, 1)}]", ident
            return f"d{self.buf(b)}{'_t' if b[0] == PRE else ''}[t, :, {_cols(col, 1)}]", ident
        if v.phase == STEP:
            return f"G{v.name[1:]}", f"G{v.name[1:]}"
        arr = f"d{self.member_array(v)}"
        return (arr if context == PRE else f"{arr}_t[t]"), arr

    def piece(self, p: str, phase: str) -> str:
        if p == "dout":
            return "dout[t]"
        if p.startswith("C_"):
            return p
        if phase == STEP:
            return p
        return f"dZ{p[1:]}"

    def rows(self, v: Value) -> str:
        """Code for vector v over all T*B rows (weight gradients, hoisted products)."""
        if v.kind == "input":
            return "X"
        if v.kind == "state":
            return f"S_{v.state}[:T].reshape(R, n)"
        if v.phase == PRE:
            return self.member_array(v)
        if v.state:
            return f"S_{v.state}[1:].reshape(R, n)"
        return f"{self.member_array(v)}.reshape(R, n)"

    # ---- the module
    def source(self) -> str:
        s = self.s
        cell = s.cell
        out = [f'"""Training step of cell {cell.name!r}, generated by symmft.harness.codegen from {cell.path.name}.',
               "", f"Cell file sha256 {cell.file_hash}; generator version {GENERATOR_VERSION}. Do not edit: "
               "regenerate with `symmft codegen`.", "", "Stages (elementwise, fused) and products per step:"]
        out += ["    " + line for line in self.describe()]
        out += ['"""', "", f"CELL = {cell.name!r}", f"CELL_HASH = {cell.file_hash!r}",
                f"GENERATOR_VERSION = {GENERATOR_VERSION!r}", f"STATES = {tuple(s.states)!r}",
                f"OUTPUT = {s.output!r}", f"PARAMETERS = {s.parameters!r}", f"BACKENDS = {tuple(self.backends)!r}",
                "", ""]
        out += self.forward() + ["", ""] + self.backward() + ["", ""]
        if "numpy" in self.backends:
            out += self.numpy_stages() + ["", ""]
        if "cupy" in self.backends:
            out += self.cuda_stages() + ["", ""]
        return "\n".join(out).rstrip() + "\n"

    def describe(self) -> list[str]:
        lines = []
        for phase in (PRE, STEP):
            for lvl in self.s.levels(phase):
                b = (phase, lvl)
                for p in self.s.products:
                    if p.buffer == b:
                        when = "before the loop" if p.hoisted or phase == PRE else "per step"
                        lines.append(f"{phase} {lvl}: u_{{{','.join(p.maps)}}} += W[{p.key}] {p.vector.name} ({when})")
                st = self.s.stages.get(b)
                if st:
                    for m in st.members:
                        stored = f" -> new {m.value.state}" if m.value.phase == STEP and m.value.state else ""
                        lines.append(f"{phase} {lvl}: {m.value.name} = {m.definition()}{stored}")
        return lines

    # ---- forward driver
    def stacked(self, lines: list[str]) -> None:
        for (key, maps), name in self.weights.items():
            keys = [f"params[{f'{a}.{key}'!r}]" for a in maps]
            lines.append(f"    {name} = " + (keys[0] if len(keys) == 1 else
                                              f"xp.concatenate([{', '.join(keys)}], axis=0)"))

    def forward(self) -> list[str]:
        s = self.s
        first_bias = f"{s.cell.affines[0].name}.bias"
        L = ["def forward(xp, K, params, xs, initial):",
             '    """xs (T, B, m), initial {state: (B, n)} -> (outputs (T, B, n), tape)."""',
             "    T, B, m = xs.shape",
             f"    n = params[{first_bias!r}].shape[0]",
             "    R = T * B",
             "    dtype = xs.dtype",
             "    X = xs.reshape(R, m)",
             "    # matrices stacked along their output rows, one block per map, in buffer column order"]
        self.stacked(L)
        L.append("    # and transposed, contiguous: OpenBLAS multiplies by a transposed view up to 1.7x slower")
        L += [f"    {w}T = xp.ascontiguousarray({w}.T)" for w in self.weights.values()]
        for b, maps in s.buffers.items():
            biases = ", ".join(f"params[{a + '.bias'!r}]" for a in maps)
            L.append(f"    b_{self.buf(b)} = " + (biases if len(maps) == 1 else f"xp.concatenate([{biases}])"))
        L.append("    # the pre phase: everything that depends on the inputs only, for all T*B rows at once")
        for lvl in s.levels(PRE):
            b = (PRE, lvl)
            if b in s.buffers:
                self.fill_buffer(L, b, [p for p in s.products if p.buffer == b])
            if b in s.stages:
                st = s.stages[b]
                for m in st.members:
                    L.append(f"    {self.member_array(m.value)} = K.empty({self.member_array(m.value)!r}, (R, n), dtype)")
                    L.append(f"    {self.member_array(m.value)}_t = {self.member_array(m.value)}.reshape(T, B, n)")
                args = [self.value_ref(v, PRE) for v in st.inputs] + [self.value_ref(m.value, PRE) for m in st.members]
                L.append(f"    K.{st.name}_forward({', '.join(args)})")
        L.append("    # step-phase affine buffers start as bias + the hoisted input projections")
        for b in s.buffers:
            if b[0] == STEP:
                self.fill_buffer(L, b, [p for p in s.products if p.buffer == b and p.hoisted])
        L.append("    # the tape")
        for st_name in s.states:
            L.append(f"    S_{st_name} = K.empty('S_{st_name}', (T + 1, B, n), dtype)")
            L.append(f"    S_{st_name}[0] = initial[{st_name!r}]")
        for (phase, lvl), st in s.stages.items():
            if phase == STEP:
                for m in st.members:
                    if not m.value.state:
                        L.append(f"    {self.member_array(m.value)} = K.empty({self.member_array(m.value)!r}, (T, B, n), dtype)")
        L.append("    # per-step products go through preallocated scratch: no allocation inside the loop (CUDA graphs)")
        widths = sorted({len(p.maps) for p in s.products if not p.hoisted and p.buffer[0] == STEP})
        L += [f"    Q{w} = xp.empty((B, {w} * n), dtype)" for w in widths]
        L.append("    for t in range(T):")
        body = []
        for lvl in s.levels(STEP):
            b = (STEP, lvl)
            for p in s.products:
                if p.buffer == b and not p.hoisted:
                    whole = p.first == 0 and len(p.maps) == len(s.buffers[b])
                    target = f"{self.buf(b)}[t]" if whole else f"{self.buf(b)}[t, :, {_cols(p.first, len(p.maps))}]"
                    body.append(f"        xp.matmul({self.value_ref(p.vector, STEP)}, {self.weights[p.key, p.maps]}T, "
                                f"out=Q{len(p.maps)})")
                    body.append(f"        {target} += Q{len(p.maps)}")
            if b in s.stages:
                st = s.stages[b]
                args = [self.value_ref(v, STEP) for v in st.inputs] + [self.value_ref(m.value, STEP) for m in st.members]
                body.append(f"        K.{st.name}_forward({', '.join(args)})")
        L += body or ["        pass"]
        tape = ["T", "B", "n", "m", "X"] + list(self.weights.values())
        tape += [f"S_{x}" for x in s.states] + [self.buf(b) for b in s.buffers]
        for st in s.stages.values():
            tape += [self.member_array(m.value) for m in st.members if not (m.value.phase == STEP and m.value.state)]
        L.append("    tape = dict(" + ", ".join(f"{k}={k}" for k in tape) + ")")
        L.append(f"    return S_{s.output}[1:], tape")
        return L

    def fill_buffer(self, L: list[str], b: tuple[str, int], products: list[Product]) -> None:
        name, count = self.buf(b), len(self.s.buffers[b])
        shape = f"({'T, B' if b[0] == STEP else 'R'}, {count} * n)"
        L.append(f"    {name} = K.empty({name!r}, {shape}, dtype)")
        flat = f"{name}_" if b[0] == STEP else name
        if b[0] == STEP:
            L.append(f"    {flat} = {name}.reshape(R, {count} * n)")
        else:
            L.append(f"    {name}_t = {name}.reshape(T, B, {count} * n)")
        whole = next((p for p in products if p.first == 0 and len(p.maps) == count), None)
        if whole is not None:
            L.append(f"    xp.matmul({self.rows(whole.vector)}, {self.weights[whole.key, whole.maps]}T, out={flat})")
            L.append(f"    {flat} += b_{name}")
        else:
            L.append(f"    {flat}[...] = b_{name}")
        for p in products:
            if p is not whole:
                L.append(f"    {flat}[:, {_cols(p.first, len(p.maps))}] += {self.rows(p.vector)} @ "
                         f"{self.weights[p.key, p.maps]}T")

    # ---- backward driver
    def stage_backward_call(self, st: Stage, context: str, written: set, lines: list[str], indent: str) -> None:
        byname = {**{v.name: v for v in st.inputs}, **{m.value.name: m.value for m in st.members}}
        args = [self.value_ref(byname[r], context) for r in st.reads]
        for m in st.members:
            args += [self.piece(p, st.phase) for p in st.pieces[m.value.name]]
        for g in st.gradients:
            code, ident = self.cotangent(byname[g], context)
            args.append(code)
            self.accumulate.setdefault(st.name, {})[g] = ident in written
            written.add(ident)
        lines.append(f"{indent}K.{st.name}_backward({', '.join(args)})")

    def product_backward(self, p: Product, context: str, written: set, lines: list[str], indent: str) -> None:
        """d vector (+)= dBUF[:, cols] @ W (the transpose of the forward product)."""
        v = p.vector
        b = p.buffer
        flat = f"d{self.buf(b)}" + ("[t]" if context == STEP else ("_" if b[0] == STEP else ""))
        whole = p.first == 0 and len(p.maps) == len(self.s.buffers[b])
        src = flat if whole else f"{flat}[:, {_cols(p.first, len(p.maps))}]"
        if v.kind == "input":
            code, ident = "dX", "dX"
        else:
            code, ident = self.cotangent(v, context)
        w = self.weights[p.key, p.maps]
        if ident in written and context == STEP:  # through scratch: no allocation inside the loop
            lines += [f"{indent}xp.matmul({src}, {w}, out=Qd)", f"{indent}{code} += Qd"]
        elif ident in written:
            lines.append(f"{indent}{code} += {src} @ {w}")
        else:
            lines.append(f"{indent}xp.matmul({src}, {w}, out={code})")
            written.add(ident)

    def backward(self) -> list[str]:
        s = self.s
        L = ["def backward(xp, K, params, tape, d_outputs, d_final, input_gradient):",
             '    """Gradients of the loss (given d loss / d outputs (T, B, n) and / d final states) wrt params."""',
             "    T, B, n, m = tape['T'], tape['B'], tape['n'], tape['m']",
             "    R = T * B",
             "    dtype = tape['X'].dtype",
             "    X = tape['X']"]
        names = list(self.weights.values()) + [f"S_{x}" for x in s.states] + [self.buf(b) for b in s.buffers]
        for st in s.stages.values():
            names += [self.member_array(m.value) for m in st.members if not (m.value.phase == STEP and m.value.state)]
        L += [f"    {k} = tape[{k!r}]" for k in names]
        L += [f"    {k}_t = {k}.reshape(T, B, -1)" for k in names if k[0] in "PZ"]  # pre-phase arrays per step
        L.append("    dout = d_outputs")
        for b, maps in s.buffers.items():
            name, count = self.buf(b), len(maps)
            L.append(f"    d{name} = {name}  # no derivative reads these pre-activations: reuse the memory"
                     if self.alias[b] else f"    d{name} = K.empty('d{name}', {name}.shape, dtype)")
            L.append(f"    d{name}_ = d{name}.reshape(R, {count} * n)" if b[0] == STEP
                     else f"    d{name}_t = d{name}.reshape(T, B, {count} * n)")
        for st in s.stages.values():
            for m in st.members:
                if m.value.phase == PRE:
                    arr = f"d{self.member_array(m.value)}"
                    L += [f"    {arr} = K.empty({arr!r}, (R, n), dtype)", f"    {arr}_t = {arr}.reshape(T, B, n)"]
                elif any(p.startswith("G") for p in st.pieces[m.value.name]):
                    L.append(f"    G{m.value.name[1:]} = xp.empty((B, n), dtype)")
        for x in s.states:
            L += [f"    C_{x} = d_final[{x!r}]", f"    Cp_{x} = xp.empty((B, n), dtype)"]
        L.append("    Qd = xp.empty((B, n), dtype)  # scratch for accumulated products in the loop")
        written: set[str] = set()
        loop: list[str] = []
        for lvl in reversed(s.levels(STEP)):
            b = (STEP, lvl)
            if b in s.stages:
                self.stage_backward_call(s.stages[b], STEP, written, loop, "        ")
            for p in s.products:
                if p.buffer == b and not p.hoisted:
                    self.product_backward(p, STEP, written, loop, "        ")
        for x in s.states:
            if f"Cp_{x}" not in written:
                loop.append(f"        Cp_{x}.fill(0)  # the previous {x} is not read by the step")
            loop.append(f"        C_{x}, Cp_{x} = Cp_{x}, C_{x}")
        after: list[str] = []
        xgrad: list[str] = []
        for p in s.products:
            if p.hoisted:
                if p.vector.kind == "input":
                    self.product_backward(p, PRE, written, xgrad, "        ")
                else:
                    self.product_backward(p, PRE, written, after, "    ")
        for lvl in reversed(s.levels(PRE)):
            b = (PRE, lvl)
            if b in s.stages:
                self.stage_backward_call(s.stages[b], PRE, written, after, "    ")
            for p in s.products:
                if p.buffer == b:
                    if p.vector.kind == "input":
                        self.product_backward(p, PRE, written, xgrad, "        ")
                    else:
                        self.product_backward(p, PRE, written, after, "    ")
        # cotangents nobody writes (an unused map) are zero
        for b, maps in s.buffers.items():
            for col, a in enumerate(maps):
                if f"d{self.buf(b)}:{col}" not in written:
                    L.append(f"    d{self.buf(b)}[..., {_cols(col, 1)}] = 0  # map {a!r} is not used")
                    written.add(f"d{self.buf(b)}:{col}")
        L.append("    for t in range(T - 1, -1, -1):")
        L += loop
        L += after
        L.append("    grads = {}")
        L.append("    # weight gradients: one large product per stacked matrix over all T*B rows")
        for p in s.products:
            b = p.buffer
            flat = f"d{self.buf(b)}" + ("_" if b[0] == STEP else "")
            whole = p.first == 0 and len(p.maps) == len(s.buffers[b])
            src = flat if whole else f"{flat}[:, {_cols(p.first, len(p.maps))}]"
            prod = f"{src}.T @ {self.rows(p.vector)}"
            if len(p.maps) == 1:
                L.append(f"    grads[{p.keys[0]!r}] = {prod}")
            else:
                L.append(f"    g = {prod}")
                L += [f"    grads[{k!r}] = g[{_cols(i, 1)}]" for i, k in enumerate(p.keys)]
        for b, maps in s.buffers.items():
            flat = f"d{self.buf(b)}" + ("_" if b[0] == STEP else "")
            L.append(f"    g = {flat}.sum(axis=0)")
            L += [f"    grads[{a + '.bias'!r}] = g[{_cols(i, 1)}]" for i, a in enumerate(maps)]
        if xgrad:
            L.append("    if input_gradient:")
            L.append("        dX = xp.empty((R, m), dtype)")
            L += xgrad
            L.append("        grads['x'] = dX.reshape(T, B, m)")
        else:
            L.append("    if input_gradient:")
            L.append("        grads['x'] = xp.zeros_like(X).reshape(T, B, m)")
        L.append("    return grads")
        return L

    # ---- stage implementations
    def stage_signatures(self):
        """Per stage and direction: (function name, input names, output names, body statements as
        (target, expression, kind)) with kind "fn" (target = f(expr)), "set", "add" or "tmp"."""
        for (phase, lvl), st in self.s.stages.items():
            ins = [v.name for v in st.inputs]
            outs = [m.value.name for m in st.members]
            body = [(m.value.name, m.expression, m.function or "set") for m in st.members]
            yield f"{st.name}_forward", ins, outs, body
            pieces = [p for m in st.members for p in st.pieces[m.value.name]]
            ins = list(st.reads) + pieces
            acc = self.accumulate.get(st.name, {})
            outs = [f"d_{g}" for g in st.gradients]
            body = [(str(sym), expr, "tmp") for sym, expr in st.shared]
            body += [(f"d_{g}", e, "add" if acc.get(g) else "set") for g, e in st.gradients.items()]
            yield f"{st.name}_backward", ins, outs, body

    def numpy_stages(self) -> list[str]:
        return numpy_stage_source(list(self.stage_signatures()))

    def cuda_stages(self) -> list[str]:
        return cuda_stage_source(list(self.stage_signatures()), self.s.cell.name)
