"""Stable kernels for libraries that use fastem as their EM backend (see docs/kernels.md).

Array-in / array-out functions over fastem's compiled, GIL-free kernels: the row-wise
log-sum-exp of an E-step, Gaussian log-densities, weighted sufficient statistics, the fused
E-step and the exact M-step. They speak scikit-learn's parametrisation (means ``(K, D)``,
precision Cholesky factors per covariance type) and never keep state between calls.

Conventions, checked at this boundary with a ``ValueError`` naming the argument:

- Data (``X``, ``log_prob``, ``resp``) must be 2-D float32 or float64; any memory layout is
  accepted. Rows are read in blocks, and a block that is not C-contiguous in its dtype (an
  F-ordered array, a strided view) is copied, one block at a time, before the kernel runs.
- Per-row results ((n,) or (n, K)) go to ``out=`` arguments when given: writeable,
  C-contiguous float64 arrays of the documented shape (or ``.npy`` paths, memory-mapped),
  returned as given. Without ``out`` a new array is returned. Per-component results
  (statistics, parameters: O(K D^2), independent of n) are always new arrays.
- Parameters (weights, means, precision factors) are small and converted to float64.
- ``n_threads=None`` means ``OMP_NUM_THREADS`` or the usable CPUs; BLAS is pinned to one thread
  while the kernels run, as in fastem's own fits.
"""
from typing import NamedTuple

import numpy as np

from . import data
from ._config import resolve_n_threads, single_threaded_blas
from .drivers.local import PREDICT_CHUNKS, LocalDriver, default_chunk_size
from .families.gaussian import (
    COVARIANCE_TYPES,
    GaussianFamily,
    GaussianParams,
    KernelParams,
    covariance_shape,
    unpack_moments,
)
from .frame import Statistics
from .latent.mixture import Mixture, MixtureParams

__all__ = [
    "GaussianParameters",
    "GaussianStatistics",
    "EStep",
    "KernelParams",
    "normalize_log_rows",
    "gaussian_log_prob",
    "gaussian_statistics",
    "gaussian_e_step",
    "gaussian_m_step",
    "pack_gaussian",
    "FamilyEStep",
    "family_e_step",
    "family_m_step",
    "family_predict",
    "family_statistics",
]


class GaussianStatistics(NamedTuple):
    """Weighted sufficient statistics of a Gaussian mixture, centred on ``center``.

    Statistics with the same ``center`` add field by field (nk, first, second), which is how
    chunks of a stream are combined.
    """

    nk: np.ndarray  # (K,) sum_i w_i r_ik
    first: np.ndarray  # (K, D) sum_i w_i r_ik (x_i - c_k)
    second: np.ndarray  # (K, D, D) sum_i w_i r_ik (x_i - c_k)(x_i - c_k)', or its diagonal (K, D)
    center: np.ndarray  # (K, D) the centres c_k


class EStep(NamedTuple):
    """Result of :func:`gaussian_e_step`."""

    log_likelihood: float  # sum_i w_i log p(x_i)
    statistics: GaussianStatistics


class GaussianParameters(NamedTuple):
    """Result of :func:`gaussian_m_step`, in scikit-learn's shapes."""

    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, D)
    covariances: np.ndarray  # full (K, D, D), tied (D, D), diag (K, D), spherical (K,)
    precisions_cholesky: np.ndarray  # same shape as covariances
    empty: np.ndarray  # indices of components that received no weight


