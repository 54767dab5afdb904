"""fastem: fast, streaming Expectation-Maximization for latent variable models.

Thin scikit-learn compatible estimators over compiled (Cython, GIL-free) kernels that compute
log-densities, log-sum-exp responsibilities and sufficient statistics chunk by chunk, on
threads, for data in memory or memory-mapped from disk.
"""
from ._base import NotFittedError
from .em import ConvergenceWarning
from .estimators import (
    BernoulliMixture,
    CategoricalMixture,
    ExponentialMixture,
    GammaMixture,
    GaussianMixture,
    MixtureModel,
    PoissonMixture,
)
from .io import load, save

__version__ = "0.1.0"
__all__ = ["GaussianMixture", "MixtureModel", "BernoulliMixture", "CategoricalMixture",
           "ExponentialMixture", "GammaMixture", "PoissonMixture", "ConvergenceWarning",
           "NotFittedError", "load", "save", "get_include", "kernels", "select", "__version__"]


def get_include():
    """Directory to give Cython (``include_path``) and the C compiler (``include_dirs``) to
    ``cimport`` fastem's public kernels, e.g. ``from fastem._kernels.logsumexp cimport
    normalize_log_rows``: it holds ``fastem/_kernels/*.pxd`` and their headers."""
    import os

    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def __getattr__(name):
    """Import ``fastem.kernels`` and ``fastem.select`` (model selection) on first access, so
    ``import fastem`` stays fast."""
    if name in ("kernels", "select"):
        import importlib

        return importlib.import_module(f"fastem.{name}")
    raise AttributeError(f"module 'fastem' has no attribute {name!r}")
