"""Stage 4a, export: init rules -> standalone initializer modules for PyTorch, Flax and Keras (one module per framework)."""
