"""The scikit-learn estimators: thin classes over the EM engine (see ``_base``)."""
from .expfam import (
    BernoulliMixture,
    CategoricalMixture,
    ExponentialMixture,
    GammaMixture,
    PoissonMixture,
)
from .gaussian import GaussianMixture
from .model import MixtureModel

__all__ = ["GaussianMixture", "MixtureModel", "BernoulliMixture", "CategoricalMixture",
           "ExponentialMixture", "GammaMixture", "PoissonMixture"]
