"""Model selection: a grid of candidate mixtures fitted together, ranked by BIC, AIC or ICL.

Every candidate (a number of components, a covariance type, an initialisation) is an EM run of
its estimator, initialised by the estimator's own hooks and then advanced in lock step with all
the others (:mod:`fastem.lockstep`): each pass over the data serves every candidate still
running, so a grid costs the longest candidate's iterations in passes, not their sum. One more
shared pass scores every candidate's final parameters: the log-likelihood and the entropy of
the posteriors (for ICL), one block at a time. In memory and on files, the full and diagonal
Gaussian candidates share one compiled E-step (:mod:`fastem.grid`, features computed once
per chunk, in float64 also for float32 data), the others run their own kernels. A candidate that fails (e.g. a degenerate
covariance) is reported with its error and does not stop the others.

Criteria follow scikit-learn's sign (lower is better): BIC = -2 log L + p log n,
AIC = -2 log L + 2 p and ICL = BIC + 2 sum_i H(r_i), with H(r_i) = -sum_k r_ik log r_ik the
entropy of row i's posteriors (Biernacki, Celeux & Govaert 2000, in its soft form). mclust
reports BIC with the opposite sign (higher is better); the choices agree.
"""
import math
import numbers
import warnings
from dataclasses import dataclass, fields
from functools import partial

import numpy as np

from ._config import single_threaded_blas
from .drivers import make_driver
from .drivers.local import LocalDriver
from .em import ConvergenceWarning
from .estimators import GaussianMixture, MixtureModel
from .estimators._base import _MixtureBase, check_random_state, progress_bars
from .estimators.names import estimator_class
from .families.base import Family
from .grid import GridPasses
from .lockstep import FAILURES, Fit, SharedInit, run_lockstep

CRITERIA = ("bic", "aic", "icl")
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


@dataclass
class Candidate:
    """One row of a selection's table."""

    n_components: int
    covariance_type: str = None  # None for families without one
    log_likelihood: float = math.nan
    n_parameters: int = 0
    bic: float = math.nan
    aic: float = math.nan
    icl: float = math.nan
    n_iter: int = 0
    converged: bool = False
    error: str = None

    @property
    def name(self):
        return (f"K={self.n_components}" if self.covariance_type is None
                else f"{self.covariance_type} K={self.n_components}")


class Selection:
    """What :func:`select` returns: ``table`` (a list of :class:`Candidate`, in grid order),
    ``best_`` (the chosen fitted estimator), ``best_index``, ``criterion``, ``estimators``
    (every candidate's fitted estimator, None where it failed) and ``n_passes`` (the passes
    over the data made by the lock-step EM iterations)."""

    def __init__(self, table, estimators, criterion, n_passes):
        self.table, self.estimators, self.criterion = table, estimators, criterion
        self.n_passes = n_passes
        values = [getattr(row, criterion) for row in table]
        usable = [i for i, v in enumerate(values) if table[i].error is None and np.isfinite(v)]
        if not usable:
            raise ValueError("every candidate failed: " + "; ".join(
                f"{row.name}: {row.error}" for row in table))
        self.best_index = min(usable, key=lambda i: values[i])
        self.best_ = estimators[self.best_index]

    @property
    def best(self):
        """The chosen row of the table."""
        return self.table[self.best_index]

    def to_dict(self):
        """The table as columns (e.g. for ``pandas.DataFrame``)."""
        return {f.name: [getattr(row, f.name) for row in self.table] for f in fields(Candidate)}

    def __str__(self):
        head = (f"{'candidate':<16}{'log-lik':>14}{'params':>8}{'BIC':>14}{'AIC':>14}"
                f"{'ICL':>14}{'iter':>6}  converged")
        lines = [head]
        for i, row in enumerate(self.table):
            mark = " *" if i == self.best_index else ""
            if row.error is not None:
                lines.append(f"{row.name:<16}  failed: {row.error}")
                continue
            lines.append(f"{row.name:<16}{row.log_likelihood:>14.6g}{row.n_parameters:>8}"
                         f"{row.bic:>14.6g}{row.aic:>14.6g}{row.icl:>14.6g}{row.n_iter:>6}  "
                         f"{str(row.converged):<5}{mark}")
        lines.append(f"best by {self.criterion.upper()}: {self.best.name}")
        return "\n".join(lines)

    def plot(self, criterion=None, ax=None):
        """The criterion against K, one line per covariance type, as mclust's BIC plot (which
        plots -BIC); failed candidates are gaps. Needs matplotlib (``pip install
        fastem[plot]``). Returns the axes."""
        import matplotlib.pyplot as plt

        criterion = _check_criterion(criterion or self.criterion)
        if ax is None:
            ax = plt.figure(figsize=(6, 4)).gca()
        kinds = list(dict.fromkeys(row.covariance_type for row in self.table))
        markers = "osD^vx+*"
        for i, kind in enumerate(kinds):
            rows = sorted((r for r in self.table if r.covariance_type == kind),
                          key=lambda r: r.n_components)
            values = [getattr(r, criterion) if r.error is None else np.nan for r in rows]
            ax.plot([r.n_components for r in rows], values, marker=markers[i % len(markers)],
                    label=kind or "model")
        best = self.best
        ax.plot([best.n_components], [getattr(best, criterion)], "k*", markersize=14,
                label=f"best by {self.criterion.upper()}")
        ax.set_xlabel("number of components")
        ax.set_ylabel(f"{criterion.upper()} (lower is better)")
        ax.legend()
        return ax


