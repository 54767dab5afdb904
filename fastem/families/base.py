"""The emission-family interface: everything the EM engine asks of the components.

A family describes the components p(x | z = k; theta_k) of a model and how to learn them; it
holds no mixture weights or other coupling of the components, which belong to a latent structure
(``fastem.latent``). The latent structure, the EM loop (``fastem.em``) and the drivers
(``fastem.drivers``) only ever call the methods below, so a new family is one new module, and
every family runs on files, threads and clusters alike. Built-in families:
:mod:`fastem.families.gaussian` and :mod:`fastem.families.expfam` (Cython kernels);
:mod:`fastem.families.custom` for families written in Python and compiled with Numba.

Sufficient statistics are one float64 vector per pass (``fastem.frame.Statistics`` names its
parts): ``[sum_i w_i log p(x_i), sum_i w_i, s0 (K), family-specific sums]`` with
``s0_k = sum_i w_i r_ik``. The component methods below receive that view.

The component M-step has three forms, all from those statistics (EM as coordinate ascent on the
ELBO): exact (maximise J(theta) = sum_k sum_i w_i r_ik log p(x_i | z = k; theta)), MAP (maximise
J(theta) + log p(theta) under the family's conjugate prior, ``family.prior``) and partial
(generalized EM: ``fastem.em.partial_m_step`` takes Newton steps of :meth:`Family.newton_step`
with backtracking). Parameters named in ``family.frozen`` are held fixed by all three.
"""
import numpy as np


