"""The mixture: independent rows, each drawn from component k with probability w_k.

The weights are the only parameters the mixture adds to its family's components. Their part of
the EM objective is ``sum_k s0_k log w_k`` (plus a symmetric Dirichlet(alpha) log-prior under
MAP-EM), maximised in closed form by the Dirichlet mode; the row-wise posterior
p(z = k | x) = w_k p(x | k) / sum_j w_j p(x | j) is the kernels' log-sum-exp once ``log w_k``
is folded into each component's constant (:meth:`Mixture.pack`). Re-seeding of empty
components, sampling counts and the ``K - 1`` free weights live here, written once for every
family.
"""
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..families.base import xlogy
from ..frame import Statistics, empty_components


@dataclass
class MixtureParams:
    """A mixture's parameters: the weights (K,) and the family's component parameters.

    The components' fields read through (``params.means`` is ``params.components.means``), so
    code written against the flat parameter objects of fastem 0.1 (``kernels.family_m_step``'s
    results, ``params.columns``) keeps working."""

    weights: np.ndarray
    components: Any

    def __getattr__(self, name):
        if name.startswith("__") or name == "components":  # copy/pickle probe before __init__
            raise AttributeError(name)
        return getattr(self.components, name)

    @property
    def n_components(self):
        return self.weights.shape[0]

    def astype(self, dtype):
        """The parameters with their float arrays in ``dtype`` (not copied where they are):
        the estimators' attributes take the data's dtype, as scikit-learn's do, while the
        engine computes with float64 parameters. Components without ``astype`` (a custom
        family's) are kept as they are."""
        cast = getattr(self.components, "astype", None)
        return MixtureParams(np.asarray(self.weights, dtype=dtype),
                             self.components if cast is None else cast(dtype))

    @property
    def n_features(self):
        return self.components.n_features


