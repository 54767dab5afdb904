"""Hidden Markov models with hmmlearn's API: ``from fastem import hmm`` where a script had
``from hmmlearn import hmm``. ``HMM`` takes any fastem family as emissions. See
:mod:`fastem.estimators.hmm`."""
from .estimators.hmm import (
    GMMHMM,
    HMM,
    CategoricalHMM,
    ConvergenceMonitor,
    GaussianHMM,
    MultinomialHMM,
    PoissonHMM,
)

__all__ = ["GMMHMM", "HMM", "CategoricalHMM", "ConvergenceMonitor", "GaussianHMM",
           "MultinomialHMM", "PoissonHMM"]