def normalize_log_rows(log_prob, *, out=None, lse_out=None, n_threads=None):
    """Responsibilities and log-normalisers of a block of log-probabilities.

    ``log_prob`` (n, K) float32/float64 holds log p(x_i, z = k) up to a per-row constant.
    Returns ``(resp, lse)``: ``resp`` (n, K) float64 with rows summing to one and
    ``lse`` (n,) float64, the row-wise log-sum-exp. A row that is all -inf gets zero
    responsibilities and ``lse = -inf`` (never NaN). ``out=log_prob`` (a C-contiguous float64
    array) normalises in place.
    """
    log_prob = _data(log_prob, "log_prob")
    n, k = log_prob.shape
    _check_components(k, "log_prob")
    out = data.output_array(out, (n, k), np.float64, "out")
    lse_out = data.output_array(lse_out, (n,), np.float64, "lse_out")
    if out is not log_prob:
        np.copyto(out, log_prob)
    _kernel("logsumexp").normalize_rows(out, lse_out, default_chunk_size(1, k),
                                        resolve_n_threads(n_threads))
    return out, lse_out


def gaussian_log_prob(X, means, precisions_cholesky, covariance_type, *, weights=None,
                      out=None, n_threads=None, chunk_size=None):
    """log N(x_i | mu_k, Sigma_k) + log weights[k] for every row and component, (n, K) float64.

    ``precisions_cholesky`` as in scikit-learn: full (K, D, D), tied (D, D), diag (K, D),
    spherical (K,). With ``weights=None`` the result is the plain log-density.
    """
    X = _data(X, "X")
    params = _gaussian_params(weights, means, precisions_cholesky, covariance_type, X.shape[1])
    family, packed = _pack(params, X.dtype)
    (n, d), k = X.shape, params.n_components
    out = data.output_array(out, (n, k), np.float64, "out", inputs=(X,))
    driver = _driver(X, None, chunk_size, n_threads)
    threads, chunk = driver.n_threads, driver.chunk_size or default_chunk_size(d, k)
    work = family.workspace(packed, chunk, threads, 0)[0]
    no_rows, no_resp, no_labels = np.empty(0), np.empty((0, k)), np.empty(0, dtype=np.intp)
    with single_threaded_blas():
        for start, block, _ in data.iter_blocks(X, PREDICT_CHUNKS * chunk, packed.dtype):
            _kernel("gaussian").predict_block(
                packed.kind, block, packed.proj, packed.center, packed.log_norm, packed.pivot,
                chunk, threads, work, no_rows, no_resp, no_labels,
                out[start:start + block.shape[0]],
            )
    return out


def gaussian_statistics(X, resp, covariance_type, *, sample_weight=None, center=None,
                        n_threads=None, chunk_size=None):
    """Weighted sufficient statistics of ``X`` under given responsibilities ``resp`` (n, K).

    ``second`` is (K, D, D) for "full" and "tied", its diagonal (K, D) for "diag" and
    "spherical". ``center`` (K, D) or (D,) defaults to the origin; passing the current means
    keeps second moments accurate for data far from the origin. It is rounded to X's dtype,
    and the returned ``center`` is the one used.
    """
    X = _data(X, "X")
    resp = _data(resp, "resp")
    n, d = X.shape
    k = resp.shape[1]
    _check_components(k, "resp")
    if resp.shape[0] != n:
        raise ValueError(f"resp has {resp.shape[0]} rows, X has {n}")
    family = GaussianFamily(_covariance_type(covariance_type))
    center = np.zeros(d) if center is None else _float_array(center, "center")
    if center.shape not in ((d,), (k, d)):
        raise ValueError(f"center must have shape ({d},) or ({k}, {d}), got {center.shape}")
    packed = family.pack_pivot(np.broadcast_to(center, (k, d)), X.dtype)
    driver = _driver(X, sample_weight, chunk_size, n_threads)
    flat, _ = driver.accumulate(family, packed, resp_fn=_resp_blocks(resp))
    return _statistics(flat, packed)


