"""Stage 1, the cell: a cell file traced into a computation graph, and its hyperparameters."""
