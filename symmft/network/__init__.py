"""The finite random network, independent of the theory: simulation (tied or untied) and its exact Jacobian spectrum."""