def gaussian_e_step(X, weights, means, precisions_cholesky, covariance_type, *,
                    sample_weight=None, n_threads=None, chunk_size=None):
    """The fused E-step: log-likelihood and sufficient statistics in one pass over ``X``.

    Responsibilities are formed chunk by chunk in cache and never returned; no (n, K) array
    is allocated. The statistics' ``center`` is chosen by the kernel for accuracy (the
    current means or the mixture mean); :func:`gaussian_m_step` takes it into account.
    """
    X = _data(X, "X")
    params = _gaussian_params(weights, means, precisions_cholesky, covariance_type, X.shape[1])
    # per-component, per-dimension second moments: tied and spherical run the full and diag
    # kernels (their own pool them over components or dimensions)
    components = params.components
    k, d = components.means.shape
    chol = components.precisions_cholesky
    if components.covariance_type == "tied":
        params = MixtureParams(params.weights, GaussianParams(
            "full", components.means, None, np.broadcast_to(chol, (k, d, d))))
    elif components.covariance_type == "spherical":
        params = MixtureParams(params.weights, GaussianParams(
            "diag", components.means, None, np.repeat(chol[:, None], d, axis=1)))
    family, packed = _pack(params, X.dtype)
    flat, _ = _driver(X, sample_weight, chunk_size, n_threads).accumulate(family, packed)
    return EStep(_log_likelihood(flat, packed), _statistics(flat, packed))


def gaussian_m_step(statistics, covariance_type, *, reg_covar=1e-6):
    """Exact M-step: mixture weights, means and covariances from :class:`GaussianStatistics`.

    ``reg_covar`` is added to the diagonal of every covariance. A component with no weight keeps
    its centre as mean and gets the pooled covariance; its index is listed in ``empty`` so that
    the caller can re-seed it. Raises ValueError when the statistics hold no weight or a
    covariance is not positive definite.
    """
    covariance_type = _covariance_type(covariance_type)
    if not (np.isfinite(reg_covar) and reg_covar >= 0):
        raise ValueError(f"reg_covar must be a non-negative number, got {reg_covar!r}")
    nk, first, second, center = (_float_array(a, name) for a, name in
                                 zip(statistics, GaussianStatistics._fields))
    if center.ndim != 2 or center.shape[0] < 1:
        raise ValueError(f"statistics.center must have shape (K, D), got {center.shape}")
    k, d = center.shape
    full = covariance_type in ("full", "tied")
    expected = {"nk": (k,), "first": (k, d), "second": (k, d, d) if full else (k, d)}
    for name, array in zip(expected, (nk, first, second)):
        if array.shape != expected[name]:
            raise ValueError(f"statistics.{name} must have shape {expected[name]} for "
                             f"{covariance_type!r} and {k} components, got {array.shape}")
    if not (np.all(nk >= 0) and nk.sum() > 0):
        raise ValueError("statistics.nk must be non-negative with a positive sum: no data")
    moments = [first.ravel(), second.ravel()] if full else [np.hstack([first, second]).ravel()]
    family = GaussianFamily(covariance_type, reg_covar=reg_covar)
    flat = np.concatenate([[0.0, nk.sum()], nk, *moments])
    params, empty = Mixture().m_step(family, flat, family.pack_pivot(center, np.float64))
    components = params.components
    return GaussianParameters(params.weights, components.means, components.covariances,
                              components.precisions_cholesky, empty)


