"""Stage 4b, the training harness: the generated forward/backward step of any cell (schedule, kernel, codegen, plan), offline tasks, training and sweeps."""
