"""Online EM on every mixture estimator: ``partial_fit`` and ``fit(algorithm=...)``.

Constructor parameters (of every mixture estimator):

``algorithm`` : "batch" (default), "incremental" or "stepwise"
    How ``fit`` runs EM (``fastem.online``): batch EM makes one M-step per pass over the data;
    incremental and stepwise EM make one per block of ``batch_size`` rows. Then ``max_iter``
    and ``tol`` count and compare passes, ``n_iter_`` counts passes and ``n_steps_`` M-steps;
    incremental EM keeps one statistics vector per block (``stats_nbytes_`` bytes), seeded by
    a first, stepwise pass.
``batch_size`` : int, default 10_000
    Rows per block of the online algorithms.
``learning_offset`` (tau, >= 0, default 10) and ``learning_decay`` (kappa, in (0.5, 1],
default 0.7)
    Stepwise EM's step sizes rho_t = (t + tau)^-kappa, named as in scikit-learn's
    ``LatentDirichletAllocation``; also used by ``partial_fit``.

``partial_fit(X, y=None)`` makes one stepwise update from the batch ``X`` (its rows labelled
by ``y`` clamped, NaN entries marginalised under ``nan_policy="marginalize"``, as in ``fit``): the first call (or the first
after ``fit`` or a parameter change that cleared the running statistics) initialises from the
``*_init`` parameters or ``init_params`` on that batch, as ``fit`` does; later calls check the
column count. ``n_iter_`` counts batches. Each batch is checked (``nan_policy``, the family's
support) before anything changes, and the update replaces the fitted state at once: a batch
that raises leaves the model exactly as it was. ``warm_start`` does not apply: partial_fit
always continues a fitted model. After ``fit``, partial_fit continues from the fitted
parameters with fresh running statistics.
"""
import numpy as np

from .. import online
from .._config import single_threaded_blas
from ..em import run_em


class OnlineMixin:
    """``partial_fit`` and the choice of EM algorithm, over :class:`~._base._MixtureBase`'s
    hooks (``_prepare``, ``_build_family``, ``_initial_params``, ``_latent``,
    ``_set_params``)."""

    def _check_online_parameters(self):
        if self.algorithm not in online.ALGORITHMS:
            raise ValueError(f"algorithm must be one of {list(online.ALGORITHMS)}, got "
                             f"{self.algorithm!r}")
        online.check_batch_size(self.batch_size)
        online.check_schedule(self.learning_offset, self.learning_decay)

    def _run(self, latent, family, driver, params, rng, lower_bound, warm, symmetric_start):
        """EM by ``algorithm`` from ``params``: batch (``fastem.em``; ``symmetric_start``, see
        :func:`~fastem.em.run_em`) or online."""
        if self.algorithm == "batch":
            return run_em(latent, family, driver, params, tol=self.tol, max_iter=self.max_iter,
                          rng=rng, lower_bound=lower_bound, callback=self._report,
                          m_step=self.m_step, m_step_iters=self.m_step_iters,
                          symmetric_start=symmetric_start)
        self._say(1, f"{self.algorithm} EM over blocks of {self.batch_size} rows")
        result = online.run_online(
            latent, family, driver, params, algorithm=self.algorithm,
            batch_size=self.batch_size, tol=self.tol, max_iter=self.max_iter, rng=rng,
            learning_offset=self.learning_offset, learning_decay=self.learning_decay,
            n_steps=self.n_steps_ if warm else 0, lower_bound=lower_bound,
            callback=self._report)
        if result.stats_nbytes:
            self._say(1, f"incremental EM kept {result.stats_nbytes / 2**20:.2f} MiB of block "
                         "statistics")
        return result

    def _set_online_result(self, result):
        """The online counters of a fit (``n_steps_``: M-steps; ``stats_nbytes_``)."""
        self.n_steps_ = int(getattr(result, "n_steps", result.n_iter))
        self.stats_nbytes_ = int(getattr(result, "stats_nbytes", 0))
        self._online_state = None  # partial_fit after fit starts fresh running statistics

    def _partial_fit(self, X, sample_weight, rng, y=None):
        """One stepwise-EM update from the batch ``X`` and its partial labels ``y`` (see
        :mod:`fastem.estimators._online`), with ``rng`` for initialisation and re-seeding.
        Returns self."""
        self._check_online_parameters()
        with single_threaded_blas():
            fitted = hasattr(self, "n_features_in_")
            if fitted:
                driver, omitted = self._checked_batch(X, sample_weight)
                self._set_labels(driver, y)
                family, latent = self._family(), self._latent()
                state = getattr(self, "_online_state", None) or online.StepwiseState(
                    self._fitted_params(), n_steps=self.n_steps_)
            else:
                _, driver = self._prepare(X, sample_weight, reset=True)
                self._set_labels(driver, y)
                omitted, latent = driver.n_omitted, self._latent()
                family = self._build_family(driver, rng)
                if self.nan_policy == "marginalize":
                    family = family.marginal()
                state = online.StepwiseState(self._initial_params(latent, family, driver, rng))
            state, ll, total = online.stepwise_update(
                latent, family, driver, state, learning_offset=self.learning_offset,
                learning_decay=self.learning_decay, rng=rng)
        bound = (ll + latent.log_prior(family, state.params)) / total
        # every fitted attribute at once: an error above leaves the model as it was
        self.family_ = family
        self._set_params(state.params.astype(driver.dtype))  # the data's dtype, as fit
        self.n_iter_ = (self.n_iter_ if fitted else 0) + 1
        self.lower_bounds_ = (list(self.lower_bounds_) if fitted else []) + [bound]
        self.lower_bound_, self.converged_ = bound, False
        self.n_features_in_, self.n_omitted_rows_ = driver.n_features, omitted
        self.n_steps_, self.stats_nbytes_ = state.n_steps, int(state.stats.nbytes)
        self._online_state = state
        if self.callback is not None:
            self.callback(self)
        return self

    def _checked_batch(self, X, sample_weight):
        """A driver over a later batch, its rows checked as a fit checks them (column count,
        ``nan_policy``, the family's support): ``(driver, rows omitted)``."""
        _, driver = self._prepare(X, sample_weight, reset=False)
        omitted = self._check_rows(driver, self.family_)
        if self.nan_policy == "raise":
            return driver, 0
        if not np.asarray(driver.sample_weight).sum() > 0:
            raise ValueError("every row of the batch was omitted: no data to fit")
        return driver, omitted
