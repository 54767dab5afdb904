"""Hidden Markov models with hmmlearn's API: ``from fastem import hmm`` where a script had
``from hmmlearn import hmm``. ``HMM`` takes any fastem family as emissions. See
:mod:`fastem.estimators.hmm`."""
from .estimators.hmm import HMM, CategoricalHMM, ConvergenceMonitor, GaussianHMM, PoissonHMM

__all__ = ["HMM", "CategoricalHMM", "ConvergenceMonitor", "GaussianHMM", "PoissonHMM"]