def select(X, n_components=range(1, 21), covariance_type=("full", "diag"), criterion="bic", *,
           family=None, n_init=1, random_state=None, sample_weight=None, tol=None,
           max_iter=None, init_params=None, n_threads=None, chunk_size=None, progress=False,
           nan_policy="raise", callback=None, **params):
    """Fit every candidate of a grid on ``X`` in shared passes and pick one by ``criterion``.

    ``family``: None or "gaussian" (GaussianMixture over ``covariance_type``), a family name
    (``"bernoulli"``, ``"categorical"``, ``"poisson"``, ``"exponential"``, ``"gamma"``), an
    estimator class, or a :class:`~fastem.families.base.Family` (a MixtureModel of it). The
    covariance grid applies to estimators that have ``covariance_type``. ``X`` is any source
    an estimator takes (arrays, memmaps, ``.npy`` paths, h5py/zarr, Dask arrays). Other
    ``params`` go to every candidate's estimator (e.g. ``reg_covar``); ``tol``, ``max_iter``
    and ``init_params`` left at None keep the estimator's defaults.

    Each candidate's result equals a separate ``fit`` with the same ``random_state`` (an int or
    None; for ``n_init > 1``, as long as no component is re-seeded, since a separate fit draws
    its later initialisations after the earlier runs). ``callback(n_passes, running)`` is
    called after every shared pass with the candidates still running. Returns a
    :class:`Selection`.
    """
    criterion = _check_criterion(criterion)
    cls, fixed = _estimator(family)
    ks = _check_grid(n_components)
    kinds = _covariance_grid(cls, covariance_type)
    given = {"tol": tol, "max_iter": max_iter, "init_params": init_params}
    options = dict(fixed, n_init=n_init, random_state=random_state, n_threads=n_threads,
                   chunk_size=chunk_size, nan_policy=nan_policy, **params,
                   **{name: value for name, value in given.items() if value is not None})
    driver = make_driver(X, sample_weight, chunk_size, n_threads,
                         progress=progress_bars if progress else None, min_samples=2,
                         estimator="select")
    usable = (driver.n_samples if driver.sample_weight is None
              else int(np.count_nonzero(driver.sample_weight)))
    if max(ks) > usable:
        raise ValueError(f"n_components goes up to {max(ks)} but X has only {usable} rows"
                         + ("" if driver.sample_weight is None else " of positive weight"))
    estimators = [cls(n_components=k, **options, **({} if kind is None else
                                                    {"covariance_type": kind}))
                  for kind in kinds for k in ks]
    with single_threaded_blas():
        shared = _check_rows(estimators[0], driver)
        for est in estimators:
            vars(est).update(shared)
        grid = GridPasses(driver) if isinstance(driver, LocalDriver) else None
        runs = SharedInit(driver, grid).run([partial(_start, est) for est in estimators])
        n_passes = run_lockstep([fit for fits in runs for fit in fits], driver, callback, grid)
        finished = [_finish(est, fits, driver) for est, fits in zip(estimators, runs)]
        table = _score(estimators, finished, driver, grid)
    stopped = [row.name for row in table if row.error is None and not row.converged]
    if stopped and estimators[0].max_iter > 0:
        warnings.warn(f"{len(stopped)} candidate(s) did not converge within max_iter: "
                      f"{', '.join(stopped)}", ConvergenceWarning, stacklevel=2)
    return Selection(table, [est if row.error is None else None
                             for est, row in zip(estimators, table)], criterion, n_passes)


def _check_criterion(criterion):
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {list(CRITERIA)}, got {criterion!r}")
    return criterion


