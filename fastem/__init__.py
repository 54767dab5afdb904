"""fastem: fast, streaming Expectation-Maximization for latent variable models.

Thin scikit-learn compatible estimators over compiled (Cython, GIL-free) kernels that compute
log-densities, log-sum-exp responsibilities and sufficient statistics chunk by chunk, on
threads, for data in memory or memory-mapped from disk.
"""
from .em import ConvergenceWarning
from ._base import NotFittedError
from .io import load, save
from .mixture import GaussianMixture

__version__ = "0.1.0"
__all__ = ["GaussianMixture", "ConvergenceWarning", "NotFittedError", "load", "save",
           "__version__"]
