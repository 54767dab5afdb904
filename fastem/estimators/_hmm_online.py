"""Online EM on every hidden Markov model: ``partial_fit(X, lengths=None)`` and
``fit(X, lengths, algorithm="stepwise" | "incremental", batch_size=...)``.

Each call is one update of :func:`fastem.online.stepwise_update` over the batch's sequences,
the code the mixtures' ``partial_fit`` runs: forward-backward over the batch gives its
statistics (start counts, K x K transition counts and the emissions' statistics in the
family's frame), the running statistics per row become ``s <- (1 - rho_t) s + rho_t s_batch``
with ``rho_t = (t + tau)^-kappa`` (``learning_offset`` tau >= 0, ``learning_decay`` kappa in
(0.5, 1], as scikit-learn's ``LatentDirichletAllocation`` names them; t updates made before,
and rho = 1 for the first), and the M-step runs on them scaled to the rows seen so far, so that
the priors' pseudo-counts stand against the effective sample size as in batch EM.

* The first call on an unfitted model initialises as ``fit`` does (letters of
  ``init_params``; parameters left out of it are used as set); later calls check the column
  count and continue. After ``fit``, ``load`` or assigning a fitted attribute, the next call
  continues from the model's attributes with fresh running statistics (the step count t goes
  on).
* Letters absent from ``params`` stay frozen; zero start and transition probabilities stay
  zero (their counts are masked, as in ``fit``).
* ``monitor_``: the first call resets it; each call appends the batch's log-likelihood (the
  log-posterior under start and transition priors) under the parameters before the update to
  ``history`` and counts in ``iter``. Batches differ, so ``converged`` (a change below
  ``tol``) says little about a stream.
* Atomic: the update runs on a copy of the model, committed only when it succeeded, so a batch
  that raises (NaN under ``nan_policy="raise"``, another column count, values outside the
  family's support, ``lengths`` not summing to the rows) leaves the model exactly as it was.

``fit(X, lengths, algorithm="stepwise" | "incremental", batch_size=10_000)`` runs
:func:`fastem.online.run_online` (the mixtures' ``fit(algorithm=...)``) over blocks of whole
sequences of at most ``batch_size`` rows (a longer sequence alone): an M-step after every block,
stepwise in a new order of blocks each pass (from ``random_state``), incremental keeping one
statistics vector per block. ``n_iter`` counts passes, ``monitor_.history`` holds each pass's
online estimate of the log-likelihood (each block's under the parameters it was read with) and
``monitor_`` stops the passes as it stops batch EM's iterations. MAP pseudo-counts stand
against all rows of ``X``, so the fixed point is batch EM's. ``HMM(m_step="partial")``: online
EM takes exact M-steps. Online ``fit`` does not take Dask arrays yet (``partial_fit`` does).
"""
import copy

from .. import online
from .._config import single_threaded_blas
from ..drivers import is_dask_array
from ._base import check_random_state


class HMMOnlineMixin:
    """``partial_fit`` and ``fit``'s online algorithms over
    :class:`~fastem.estimators.hmm._HMMBase`'s hooks (``_start``, ``_checked``, ``_latent``,
    ``_set_params``, ``_fitted_arrays``)."""

    def _check_algorithm(self, X, algorithm, batch_size):
        """ValueError for an unknown ``fit`` algorithm or, online, a bad ``batch_size`` or
        schedule, or a Dask array."""
        if algorithm not in online.ALGORITHMS:
            raise ValueError(f"algorithm must be one of {list(online.ALGORITHMS)}, got "
                             f"{algorithm!r}")
        if algorithm != "batch":
            online.check_batch_size(batch_size)
            online.check_schedule(self.learning_offset, self.learning_decay)
            if is_dask_array(X):
                raise ValueError(f"algorithm={algorithm!r} is not supported on Dask arrays yet")

    def _run_online(self, algorithm, batch_size, latent, family, driver, params, **options):
        """``fit``'s online EM over blocks of whole sequences (module docstring)."""
        return online.run_online(latent, family, driver, params, algorithm=algorithm,
                                 batch_size=batch_size, learning_offset=self.learning_offset,
                                 learning_decay=self.learning_decay, **options)

    def partial_fit(self, X, lengths=None):
        """One stepwise-EM update from the sequences of ``X`` cut by ``lengths`` (their sum is
        n_samples; None: one sequence). Returns self.

        The running statistics (start counts, transition counts, the emissions' sums) become
        ``(1 - rho) s + rho s_batch`` with ``rho = (t + learning_offset) ** -learning_decay``
        (1 for the first update), then the M-step runs on them, priors against the rows seen.
        The first call on an unfitted model initialises as ``fit`` does; after ``fit`` (or
        ``load``, or assigning a fitted attribute) an update starts from the attributes with
        fresh running statistics. ``monitor_.history`` gains the batch's log-likelihood under
        the parameters before the update, ``monitor_.iter`` counts updates. A batch that raises
        (NaN, another column count, values outside the family's support, bad ``lengths``)
        leaves the model exactly as it was. See :mod:`fastem.estimators._hmm_online`."""
        online.check_schedule(self.learning_offset, self.learning_decay)
        model = copy.copy(self)  # the update runs on a copy: a batch that raises changes nothing
        first = not hasattr(self, "n_features_in_")
        with single_threaded_blas():  # small BLAS calls must not wake (and leave) threads
            value = model._stepwise_update(X, lengths, first)
        vars(self).update(vars(model))
        monitor = self.monitor_
        if first:
            monitor.tol, monitor.n_iter, monitor.verbose = self.tol, self.n_iter, self.verbose
            monitor._reset()
        monitor.report(value)
        return self

    def _stepwise_update(self, X, lengths, first):
        """The update on this model (a copy): its parameters and running state replaced;
        returns the batch's objective under the parameters before it."""
        if first:
            driver, family, params = self._start(X, lengths)
        else:
            driver, family, params = self._checked(X, lengths)
        state = self._running_state(params)
        latent = self._latent()
        new, ll, _ = online.stepwise_update(
            latent, family, driver, state, learning_offset=self.learning_offset,
            learning_decay=self.learning_decay, rng=check_random_state(self.random_state))
        self._set_params(new.params)
        self._online_state = (new, self._attributes())
        return ll + latent.log_prior(family, state.params)

    def _running_state(self, params):
        """The running statistics of the last update while the fitted attributes are those it
        left, else fresh ones from ``params`` (the step count kept)."""
        state, kept = getattr(self, "_online_state", (None, ()))
        if state is not None and all(a is b for a, b in zip(kept, self._attributes())):
            return state
        return online.StepwiseState(params, n_steps=0 if state is None else state.n_steps)

    def _attributes(self):
        """The fitted attributes' objects (held, so that a replaced one is never mistaken
        for them)."""
        return tuple(getattr(self, name) for name in self._fitted_arrays)
