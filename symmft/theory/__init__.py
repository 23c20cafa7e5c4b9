"""Stage 2, the theory: mean-field maps derived from the cell graph, compiled and solved (untied weights)."""
