"""Elementwise stage bodies printed from sympy: numpy in-place ufunc statements and CUDA for CuPy kernels.

Stage: used by :mod:`symmft.harness.codegen` only. A stage's forward and backward are lists of assignments of sympy
expressions (from :mod:`symmft.harness.schedule`); this module prints them as the bodies of numpy functions (each
operation one ufunc call writing into the output array: no temporaries for sums and products of stored values)
and of ``cupy.ElementwiseKernel``s (C templated on the element type ``T``, literals cast to ``T`` so float32
kernels do no double arithmetic). tests/test_codegen.py compiles the CUDA bodies with g++ and compares them with
the numpy functions.
"""

from __future__ import annotations

import re

import sympy as sp
from sympy.printing.c import C99CodePrinter
from sympy.printing.str import StrPrinter

from symmft.harness.schedule import FUNCTIONS


class _NumpyPrinter(StrPrinter):
    def _print_Float(self, e):
        return repr(float(e))

    def _print_Rational(self, e):
        return repr(float(e))

    def _print_Integer(self, e):
        return str(int(e))

    def _print_NumberSymbol(self, e):
        return repr(float(e))


class _CudaPrinter(C99CodePrinter):
    """C for a kernel templated on ``T``: literals cast to T (no float->double promotion for float32), small
    integer powers as products, the sigmoid as a preamble function."""

    def _print_Float(self, e):
        return f"T({float(e)!r})"

    def _print_Rational(self, e):
        return f"T({float(e)!r})"

    def _print_Integer(self, e):
        return f"T({int(e)})"

    def _print_NumberSymbol(self, e):
        return f"T({float(e)!r})"

    def _print_Pow(self, e):
        base, exp = e.args
        if exp.is_Integer and 1 <= int(exp) <= 4:
            b = self.parenthesize(base, 100)
            return "(" + "*".join([b] * int(exp)) + ")"
        if exp == -1:
            return f"(T(1)/{self.parenthesize(base, 100)})"
        return f"pow({self._print(base)}, {self._print(exp)})"

    def _print_sigmoid(self, e):
        return f"symmft_sigmoid({self._print(e.args[0])})"


def numpy_expr(e: sp.Expr) -> str:
    return _NumpyPrinter().doprint(e)


def numpy_into(e: sp.Expr, out: str) -> list[str]:
    """Statements computing ``e`` into the existing array ``out`` with in-place ufunc calls (one pass per
    operation, no temporaries for sums and products of stored values); sub-expressions that are neither go
    through a plain numpy expression."""
    if e.is_Symbol:
        return [f"copyto({out}, {e})"]
    if e.is_Number:
        return [f"{out}[...] = {float(e)!r}"]
    if e.is_Function and len(e.args) == 1:
        arg, name = e.args[0], type(e).__name__
        lines = [] if arg.is_Symbol else numpy_into(arg, out)
        return lines + [f"{name}({arg if arg.is_Symbol else out}, out={out})"]
    if e.is_Pow and e.exp == 2:
        if e.base.is_Symbol:
            return [f"multiply({e.base}, {e.base}, out={out})"]
        return numpy_into(e.base, out) + [f"multiply({out}, {out}, out={out})"]
    if e.is_Mul:
        coeff = sp.Mul(*(a for a in e.args if a.is_Number))  # (as_coeff_mul leaves Floats among the factors)
        factors = [a for a in e.args if not a.is_Number]
        compound = [f for f in factors if not f.is_Symbol]
        atoms = [f for f in factors if f.is_Symbol]
        if compound:
            lines, rest = numpy_into(compound[0], out), compound[1:] + atoms
        elif len(atoms) >= 2:
            lines, rest = [f"multiply({atoms[0]}, {atoms[1]}, out={out})"], atoms[2:]
        elif coeff != 1:  # c * a
            return [f"multiply({atoms[0]}, {float(coeff)!r}, out={out})"]
        else:
            lines, rest = [f"copyto({out}, {atoms[0]})"], []
        lines += [f"multiply({out}, {f if f.is_Symbol else '(' + numpy_expr(f) + ')'}, out={out})" for f in rest]
        if coeff == -1:
            lines.append(f"negative({out}, out={out})")
        elif coeff != 1:
            lines.append(f"multiply({out}, {float(coeff)!r}, out={out})")
        return lines
    if e.is_Add:
        const = sp.Add(*(a for a in e.args if a.is_Number))
        terms = [a for a in e.args if not a.is_Number]
        plus = [t for t in terms if not t.could_extract_minus_sign()]
        minus = [-t for t in terms if t.could_extract_minus_sign()]

        def ref(t):
            return str(t) if t.is_Symbol else "(" + numpy_expr(t) + ")"

        if not plus and const != 0 and minus[0].is_Symbol:  # const - m0 - m1 ...
            return [f"subtract({float(const)!r}, {minus[0]}, out={out})"] + [
                f"subtract({out}, {ref(t)}, out={out})" for t in minus[1:]]
        if not plus:  # const - (m0 + m1 + ...)
            lines = numpy_into(minus[0], out) + [f"add({out}, {ref(t)}, out={out})" for t in minus[1:]]
            return lines + [f"subtract({float(const)!r}, {out}, out={out})" if const != 0 else f"negative({out}, out={out})"]
        first = next((t for t in plus if not t.is_Symbol), None)
        if first is not None:
            lines = numpy_into(first, out)
            plus = [t for t in plus if t is not first]
        elif len(plus) >= 2:
            lines, plus = [f"add({plus[0]}, {plus[1]}, out={out})"], plus[2:]
        elif minus:
            lines, plus, minus = [f"subtract({plus[0]}, {ref(minus[0])}, out={out})"], [], minus[1:]
        else:
            lines, plus = [f"copyto({out}, {plus[0]})"], []
        lines += [f"add({out}, {ref(t)}, out={out})" for t in plus]
        lines += [f"subtract({out}, {ref(t)}, out={out})" for t in minus]
        if const != 0:
            lines.append(f"add({out}, {float(const)!r}, out={out})")
        return lines
    return [f"{out}[...] = {numpy_expr(e)}"]


