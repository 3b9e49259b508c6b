"""chroma-serverless: a serverless, Chroma-compatible vector database on LanceDB."""

import os

# One BLAS thread per request: the matrix products of a query are small, and a threaded BLAS
# spends more on waking and spinning its threads than it saves (measured: a 10k x 64 product
# took 12 ms instead of 1 ms with another process busy on the second core). Requests run in
# parallel instead. Set before numpy is first imported; the environment can override it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
