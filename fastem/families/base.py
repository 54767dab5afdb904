"""The family interface: everything the EM engine asks of a model family.

A family describes the components p(x | z = k; theta_k) of a mixture and how to learn them. The
engine (``fastem.em``) and the drivers (``fastem.driver``, ``fastem.dask``) only ever call the
methods below, so a new family is one new module, and every family runs on files, threads and
clusters alike. Built-in families: :mod:`fastem.families.gaussian` and
:mod:`fastem.families.expfam` (Cython kernels); :mod:`fastem.families.custom` for families
written in Python and compiled with Numba.

Sufficient statistics are one float64 vector per pass: ``[sum_i w_i log p(x_i), sum_i w_i,
s0 (K), family-specific sums]`` with ``s0_k = sum_i w_i r_ik``. Its zero is
``np.zeros(stats_size)`` and merging two is addition, so chunks, blocks, threads and cluster
workers combine them in any fixed order.

The M-step has three forms, all from those statistics (EM as coordinate ascent on the ELBO):

- exact: maximise J(theta) = sum_k sum_i w_i r_ik log p(x_i, z = k; theta);
- MAP: maximise J(theta) + log p(theta) under the family's conjugate prior (``family.prior``);
- partial (generalized EM): :func:`partial_m_step` takes ``n_steps`` Newton steps of the family
  (:meth:`Family.newton_step`) on the same objective and keeps a step only if the objective does
  not decrease (backtracking), so the log-likelihood (or log-posterior) still never decreases.

Parameters named in ``family.frozen`` (e.g. ``{"weights"}`` or ``{"means"}``) are held fixed by
all three forms.
"""
import numpy as np

MAX_HALVINGS = 30  # backtracking halves the step at most this often (2**-30 ~ 1e-9)


class Family:
    """Base class of model families; subclasses implement every method that raises here.

    ``params`` objects are owned by the family (dataclasses of float64 arrays; the engine never
    looks inside). ``packed`` is what :meth:`pack` returns: the parameters laid out for the
    kernel, with a ``log_norm`` (K,) array and a ``dtype`` (the dtype blocks are converted to).
    """

    prior = None  # the components' conjugate prior, or None for maximum likelihood
    weight_concentration = 1.0  # symmetric Dirichlet prior on the weights (1: none)
    frozen = frozenset()  # names of parameters that every M-step keeps fixed

    # ---------------------------------------------------------------- kernel binding
    def pack(self, params, dtype):
        """Parameters laid out for the kernel, for data of ``dtype``."""
        raise NotImplementedError

    def pack_pivot(self, pivot, dtype):
        """A packing for passes with given responsibilities (initialisation) around ``pivot``
        (K, D): data-space centres of the components, used where statistics are centred."""
        raise NotImplementedError

    def stats_size(self, packed):
        """Length of the statistics vector a pass with ``packed`` fills."""
        raise NotImplementedError

    def workspace(self, packed, chunk_size, n_threads, n_chunks):
        """Caller-owned scratch for a pass: (per-thread buffers, per-chunk statistics slots)."""
        raise NotImplementedError

    def fit_block(self, packed, X, weights, resp, with_stats, chunk_size, n_threads, work, stats,
                  worst, row_offset):
        """Add a block's log-likelihood and statistics into ``stats`` (chunk order), and update
        ``worst`` = [lowest log p(x_i), its row]. ``resp`` (n, K) replaces the E-step's
        responsibilities when given (initialisation)."""
        raise NotImplementedError

    def predict_block(self, packed, X, chunk_size, n_threads, work, log_prob, resp, labels):
        """Write per-row log p(x), posteriors and labels of a block (each output may be None)."""
        raise NotImplementedError

    def log_density_block(self, packed, X, chunk_size, n_threads, work, out):
        """Write ``log_norm_k + log p(x_i | k)`` of a block into ``out`` (n, K) float64, where
        ``log_norm`` is the packed one (the component log-densities when it holds no
        log-weights)."""
        raise NotImplementedError

    def invalid_rows(self, block):
        """Boolean mask of the block's rows outside the family's support (finite values only);
        ``error_message`` says what is wrong with them."""
        return np.zeros(block.shape[0], dtype=bool)

    error_message = "Values outside the family's support"

    @property
    def checks_support(self):
        """Whether :meth:`invalid_rows` can reject anything (the data pass skips it if not)."""
        return type(self).invalid_rows is not Family.invalid_rows

    # ----------------------------------------------------------------- the M-step
    def m_step(self, stats, packed, params=None):
        """Exact (or, with a prior, MAP) M-step: ``(new params, indices of empty components)``.

        ``params`` are the parameters of the E-step (their frozen parts are kept)."""
        raise NotImplementedError

    def objective(self, params, stats, packed):
        """J(theta) + log p(theta), up to a constant that does not depend on ``params``."""
        raise NotImplementedError

    def newton_step(self, params, stats, packed):
        """One full Newton (or natural-gradient) step on :meth:`objective` from ``params``
        (None if there is none to take)."""
        raise NotImplementedError

    def interpolate(self, params, proposal, t):
        """The parameters a fraction ``t`` of the way from ``params`` to ``proposal``, or None
        where those are not valid parameters (the line search then shortens the step)."""
        raise NotImplementedError

    def log_prior(self, params):
        """log p(theta) under ``prior`` (0.0 without one), normalised as :meth:`objective` is."""
        return 0.0

    def lost_components(self, stats, n_components):
        """Indices of the components an M-step leaves empty, for the engine to re-seed
        (default: those of negligible mass; a family whose prior gives empty components a
        proper value may return none)."""
        return empty_components(stats, n_components)

    # ------------------------------------------------------------------ the rest
    def reseed(self, params, lost, rows):
        """Move empty components ``lost`` onto data ``rows`` (float64, one per component)."""
        raise NotImplementedError

    def sample(self, params, n_samples, rng):
        """``(X, labels)``: draw z from the weights, then x | z."""
        raise NotImplementedError

    def n_parameters(self, n_features, n_components):
        """Number of free parameters (for BIC and AIC)."""
        raise NotImplementedError