class Family:
    """Base class of emission families; subclasses implement every method that raises here.

    ``params`` objects are owned by the family (dataclasses of float64 arrays; the engine never
    looks inside) and hold the components only. ``packed`` is what :meth:`pack` returns: the
    parameters laid out for the kernel, with a ``log_norm`` (K,) array of per-component
    constants and a ``dtype`` (the dtype blocks are converted to).
    """

    prior = None  # the components' conjugate prior, or None for maximum likelihood
    frozen = frozenset()  # names of parameters that every M-step keeps fixed

    # ---------------------------------------------------------------- kernel binding
    def pack(self, params, dtype, mass):
        """Parameters laid out for the kernel, for data of ``dtype``. ``mass`` (K,), positive
        component masses (e.g. mixture weights), only places the pivot the statistics are
        centred on; ``log_norm`` holds the components' own constants."""
        raise NotImplementedError

    def marginal(self):
        """This family with NaN entries as missing at random (``nan_policy="marginalize"``):
        they drop out of each row's density and of the statistics, and the M-step divides by
        the mass of the rows observing each entry. Families that cannot raise ValueError."""
        raise ValueError(f"{type(self).__name__} cannot marginalise missing (NaN) entries "
                         "(nan_policy='marginalize', impute)")

    def expected_values(self, params, resp):
        """Conditional means of every entry given rows' posteriors ``resp`` (n, K):
        sum_k resp_ik E[x_j | z = k], for families whose components are independent across
        columns (what ``impute`` fills missing entries with); ValueError for the others."""
        raise ValueError(f"impute is not supported by {type(self).__name__}")

    def impute_block(self, packed, params, X, chunk_size, n_threads, work, out):
        """Write ``X`` into ``out`` (n, D) float64 with each NaN entry replaced by its
        conditional mean given the row's observed entries, under ``params`` packed by this
        (marginal) family: :meth:`expected_values` of the rows' posteriors."""
        resp = np.empty((X.shape[0], packed.log_norm.shape[0]))
        self.predict_block(packed, X, chunk_size, n_threads, work, None, resp, None)
        out[:] = np.where(X != X, self.expected_values(params, resp), X)

    def add_log_weights(self, packed, log_weights):
        """``packed`` with ``log_weights`` (K,) added to its per-component constants (how a
        latent structure puts its prior over z into the fused kernel)."""
        return packed._replace(log_norm=packed.log_norm + log_weights)

    def pack_pivot(self, pivot, dtype):
        """A packing for passes with given responsibilities (initialisation) around ``pivot``
        (K, D): data-space centres of the components, used where statistics are centred."""
        raise NotImplementedError

    def stats_size(self, packed):
        """Length of the statistics vector a pass with ``packed`` fills."""
        raise NotImplementedError

    def rebase(self, stats, from_packed, to_packed):
        """The statistics vector ``stats`` of a pass made with ``from_packed``, restated in
        the frame (layout and centring) of ``to_packed``, so that statistics of passes made
        with different parameters can be added. Identity for uncentred statistics."""
        return stats

    def workspace(self, packed, chunk_size, n_threads, n_chunks):
        """Caller-owned scratch for a pass: (per-thread buffers, per-chunk statistics slots)."""
        raise NotImplementedError

    def fit_block(self, packed, X, weights, resp, with_stats, chunk_size, n_threads, work, stats,
                  worst, row_offset, labels=None):
        """Add a block's log-likelihood and statistics into ``stats`` (chunk order), and update
        ``worst`` = [lowest log p(x_i), its row]. Posteriors are the row-wise normalisation of
        the components' log-densities plus ``packed.log_norm``; ``resp`` (n, K) replaces them
        when given (initialisation, or posteriors from another latent structure). ``labels``
        (n,) intp, when given, clamps each row with ``labels[i] >= 0`` to that component: a
        one-hot posterior, and log p(x_i, z = labels[i]) in the log-likelihood."""
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
        """Exact (or, with a prior, MAP) component M-step from the :class:`~fastem.frame.
        Statistics` view ``stats``. ``params`` are the parameters of the E-step (their frozen
        parts are kept; None at initialisation). Empty components get any finite value."""
        raise NotImplementedError

    def objective(self, params, stats, packed):
        """The components' part of J(theta) + log p(theta), up to a constant."""
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
        """log p(theta) of the components under ``prior`` (0.0 without one)."""
        return 0.0

    @property
    def reseeds_empty(self):
        """Whether components that lose their data are re-seeded on data rows (False where
        the M-step gives them a proper value, such as a prior's mode)."""
        return True

    # ------------------------------------------------------------------ the rest
    def reseed(self, params, lost, rows):
        """Move empty components ``lost`` onto data ``rows`` (float64, one per component)."""
        raise NotImplementedError

    def sample(self, params, counts, rng):
        """``counts[k]`` draws of each component k, stacked in component order."""
        raise NotImplementedError

    def n_parameters(self, n_features, n_components):
        """Number of free parameters of the components (for BIC and AIC)."""
        raise NotImplementedError


def xlogy(x, y):
    """x * log(y), and 0 where x == 0 (an empty component with zero weight adds nothing).
    scipy.special.xlogy without importing scipy at ``import fastem``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x == 0, 0.0, x * np.log(y))


def check_distributions(name, p, shape):
    """``p`` as float64 of ``shape`` whose last axis holds probability distributions, each
    renormalised exactly, or ValueError naming what is wrong: the shape, negative or NaN
    entries, or a sum other than one (beyond np.allclose's tolerance, as hmmlearn checks)."""
    p = np.array(p, dtype=np.float64)
    if p.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {p.shape}")
    if not np.all(p >= 0):  # NaN fails too
        raise ValueError(f"{name} must hold probabilities (>= 0, not NaN)")
    sums = p.sum(axis=-1, keepdims=True)
    bad = np.flatnonzero(~(np.abs(sums - 1.0) <= 1e-8 + 1e-5))
    if bad.size and p.ndim == 1:
        raise ValueError(f"{name} must sum to 1 (got {sums[0]:.10g})")
    if bad.size:
        raise ValueError(f"{name} rows must sum to 1: row {int(bad[0])} sums to "
                         f"{sums.flat[bad[0]]:.10g}")
    return p / sums
