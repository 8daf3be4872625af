"""DVC pipeline stages: one module per stage, each with a ``main()`` that ``dvc.yaml`` calls.

Each stage imports only what it uses (scikit-learn, MLflow and skops take seconds to import),
inside the functions that need them.
"""

import os

# First, so that the exit hook of stages that succeed runs after every library's (see exit_now).
from .. import engine  # noqa: F401

# The pipeline's tables are small: one OpenMP/BLAS thread fits and predicts as fast as several,
# and does not slow to a crawl when the cores are busy (OpenMP threads wait for each other).
# Set before scikit-learn loads its thread pools; export OMP_NUM_THREADS to use more.
os.environ.setdefault("OMP_NUM_THREADS", "1")
