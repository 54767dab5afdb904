"""MixtureModel: a mixture of any family's components (built-in, a table of columns, or Numba)."""
from ..families.base import Family
from ._base import _MixtureBase


class MixtureModel(_MixtureBase):
    """A mixture of ``n_components`` components of ``family``, fitted by EM on streamed chunks.

    Parameters
    ----------
    family : fastem.families.base.Family
        The components' family (built-in, e.g. ``fastem.families.expfam.ProductFamily([Normal(),
        Poisson()])``, or a ``fastem.families.custom.CustomFamily`` compiled with Numba), with
        its prior and frozen parameters. Model files (:func:`fastem.save`) hold built-in
        families only: a CustomFamily's Python functions cannot be stored without pickle.
    n_components, tol, max_iter, n_init, init_params, random_state, verbose, verbose_interval :
        As in ``sklearn.mixture.GaussianMixture``.
    warm_start : bool
        As in scikit-learn, a second ``fit`` starts from the fitted parameters; it also keeps
        the fitted family ``family_`` (with any data-based prior defaults), so parameters that
        define the family take effect at the next fit from scratch.
    n_threads : int or None
        Threads for every pass over the data (default: ``OMP_NUM_THREADS``, else the CPUs this
        process may use). Results are bitwise identical for any value.
    chunk_size : int or None
        Rows per kernel chunk (default: chosen so a chunk stays in cache). Changes results only
        by floating-point rounding.
    progress : bool
        Show a progress bar (tqdm, on stderr) for every pass over the data.
    callback : callable or None
        ``callback(model)`` after every EM iteration, with the model's fitted attributes set to
        that iteration's parameters (for checkpoints or custom monitoring).
    nan_policy : {"raise", "omit", "marginalize"}
        Rows holding NaN or infinity raise a ValueError naming the first one ("raise"), or are
        left out ("omit"): zero weight in ``fit`` and ``score`` (counted in
        ``n_omitted_rows_``), label -1 and NaN log-likelihood and posteriors in predictions.
        "marginalize" (product families of exponential-family columns): NaN values are missing
        at random and drop out of each row's density; infinity raises, rows with no observed
        value are left out as under "omit".
    m_step : {"exact", "partial"}
        "exact": the closed-form (or, with a prior, MAP) M-step. "partial": generalized EM,
        ``m_step_iters`` Newton steps with backtracking, each kept only if the objective does not
        decrease.
    m_step_iters : int
        Newton steps per partial M-step.
    weight_concentration_prior : float or None
        Symmetric Dirichlet prior on the weights (MAP-EM; >= 1, None or 1: none).
    frozen : tuple of str
        ``("weights",)`` keeps the weights at their initial values through every M-step (the
        family's own ``frozen`` holds component parameters).

    algorithm, batch_size, learning_offset, learning_decay
        ``algorithm="incremental"`` or ``"stepwise"`` makes ``fit`` run online EM over blocks of
        ``batch_size`` rows (an M-step per block; ``max_iter`` and ``n_iter_`` count passes);
        ``partial_fit(X)`` makes one stepwise update per batch, with steps
        ``(t + learning_offset) ** -learning_decay``. See :mod:`fastem.online`.

    ``fit``, ``fit_predict`` and ``score`` also accept ``sample_weight``. ``X`` may be a numpy
    array, an ``np.memmap``, a path to a ``.npy`` file (memory-mapped), an h5py/zarr dataset or
    a Dask array; it is never copied whole and no (n_samples, n_components) array exists during
    ``fit``.

    Attributes
    ----------
    params_ : the family's parameters object
    family_ : the family fitted with (``family``; a warm start continues with it)
    weights_ : ndarray (n_components,)
    converged_, n_iter_, n_features_in_, n_omitted_rows_
    lower_bound_ : float
        Weighted mean log-likelihood per sample of the best run, as in scikit-learn; with a
        prior, the log-posterior (log-likelihood + log p(theta)) per unit of weight.
    lower_bounds_ : list of float
        ``lower_bound`` after every iteration of the best run (never decreasing).
    """

    def __init__(
        self,
        family=None,
        n_components=1,
        *,
        tol=1e-3,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        n_threads=None,
        chunk_size=None,
        progress=False,
        callback=None,
        nan_policy="raise",
        m_step="exact",
        m_step_iters=1,
        weight_concentration_prior=None,
        frozen=(),
        algorithm="batch",
        batch_size=10_000,
        learning_offset=10.0,
        learning_decay=0.7,
    ):
        super().__init__(
            n_components, tol=tol, max_iter=max_iter, n_init=n_init, init_params=init_params,
            random_state=random_state, warm_start=warm_start, verbose=verbose,
            verbose_interval=verbose_interval, n_threads=n_threads, chunk_size=chunk_size,
            progress=progress, callback=callback, nan_policy=nan_policy, m_step=m_step,
            m_step_iters=m_step_iters, weight_concentration_prior=weight_concentration_prior,
            frozen=frozen, algorithm=algorithm, batch_size=batch_size,
            learning_offset=learning_offset, learning_decay=learning_decay)
        self.family = family

    def _make_family(self, n_features):
        if not isinstance(self.family, Family):
            raise ValueError("family must be a fastem.families.base.Family instance, got "
                             f"{self.family!r}")
        if self._component_frozen():
            raise ValueError("frozen may only name 'weights' (the family's own frozen holds "
                             f"component parameters); got {self.frozen!r}")
        self._latent()  # checks weight_concentration_prior
        columns = getattr(self.family, "n_features", None)  # a ProductFamily's column count
        if isinstance(columns, int) and columns != n_features:
            raise ValueError(f"the family has {columns} columns but X has {n_features} features")
        return self.family
