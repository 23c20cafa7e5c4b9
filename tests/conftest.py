"""Test-session settings shared by every test file."""

import os
import sys
from pathlib import Path

# The tests' matrices are small (n <= 3000): BLAS threads only contend on a 2-core machine, and OpenBLAS has been
# measured 10-140x slower on small QR/SVD calls with its default thread count here. Set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# tolerances.py is a plain module beside the tests
sys.path.insert(0, str(Path(__file__).parent))

# As the symmft command does: keep freed memory in the process instead of faulting it in again (symmft.backend).
from symmft.backend import keep_freed_memory  # noqa: E402

keep_freed_memory()
