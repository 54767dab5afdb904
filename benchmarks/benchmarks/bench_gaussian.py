"""asv benchmarks of ``fastem.GaussianMixture`` on fixed-seed synthetic data.

Every benchmark starts EM from the same given parameters (``weights_init``, ``means_init``,
``precisions_init``), so fastem skips its k-means initialisation and a fit with ``max_iter=m``
and ``tol=0`` costs exactly ``m`` EM iterations (plus the input validation of ``fit``).

``make_data`` and ``initial_parameters`` are also used by ``benchmarks/compare_sklearn.py``, so
the suite and the comparison script run on identical data.
"""
import warnings

import numpy as np

N_SAMPLES = 200_000
SEED = 0
# (D, K) of the suite, as "DxK": the headline size and the GFLOP/s size
SHAPES = ["16x16", "64x32"]

COVARIANCE_TYPES = ["diag", "full", "tied", "spherical"]
DTYPES = ["float64", "float32"]
N_THREADS = [1, 2]

_BLOCK_ROWS = 1 << 16
_VARIANCE_ROWS = 100_000
_WARMUP_ROWS = 4096


def make_data(n_samples, n_features, n_components, dtype="float64", seed=SEED):
    """Rows of a mixture of ``n_components`` well separated Gaussians in ``n_features`` dims.

    Centres are uniform in [-10, 10]^D (typical distance between two ~ 33), per-component
    standard deviations are uniform in [0.5, 1.5] per axis, and components are equally likely.
    The array is filled block by block, so building it needs little memory beyond the result.
    """
    rng = np.random.RandomState(seed)
    centres = rng.uniform(-10.0, 10.0, size=(n_components, n_features))
    scales = rng.uniform(0.5, 1.5, size=(n_components, n_features))
    X = np.empty((n_samples, n_features), dtype=dtype)
    for start in range(0, n_samples, _BLOCK_ROWS):
        stop = min(start + _BLOCK_ROWS, n_samples)
        labels = rng.randint(n_components, size=stop - start)
        noise = rng.standard_normal((stop - start, n_features))
        X[start:stop] = centres[labels] + scales[labels] * noise
    return X


def initial_parameters(X, n_components, covariance_type, seed=SEED):
    """Starting point of EM, as estimator keyword arguments (scikit-learn's shapes).

    Means are ``n_components`` rows of ``X`` picked with a fixed ``RandomState``, weights are
    uniform and every precision is the identity divided by the mean per-feature variance of
    the data (estimated on the first rows), so each component starts broad.
    """
    n_features = X.shape[1]
    rng = np.random.RandomState(seed)
    rows = np.sort(rng.choice(X.shape[0], n_components, replace=False))
    variance = float(np.asarray(X[:_VARIANCE_ROWS], dtype=np.float64).var(axis=0).mean())
    scale = 1.0 / variance
    precisions = {
        "spherical": np.full(n_components, scale),
        "diag": np.full((n_components, n_features), scale),
        "tied": scale * np.eye(n_features),
        "full": scale * np.tile(np.eye(n_features), (n_components, 1, 1)),
    }[covariance_type]
    return {
        "weights_init": np.full(n_components, 1.0 / n_components),
        "means_init": np.asarray(X[rows], dtype=np.float64),
        "precisions_init": precisions,
    }


def fit_fastem(X, covariance_type, inits, max_iter, n_threads):
    """A ``fastem.GaussianMixture`` fitted from ``inits`` for exactly ``max_iter`` iterations."""
    from fastem import ConvergenceWarning, GaussianMixture

    model = GaussianMixture(
        n_components=inits["means_init"].shape[0],
        covariance_type=covariance_type,
        max_iter=max_iter,
        tol=0.0,
        random_state=SEED,
        n_threads=n_threads,
        **inits,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X)