def cuda_expr(e: sp.Expr) -> str:
    return _CudaPrinter().doprint(e)


CUDA_PREAMBLE = "template <typename T> __device__ T symmft_sigmoid(T u) { return T(1) / (T(1) + exp(-u)); }"


# ---------------------------------------------------------------- stage functions


def numpy_stage_source(signatures: list) -> list[str]:
    """Source of ``numpy_stages()``: each stage a numpy function writing its outputs in place.

    ``signatures``: (function name, input names, output names, body) with body statements (target, sympy
    expression, kind): kind "tmp" (a shared subexpression), "set", "add" (accumulate), or a nonlinearity name
    (target = f(expression)).
    """
    L = ["# ---------------------------------------------------------------- numpy stages", "",
         "def numpy_stages():", '    """The elementwise stages as numpy functions (outputs are written in place)."""',
         "    import types", "", "    import numpy", "    from numpy import add, copyto, empty_like, exp, multiply, negative, subtract, tanh",
         "    from scipy.special import erf", "",
         "    _ = add, copyto, empty_like, exp, erf, negative, subtract  # some may go unused", "",
         "    def empty(name, shape, dtype):",
         '        """A new array for the tape or a scratch buffer (symmft.harness.plan.Plan reuses its own instead)."""',
         "        return numpy.empty(shape, dtype)", "",
         "    def sigmoid(u, out):",
         '        """1/(1 + exp(-u)) as 0.5 + 0.5 tanh(u/2): numpy\'s SIMD tanh is ~4x faster than scipy\'s expit."""',
         "        multiply(u, 0.5, out=out)", "        tanh(out, out=out)", "        out *= 0.5", "        out += 0.5",
         "        return out", ""]
    names = []
    for fname, ins, outs, body in signatures:
        names.append(fname)
        L.append(f"    def {fname}({', '.join(ins + outs)}):")
        for target, expr, kind in body:
            if kind == "tmp":
                ref = sorted(expr.free_symbols, key=str)[0]
                L.append(f"        {target} = empty_like({ref})")
                L += ["        " + x for x in numpy_into(expr, target)]
            elif kind == "set":
                L += ["        " + x for x in numpy_into(expr, target)]
            elif kind == "add":
                L.append(f"        {target} += {numpy_expr(expr)}")
            else:
                L += ["        " + x for x in numpy_into(FUNCTIONS[kind](expr), target)]
        L.append("")
    L.append("    return types.SimpleNamespace(empty=empty, " + ", ".join(f"{f}={f}" for f in names) + ")")
    return L

def cuda_stage_source(signatures: list, cell_name: str) -> list[str]:
    """Source of ``CUDA_STAGES`` and ``cupy_stages(cupy)``: each stage one ``cupy.ElementwiseKernel`` templated on
    the element type T; ``signatures`` as for :func:`numpy_stage_source`."""
    L = ["# ---------------------------------------------------------------- CuPy stages (CUDA)", "",
         f"CUDA_PREAMBLE = {CUDA_PREAMBLE!r}",
         f"KERNEL_PREFIX = {'symmft_' + re.sub(r'[^0-9A-Za-z_]', '_', cell_name)!r}", "",
         "#: per stage function: (input parameters, output parameters, CUDA body) of its ElementwiseKernel",
         "CUDA_STAGES = {"]
    for fname, ins, outs, body in signatures:
        stmts = []
        for target, expr, kind in body:
            e = cuda_expr(expr)
            if kind == "tmp":
                stmts.append(f"const T {target} = {e};")
            elif kind == "set":
                stmts.append(f"{target} = {e};")
            elif kind == "add":
                stmts.append(f"{target} += {e};")
            else:
                f = "symmft_sigmoid" if kind == "sigmoid" else kind
                stmts.append(f"{target} = {f}({e});")
        L.append(f"    {fname!r}: (")
        L.append(f"        {', '.join('T ' + i for i in ins)!r},")
        L.append(f"        {', '.join('T ' + o for o in outs)!r},")
        L.append("        " + "\n        ".join(repr(x + " ") for x in stmts[:-1]) + ("\n        " if len(stmts) > 1 else "")
                 + repr(stmts[-1]) + ",")
        L.append("    ),")
    L += ["}", "", "",
          "def cupy_stages(cupy):",
          '    """The stages as fused cupy.ElementwiseKernels (compiled on first use, cached by CuPy)."""',
          "    import types", "",
          "    return types.SimpleNamespace(empty=lambda name, shape, dtype: cupy.empty(shape, dtype), **{",
          "        name: cupy.ElementwiseKernel(ins, outs, body, f'{KERNEL_PREFIX}_{name}', preamble=CUDA_PREAMBLE)",
          "        for name, (ins, outs, body) in CUDA_STAGES.items()})"]
    return L
