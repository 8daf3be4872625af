"""DVC pipeline stages: one module per stage, each with a ``main()`` that ``dvc.yaml`` calls.

Each stage imports only what it uses (scikit-learn, MLflow and skops take seconds to import),
inside the functions that need them.
"""

import os

# First, so that the exit hook of stages that succeed runs after every library's (see exit_now).
from .. import engine  # noqa: F401

# One OpenMP/BLAS thread unless OMP_NUM_THREADS is exported. OpenMP threads wait for each
# other, so where other work keeps the cores busy (CI runners, parallel test workers) two
# threads fit slower than one. A large table on a machine of its own fits faster on every core:
# export OMP_NUM_THREADS there (docs: "Large data", threads). Set before scikit-learn loads its
# thread pools.
os.environ.setdefault("OMP_NUM_THREADS", "1")