class _Suite:
    """Shared parameters and data: N = 200 000 rows of D features from K components."""

    params = [COVARIANCE_TYPES, SHAPES, DTYPES, N_THREADS]
    param_names = ["covariance_type", "shape", "dtype", "n_threads"]
    timeout = 600
    number = 1
    repeat = (3, 10, 20.0)

    def setup(self, covariance_type, shape, dtype, n_threads):
        n_features, n_components = map(int, shape.split("x"))
        self.X = make_data(N_SAMPLES, n_features, n_components, dtype)
        self.inits = initial_parameters(self.X, n_components, covariance_type)
        # The first fit of a process imports the compiled kernels (and scipy.linalg): ~0.5 s
        # that is not EM. Pay it here, on a few rows.
        fit_fastem(self.X[:_WARMUP_ROWS], covariance_type, self.inits, 1, n_threads)


class GaussianMixtureFit(_Suite):
    """Time of one EM iteration, peak memory of a fit, log-likelihood reached."""

    def time_fit_iteration(self, covariance_type, shape, dtype, n_threads):
        """One EM iteration (a fit with ``max_iter=1``, ``tol=0`` from given parameters)."""
        fit_fastem(self.X, covariance_type, self.inits, 1, n_threads)

    def peakmem_fit(self, covariance_type, shape, dtype, n_threads):
        """Peak resident memory of the process across a 3-iteration fit (data included)."""
        fit_fastem(self.X, covariance_type, self.inits, 3, n_threads)

    def track_log_likelihood(self, covariance_type, shape, dtype, n_threads):
        """``lower_bound_`` (mean log-likelihood per sample) after 10 EM iterations."""
        return fit_fastem(self.X, covariance_type, self.inits, 10, n_threads).lower_bound_

    track_log_likelihood.unit = "nats/sample"


class GaussianMixturePredict(_Suite):
    """Time of ``predict_proba`` on the training data of a one-iteration fit."""

    def setup(self, covariance_type, shape, dtype, n_threads):
        super().setup(covariance_type, shape, dtype, n_threads)
        self.model = fit_fastem(self.X, covariance_type, self.inits, 1, n_threads)

    def time_predict_proba(self, covariance_type, shape, dtype, n_threads):
        """Posterior probabilities of every row, (N, K)."""
        self.model.predict_proba(self.X)


MEMMAP_SHAPE = (5_000_000, 8, 8)  # issue 18's headline case: N, D, K


class MemmapFloat32Fit:
    """Issue 18's case: a 5e6 x 8 float32 ``.npy`` file, memory-mapped, K = 8 (diag and
    spherical): the fit time of one EM iteration and the ms per iteration net of a fit's fixed
    costs, (fit of 10 - fit of 1) / 9. The file (160 MB) is written once per run of the suite,
    into the directory where asv runs ``setup_cache`` and the benchmarks (and removes after)."""

    params = [["diag", "spherical"], N_THREADS]
    param_names = ["covariance_type", "n_threads"]
    timeout = 900
    number = 1
    repeat = (3, 5, 60.0)

    def setup_cache(self):
        path = "memmap-5e6x8-float32.npy"
        np.save(path, make_data(*MEMMAP_SHAPE, "float32"))
        return path

    def setup(self, path, covariance_type, n_threads):
        self.X = np.load(path, mmap_mode="r")
        self.inits = initial_parameters(self.X, MEMMAP_SHAPE[2], covariance_type)
        fit_fastem(self.X, covariance_type, self.inits, 1, n_threads)  # page cache, imports

    def time_fit_iteration(self, path, covariance_type, n_threads):
        """A fit with ``max_iter=1``: one EM iteration and the fit's input checks."""
        fit_fastem(self.X, covariance_type, self.inits, 1, n_threads)

    def track_ms_per_iteration(self, path, covariance_type, n_threads):
        """(fit of 10 iterations - fit of 1) / 9, in ms: one streamed E-step and M-step."""
        import time

        tic = time.perf_counter()
        fit_fastem(self.X, covariance_type, self.inits, 1, n_threads)
        one = time.perf_counter() - tic
        tic = time.perf_counter()
        fit_fastem(self.X, covariance_type, self.inits, 10, n_threads)
        return 1000 * (time.perf_counter() - tic - one) / 9

    track_ms_per_iteration.unit = "ms"