def _estimator(family):
    """The estimator class of ``family`` and the parameters it fixes."""
    if family is None:
        return GaussianMixture, {}
    if isinstance(family, str):
        return estimator_class(family), {}
    if isinstance(family, Family):
        return MixtureModel, {"family": family}
    if isinstance(family, type) and issubclass(family, _MixtureBase):
        return family, {}
    raise ValueError(f"family must be None, a family name, a mixture estimator class or a "
                     f"fastem Family, got {family!r}")


def _check_grid(n_components):
    ks = [n_components] if isinstance(n_components, numbers.Integral) else list(n_components)
    if not ks:
        raise ValueError("the grid is empty: n_components holds no value")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"n_components must hold integers >= 1, got {k!r}")
    return [int(k) for k in dict.fromkeys(ks)]


def _covariance_grid(cls, covariance_type):
    """The covariance types to try; [None] for estimators without one."""
    if "covariance_type" not in cls._param_names():
        return [None]
    kinds = [covariance_type] if isinstance(covariance_type, str) else list(covariance_type)
    if not kinds:
        raise ValueError("the grid is empty: covariance_type holds no value")
    for kind in kinds:
        if kind not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must hold values of {list(COVARIANCE_TYPES)}, "
                             f"got {kind!r}")
    return list(dict.fromkeys(kinds))


def _check_rows(est, driver):
    """Check every row once, for all candidates (they share the family's support), and
    return what the estimator's data hooks read from the data (e.g. category counts), which
    every candidate shares."""
    est._data_parameters(driver)
    shared = {name: value for name, value in vars(est).items() if name.endswith("_")}
    est._check_parameters(driver.n_features)
    est._check_rows(driver, est._make_family(driver.n_features))
    return shared


def _start(est, driver):
    """A candidate's initialised EM runs (one per ``n_init``), as its ``fit`` makes them; a
    candidate failing here gets one run holding the error. Runs in its own thread, on a
    :class:`~fastem.lockstep.SharedInit` driver."""
    rng = check_random_state(est.random_state)
    try:
        est._check_parameters(driver.n_features)
        est.family_ = est._build_family(driver, rng)
        latent, family = est._latent(), est._family()  # marginal under "marginalize"
        inits = [est._initial_params(latent, family, driver, rng) for _ in range(est.n_init)]
    except FAILURES as error:
        return [Fit(None, None, None, rng, est.tol, 0, error=error)]
    return [Fit(latent, family, params, rng, est.tol, est.max_iter, est.m_step,
                est.m_step_iters, symmetric_start=est.init_params == "random")
            for params in inits]


def _finish(est, fits, driver):
    """Set the best run's result on the estimator (as ``fit`` does); the error if all failed."""
    done = [fit for fit in fits if fit.error is None]
    if not done:
        return fits[0].error
    best = done[0]
    for fit in done[1:]:
        if fit.result.lower_bound > best.result.lower_bound:
            best = fit
    est.n_omitted_rows_ = driver.n_omitted
    est._set_result(best.result, driver.n_features, driver.dtype)
    return None


def _score(estimators, errors, driver, grid):
    """The table: one shared pass scores every fitted candidate's final parameters (the
    Gaussian ones in the grid kernel, when ``grid`` is given)."""
    jobs, rows = [], []
    for est, error in zip(estimators, errors):
        packed = None
        if error is None:
            latent, family, params = est._latent(), est._family(), est._fitted_params()
            try:
                packed = None if grid is None else grid.pack_params(latent, family, params)
                if packed is None:
                    packed = latent.pack(family, params, driver.dtype)
            except FAILURES as failure:
                error = failure
        rows.append(Candidate(est.n_components, getattr(est, "covariance_type", None),
                              error=None if error is None else f"{type(error).__name__}: "
                                                               f"{error}"))
        if packed is not None:
            jobs.append((len(rows) - 1, est._family(), packed))
    sums = ((grid or driver).score_many([(family, packed) for _, family, packed in jobs])
            if jobs else [])
    n = driver.n_samples
    total = n if driver.sample_weight is None else float(driver.sample_weight.sum())
    for (i, _, _), (ll, entropy) in zip(jobs, sums):
        est, row = estimators[i], rows[i]
        log_l = ll * n / total  # as the estimators' bic(): the mean log-likelihood times n
        p = est._n_parameters()
        row.log_likelihood, row.n_parameters = float(log_l), p
        row.bic = float(-2 * log_l + p * np.log(n))
        row.aic = float(-2 * log_l + 2 * p)
        row.icl = float(row.bic + 2 * entropy * n / total)
        row.n_iter, row.converged = est.n_iter_, bool(est.converged_)
    return rows
