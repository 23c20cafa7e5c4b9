"""Section 1 of a report: the cell's source, its traced graph drawn as a figure, and its hyperparameter table."""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from symmft.cell import params as params_mod
from symmft.cell.graph import Cell, primary_states
from symmft.cell.trace import BUILTIN_DIR
from symmft.extras import pyplot
from symmft.report.context import Context
from symmft.report.document import Section
from symmft.report.figures import save

#: Node colours by role: what a reader looks for first (states, the input, matrices, gates).
COLOURS = {"state": "#8ecae6", "output": "#219ebc", "input": "#cccccc", "affine": "#ffb703", "sigmoid": "#90be6d",
           "tanh": "#c77dff", "erf": "#c77dff", "const": "#ffffff", "add": "#f1f1f1", "sub": "#f1f1f1",
           "mul": "#f1f1f1"}
SYMBOLS = {"add": "+", "sub": "-", "mul": "x", "sigmoid": "sigmoid", "tanh": "tanh", "erf": "erf"}


def build(ctx: Context, section: Section, out: Path) -> None:
    cell = ctx.cell
    section.assumes.append("A cell file is a plain step function over the `ops` namespace; symmft traces it once "
                           "into the graph below, and every later section is computed from that graph (the theory) "
                           "or from running the same step on arrays (the finite network).")
    where = f"cells/{cell.path.name}" if cell.path.parent == BUILTIN_DIR else str(cell.path)
    section.text(f"Cell `{cell.name}` from `{where}` (file hash `{cell.file_hash[:12]}`): states "
                 f"{', '.join(cell.states)} (primary: {', '.join(primary_states(cell))}), affine maps "
                 f"{', '.join(a.name for a in cell.affines)}.")
    section.code(cell.path.read_text(), title="source")
    figure = draw_graph(cell, out / "cell_graph.png")
    section.figure(figure, f"The traced graph of `{cell.name}`: the input and previous states (left) flow through "
                   "affine maps (orange; each incoming edge is one random matrix, labelled by its variance name) and "
                   "elementwise operations to the new states (right, primed).")
    rows = params_mod.describe(cell)
    section.table(["name", "default", "meaning"], [[r["name"], r["default"], r["meaning"]] for r in rows])
    section.results.update({
        "path": where, "file_hash": cell.file_hash, "states": list(cell.states),
        "primary_states": list(primary_states(cell)), "affine_maps": [a.name for a in cell.affines],
        "graph": {"nodes": cell.graph.number_of_nodes(), "edges": cell.graph.number_of_edges()},
        "hyperparameters": {r["name"]: r["default"] for r in rows},
    })


def draw_graph(cell: Cell, path: Path) -> Path:
    """Draw ``cell.graph`` left to right by dependency depth (networkx multipartite layout)."""
    plt = pyplot()
    g = nx.DiGraph(cell.graph)  # parallel edges (v * v) drawn once
    depth = {}
    for node in nx.topological_sort(g):
        depth[node] = max((depth[p] + 1 for p in g.predecessors(node)), default=0)
    for node in g:
        g.nodes[node]["layer"] = depth[node]
    pos = nx.multipartite_layout(g, subset_key="layer")
    labels, colours = {}, []
    for node, attrs in g.nodes(data=True):
        op = attrs["op"]
        if op in ("state", "input"):
            labels[node] = attrs["name"]
        elif op == "affine":
            labels[node] = f"u_{attrs['name']}"
        elif op == "const":
            labels[node] = f"{attrs['value']:g}"
        else:
            labels[node] = SYMBOLS.get(op, op)
        outputs = [s for s, n in cell.outputs.items() if n == node]
        if outputs:
            labels[node] += "\n-> " + ", ".join(f"{s}'" for s in outputs)
        colours.append(COLOURS["output"] if outputs else COLOURS.get(op, "#ffffff"))
    layers = max(depth.values()) + 1
    tallest = max(sum(1 for d in depth.values() if d == k) for k in range(layers))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.5 * layers), max(3.0, 0.9 * tallest)))
    nx.draw_networkx_edges(g, pos, ax=ax, arrows=True, arrowsize=12, edge_color="#777777", node_size=1400)
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color=colours, node_size=1400, edgecolors="#333333")
    nx.draw_networkx_labels(g, pos, labels, ax=ax, font_size=8)
    matrices = {(a, b): d["hyperparameter"] for a, b, d in cell.graph.edges(data=True) if "hyperparameter" in d}
    nx.draw_networkx_edge_labels(g, pos, matrices, ax=ax, font_size=7, font_color="#9a4d00", label_pos=0.5,
                                 bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8})
    ax.set_axis_off()
    ax.set_title(f"{cell.name}: traced step graph", fontsize=10)
    return save(fig, path)