class Mixture:
    """Mixture weights over a family's components, for the EM loop (``fastem.em``).

    ``weight_concentration``: symmetric Dirichlet prior on the weights (>= 1; 1 is maximum
    likelihood). ``frozen_weights``: every M-step keeps the weights.
    """

    def __init__(self, weight_concentration=1.0, frozen_weights=False):
        if not (np.isfinite(weight_concentration) and weight_concentration >= 1.0):
            raise ValueError("weight_concentration must be a finite number >= 1, got "
                             f"{weight_concentration!r}")
        self.weight_concentration = float(weight_concentration)
        self.frozen_weights = bool(frozen_weights)

    # ------------------------------------------------------------ the E-step
    def pack(self, family, params, dtype, **options):
        """The family's packing with ``log w_k`` folded into each component's constant, so
        that the kernels' row-wise log-sum-exp is the mixture's posterior; ``options`` go to
        the family's ``pack`` (e.g. a Gaussian's ``centre``)."""
        packed = family.pack(params.components, dtype, params.weights, **options)
        with np.errstate(divide="ignore"):  # a zero weight is a valid, empty component
            log_weights = np.log(np.asarray(params.weights, dtype=np.float64))
        return family.add_log_weights(packed, log_weights)

    def rebase(self, family, stats, from_packed, to_packed):
        """The statistics of a pass made with ``from_packed`` restated in ``to_packed``'s
        frame (the family's :meth:`~fastem.families.base.Family.rebase`: the weights' part,
        s0, is frame-free)."""
        return family.rebase(stats, from_packed, to_packed)

    # ------------------------------------------------------------ the M-step
    def weights_update(self, s0, weights=None):
        """argmax of sum_k s0_k log w_k + log Dir(w | alpha): the Dirichlet mode
        (s0_k + alpha - 1) / sum_j (s0_j + alpha - 1); the given ``weights`` when frozen."""
        if self.frozen_weights and weights is not None:
            return weights
        counts = s0 + (self.weight_concentration - 1.0)
        return counts / counts.sum()

    def m_step(self, family, stats, packed, params=None):
        """Exact (or MAP) M-step of weights and components: ``(params, empty components to
        re-seed)``. Without ``params`` (initialisation from given responsibilities) nothing is
        frozen."""
        view = Statistics(stats, packed.log_norm.shape[0])
        weights = self.weights_update(view.s0, None if params is None else params.weights)
        components = family.m_step(view, packed, None if params is None else params.components)
        return MixtureParams(weights, components), self.lost_components(family, view)

    def lost_components(self, family, view):
        """Components of negligible mass, for the EM loop to re-seed (none where the family
        gives empty components a proper value, e.g. its prior's mode)."""
        if not family.reseeds_empty:
            return np.empty(0, dtype=np.intp)
        return empty_components(view.s0)

    def objective(self, family, params, stats, packed):
        """J(theta) + log p(theta) up to a constant: the weights' part plus the family's."""
        view = Statistics(stats, packed.log_norm.shape[0])
        value = float(xlogy(view.s0, params.weights).sum())  # 0 log 0 = 0: empty components
        value += self.log_prior_weights(params.weights)
        value += family.objective(params.components, view, packed)
        return value if not np.isnan(value) else -np.inf  # NaN: outside the parameter space

    def newton_step(self, family, params, stats, packed):
        """A partial M-step's proposal: the weights to their maximiser (the objective is
        separable and concave in them), the components by the family's Newton step."""
        view = Statistics(stats, packed.log_norm.shape[0])
        components = family.newton_step(params.components, view, packed)
        if components is None:
            return None
        return MixtureParams(self.weights_update(view.s0, params.weights), components)

    def interpolate(self, family, params, proposal, t):
        """Parameters a fraction ``t`` of the way to ``proposal`` (None outside the parameter
        space); frozen weights are kept bitwise."""
        components = family.interpolate(params.components, proposal.components, t)
        if components is None:
            return None
        weights = params.weights
        if not self.frozen_weights:
            weights = proposal.weights if t == 1 else (1 - t) * weights + t * proposal.weights
        return MixtureParams(weights, components)

    def log_prior(self, family, params):
        """log p(theta): the weights' Dirichlet plus the components' prior."""
        return self.log_prior_weights(params.weights) + family.log_prior(params.components)

    def log_prior_weights(self, weights):
        """log Dir(weights | alpha) without its normalising constant (alpha = 1 gives 0)."""
        alpha = self.weight_concentration
        if alpha == 1.0:
            return 0.0
        with np.errstate(divide="ignore"):
            return float((alpha - 1.0) * np.log(weights).sum())

    # ------------------------------------------------------------ the rest
    def reseed(self, family, params, lost, rows):
        """Move empty components ``lost`` onto data ``rows`` (one per component) with weight
        1/K, renormalised (frozen weights and frozen component parameters stay)."""
        weights = params.weights
        if not self.frozen_weights:
            weights = weights.copy()
            weights[lost] = 1.0 / params.n_components
            weights /= weights.sum()
        return MixtureParams(weights, family.reseed(params.components, lost, rows))

    def sample(self, family, params, n_samples, rng):
        """``(X, labels)``: component counts from the weights, then x | z, in component order."""
        counts = rng.multinomial(n_samples, params.weights)
        X = family.sample(params.components, counts, rng)
        return X, np.repeat(np.arange(params.n_components), counts)

    def n_parameters(self, family, n_features, n_components):
        """Free parameters: K - 1 weights plus the family's components."""
        return int(n_components - 1 + family.n_parameters(n_features, n_components))



def mixture_params(weights, components):
    """:class:`MixtureParams` with the weights checked and normalised to sum to one."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 1 or weights.size < 1 or np.any(weights < 0) or not weights.sum() > 0:
        raise ValueError("weights must be a non-empty 1-D array, non-negative, with a "
                         "positive sum")
    if components.n_components != weights.size:
        raise ValueError(f"{weights.size} weights for {components.n_components} components")
    return MixtureParams(weights / weights.sum(), components)
