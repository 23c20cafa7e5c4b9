"""The cells of the tied-theory matrix (tests/test_tied.py, benchmarks/tied_theory.py): every built-in recurrent
cell and a user's cell given as a path, each with the bias mean of the gate that keeps its memory."""

from __future__ import annotations

from pathlib import Path

from symmft import load_cell
from symmft.cell.trace import Cell

#: A user's cell, a file outside cells/ (JANET-like: one forget gate, no output gate), for "any cell the core accepts".
USER_CELL = Path(__file__).parent / "data" / "janet_one_state.py"
#: The bias of the gate that keeps the memory (the vanilla RNN has none: its only bias).
MEMORY_BIAS = {"lstm": "mu_f", "gru": "mu_z", "gru_reset_before": "mu_z", "minimal_rnn": "mu_u",
               "vanilla_rnn": "mu_h", "user": "mu_f"}


def matrix_cell(name: str) -> Cell:
    """The built-in cell ``name``, or :data:`USER_CELL` for "user"."""
    return load_cell(USER_CELL if name == "user" else name)