def partial_m_step(family, params, stats, packed, n_steps):
    """Generalized M-step: up to ``n_steps`` Newton steps with backtracking.

    A step is accepted only if the objective (J, plus log p(theta) under a prior) does not
    decrease, which is all generalized EM needs for a non-decreasing log-likelihood. Returns
    ``(params, lost)`` like :meth:`Family.m_step`; empty components keep their parameters.
    """
    value = family.objective(params, stats, packed)
    for _ in range(n_steps):
        proposal = family.newton_step(params, stats, packed)
        if proposal is None:
            break
        t = 1.0
        for _ in range(MAX_HALVINGS):
            candidate = family.interpolate(params, proposal, t)
            if candidate is not None:  # None: outside the parameter space (e.g. not pos.-def.)
                candidate_value = family.objective(candidate, stats, packed)
                if candidate_value >= value:
                    params, value = candidate, candidate_value
                    break
            t *= 0.5
        else:
            break  # no ascent along this step: at the optimum to rounding
    return params, family.lost_components(stats, packed.log_norm.shape[0])


def component_counts(stats, n_components):
    """s0: the responsibility mass of each component, from a statistics vector."""
    return stats[2:2 + n_components]


def empty_components(stats, n_components):
    """Indices of components whose mass is negligible (<= 1e-12 of the total)."""
    s0 = component_counts(stats, n_components)
    return np.flatnonzero(s0 <= 1e-12 * s0.sum())


def dirichlet_weights(s0, alpha):
    """MAP mixture weights under a symmetric Dirichlet(alpha) prior (alpha >= 1; 1 is ML).

    The mode of the Dirichlet posterior: (s0_k + alpha - 1) / sum_j (s0_j + alpha - 1).
    """
    counts = s0 + (alpha - 1.0)
    return counts / counts.sum()


def dirichlet_log_prior(weights, alpha):
    """log Dir(weights | alpha), without its normalising constant (alpha = 1 gives 0)."""
    if alpha == 1.0:
        return 0.0
    with np.errstate(divide="ignore"):
        return float((alpha - 1.0) * np.log(weights).sum())


def xlogy(x, y):
    """x * log(y), and 0 where x == 0 (an empty component with zero weight adds nothing).
    scipy.special.xlogy without importing scipy at ``import fastem``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x == 0, 0.0, x * np.log(y))