def pack_gaussian(weights, means, precisions_cholesky, covariance_type, dtype):
    """Parameters laid out for the C-level kernels of ``fastem/_kernels/gaussian.pxd``.

    Returns :class:`KernelParams` ``(kind, proj, center, log_norm, pivot)``: C-contiguous
    arrays (``log_norm`` float64) to pass by pointer. They are in ``dtype`` or, where float32
    would lose accuracy in the fast form, in float64: ``packed.dtype`` is the dtype the kernel
    must be called with (convert data chunks to it). The layout depends on the kind chosen for
    accuracy and may change in a minor release; pass it through unchanged.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    params = _gaussian_params(weights, means, precisions_cholesky, covariance_type)
    return _pack(params, dtype)[1]


class FamilyEStep(NamedTuple):
    """Result of :func:`family_e_step`: pass it unchanged to :func:`family_m_step`."""

    log_likelihood: float  # sum_i w_i log p(x_i)
    statistics: np.ndarray  # the family's statistics vector [ll, sum w, s0 (K), family sums]
    packed: object  # the kernel layout the statistics were computed with


def family_e_step(X, family, params, *, sample_weight=None, n_threads=None, chunk_size=None):
    """The fused E-step of any model family, in one pass over ``X``.

    ``family`` is a :class:`fastem.families.base.Family` (``GaussianFamily``, a
    ``ProductFamily`` of exponential-family columns such as ``Poisson()`` or ``Categorical(4)``,
    or a Numba ``CustomFamily``) and ``params`` a :class:`fastem.latent.mixture.MixtureParams`
    (the weights and the family's parameters object). The statistics vector
    adds across calls made with the same ``packed`` layout (same parameters and dtype), so a
    caller can stream its own chunks and sum them.
    """
    X, packed = _family_input(X, family, params)
    flat, _ = _driver(X, sample_weight, chunk_size, n_threads).accumulate(family, packed)
    return FamilyEStep(_log_likelihood(flat, packed), flat, packed)


def family_statistics(X, resp, family, params, *, sample_weight=None, n_threads=None,
                      chunk_size=None):
    """Weighted sufficient statistics of any family under given responsibilities ``resp``
    (n, K), finite and non-negative: the analogue of :func:`gaussian_statistics`, for a caller
    with its own E-step. Returns a :class:`FamilyEStep` for :func:`family_m_step` in the layout
    of ``params``; its ``log_likelihood`` is 0.0 (none is computed from given posteriors)."""
    X, packed = _family_input(X, family, params)
    shape = (X.shape[0], packed.log_norm.shape[0])
    resp = _data(resp, "resp")
    if resp.shape != shape:
        raise ValueError(f"resp must have shape {shape}, got {resp.shape}")
    driver = _driver(X, sample_weight, chunk_size, n_threads)
    flat, _ = driver.accumulate(family, packed, resp_fn=_resp_blocks(resp))
    return FamilyEStep(_log_likelihood(flat, packed), flat, packed)


def family_m_step(family, e_step, params=None, *, mixture=None):
    """The mixture's exact (or, with a prior on ``family`` or on the weights, MAP) M-step from
    a :class:`FamilyEStep`: ``(new MixtureParams, indices of empty components)``. ``mixture``
    is a :class:`fastem.latent.mixture.Mixture` (its Dirichlet prior on the weights and frozen
    weights; default: maximum likelihood). ``params``, the E-step's parameters, are needed only
    when something is frozen. Raises ValueError when the statistics hold no weight (zero rows or
    zero weights)."""
    view = Statistics(e_step.statistics, e_step.packed.log_norm.shape[0])
    if not view.s0.sum() > 0:
        raise ValueError("e_step.statistics hold no weight (the responsibilities sum to 0): "
                         "no data")
    mixture = Mixture() if mixture is None else mixture
    return mixture.m_step(family, e_step.statistics, e_step.packed, params)


def family_predict(X, family, params, *, log_prob_out=None, resp_out=None, n_threads=None,
                   chunk_size=None):
    """Per-row log p(x_i) (n,) and posteriors p(z = k | x_i) (n, K) of any family: returns
    ``(log_prob, resp)``, written into the given outputs (float64 arrays or ``.npy`` paths)."""
    X, packed = _family_input(X, family, params)
    n, k = X.shape[0], packed.log_norm.shape[0]
    log_prob = data.output_array(log_prob_out, (n,), np.float64, "log_prob_out", inputs=(X,))
    resp = data.output_array(resp_out, (n, k), np.float64, "resp_out", inputs=(X,))
    _driver(X, None, chunk_size, n_threads).predict(family, packed,
                                                    {"log_prob": log_prob, "resp": resp})
    return log_prob, resp


def _kernel(name):
    """A compiled kernel module, imported on first use (it loads scipy's BLAS)."""
    import importlib

    return importlib.import_module(f"fastem._kernels.{name}")


def _data(array, name):
    """A 2-D float32/float64 array (any layout, never copied here)."""
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {array.shape}")
    if array.dtype not in (np.float32, np.float64):
        raise ValueError(f"{name} must be float32 or float64, got dtype {array.dtype}")
    return array


def _family_input(X, family, params):
    """Checked data ``X`` and ``params`` packed for its dtype; a width that does not match
    ``params`` is an error here rather than deep in a kernel."""
    X = _data(X, "X")
    d = getattr(params, "n_features", None)  # None: a custom family that does not say
    if d is not None and X.shape[1] != d:
        raise ValueError(f"X has {X.shape[1]} columns, the family expects {d}")
    return X, Mixture().pack(family, params, X.dtype)


def _resp_blocks(resp):
    """``resp_fn`` for :meth:`LocalDriver.accumulate`: the caller's responsibilities block by
    block, as C-contiguous float64, checked finite and non-negative (the kernels trust them)."""
    def block_resp(start, block):
        rows = np.ascontiguousarray(resp[start:start + block.shape[0]], dtype=np.float64)
        if not (np.isfinite(rows).all() and (rows >= 0).all()):
            raise ValueError(f"resp must be finite and non-negative; a value in rows {start} "
                             f"to {start + rows.shape[0] - 1} is not")
        return rows

    return block_resp


def _float_array(array, name):
    """A finite float64 parameter array."""
    try:
        array = np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array of real numbers") from None
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return array


def _check_components(k, name):
    if k < 1:
        raise ValueError(f"{name} must have at least one column (component), got 0")


def _covariance_type(covariance_type):
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"covariance_type must be one of {list(COVARIANCE_TYPES)}, "
                         f"got {covariance_type!r}")
    return covariance_type


def _gaussian_params(weights, means, precisions_cholesky, covariance_type, n_features=None):
    """Validated GaussianParams (covariances are not needed by the kernels and left as None).

    ``n_features`` is the data's width, or None to take it from ``means``.
    """
    covariance_type = _covariance_type(covariance_type)
    means = _float_array(means, "means")
    n_features = means.shape[-1] if n_features is None and means.ndim else n_features
    if means.ndim != 2 or means.shape[0] < 1 or means.shape[1] != n_features:
        raise ValueError(f"means must have shape (n_components, {n_features}), got {means.shape}")
    k = means.shape[0]
    chol = _float_array(precisions_cholesky, "precisions_cholesky")
    shape = covariance_shape(covariance_type, k, n_features)
    if chol.shape != shape:
        raise ValueError(f"precisions_cholesky must have shape {shape} for {covariance_type!r}, "
                         f"got {chol.shape}")
    weights = np.ones(k) if weights is None else _float_array(weights, "weights")
    if weights.shape != (k,) or np.any(weights < 0) or not weights.sum() > 0:
        raise ValueError(f"weights must be ({k},), non-negative, with a positive sum")
    return MixtureParams(weights, GaussianParams(covariance_type, means, None, chol))


def _pack(params, dtype):
    """The family for ``params`` and the kernel layout of ``params`` in ``dtype``."""
    family = GaussianFamily(params.components.covariance_type)
    return family, Mixture().pack(family, params, dtype)


def _driver(X, sample_weight, chunk_size, n_threads):
    """A LocalDriver over in-memory ``X`` (weights may all be zero: a chunk then adds nothing)."""
    if sample_weight is not None:
        sample_weight = _float_array(sample_weight, "sample_weight")
    return LocalDriver(X, sample_weight, chunk_size=chunk_size, n_threads=n_threads)


def _log_likelihood(flat, packed):
    return float(Statistics(flat, packed.log_norm.shape[0]).log_likelihood)


def _statistics(flat, packed):
    """GaussianStatistics from a kernel statistics vector and the layout it was computed with."""
    k, d = packed.pivot.shape
    view = Statistics(flat, k)
    first, second = unpack_moments(view.family, packed.kind, k, d)
    return GaussianStatistics(view.s0.copy(), first.copy(), second,
                              packed.pivot.astype(np.float64))
