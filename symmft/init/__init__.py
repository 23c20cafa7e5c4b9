"""Stage 3, the initialization: trainability criteria, the critical search, the rule format, baselines, phase diagrams."""
