"""Initial parameters for EM that stream: k-means on a bounded sample, then one pass.

``kmeans``: k-means++ seeding and Lloyd iterations on a uniform sample of at most
``MAX_SAMPLE`` rows, then one pass labels every row with its nearest centre and the M-step turns
those hard responsibilities into parameters. ``k-means++`` and ``random_from_data``: components
start on chosen data rows (no pass). ``random``: uniform random responsibilities, drawn block by
block (one pass). Sample weights are honoured throughout: zero-weight rows are never chosen.
Missing entries (NaN under ``nan_policy="marginalize"``) are filled with column means for the
k-means distances and the rows components start on (:func:`fill_missing`); the M-step of the
first pass then leaves them out, as every later one does. With partial labels
(``driver.labels``), ``kmeans`` starts from the means of each component's labelled rows (when
every component has some; else from k-means, its clusters numbered to agree with most labelled
rows); the passes of ``kmeans`` and ``random`` start labelled rows in their own component (the
driver clamps given responsibilities), and the methods that start on chosen rows honour the
labels from the first E-step on.
"""
import numpy as np

from . import data
from ._kernels.kmeans import closest as closest_kernel
from .drivers.local import LocalDriver
from .em import check_statistics

INIT_METHODS = ("kmeans", "k-means++", "random", "random_from_data")
MAX_SAMPLE = 1 << 16
KMEANS_MAX_ITER = 100


def initial_params(method, latent, family, driver, n_components, rng):
    """Parameters of ``latent`` over ``family`` to start EM from, by scikit-learn's
    ``init_params`` methods."""
    k = n_components
    # a driver serving many fits computes each of them once (fastem.lockstep.SharedInit)
    share = getattr(driver, "share", call)
    if method == "random_from_data":
        w = driver.sample_weight
        p = None if w is None else w / w.sum()
        return params_on_rows(latent, family, driver,
                              rng.choice(driver.n_samples, k, replace=False, p=p))
    if method == "random":
        centre = fill_missing(driver.sample_rows(rng, MAX_SAMPLE)[0]).mean(axis=0, keepdims=True)
        pivot = np.repeat(centre, k, axis=0)

        def resp_fn(start, block):
            resp = rng.uniform(size=(block.shape[0], k))
            return resp / resp.sum(axis=1, keepdims=True)

        return params_from_resp(latent, family, driver, pivot, resp_fn)
    sample, weights, indices = driver.sample_rows(rng, MAX_SAMPLE)
    fill = column_means(sample)
    sample = fill_missing(sample, fill)
    labelled = labelled_sample(driver, fill)
    if method == "kmeans" and labelled is not None and np.unique(labelled[1]).size == k:
        # every component has labelled rows: start from their means, in label order
        centers = np.stack([labelled[0][labelled[1] == c].mean(axis=0) for c in range(k)])
        component = np.arange(k)
    elif method == "k-means++":
        chosen = kmeans_plusplus(sample, weights, k, rng)[1]
        return params_on_rows(latent, family, driver, indices[chosen])
    else:
        centers = share(cluster, sample, weights, k, rng=rng)
        component = match_labels(labelled, centers)
    # not the driver in the labeller: Dask pickles it
    labels_fn = share(OneHotLabels, centers, tuple(component), tuple(fill),
                      getattr(driver, "n_threads", 1))
    return params_from_resp(latent, family, driver, centers, labels_fn)


def params_from_resp(latent, family, driver, pivot, resp_fn):
    """M-step from given responsibilities (one pass); an empty component stays on its pivot."""
    packed = family.pack_pivot(pivot, driver.dtype)
    stats, _ = driver.accumulate(family, packed, resp_fn=resp_fn)
    check_statistics(stats, driver.dtype)
    params, lost = latent.m_step(family, stats, packed)
    if lost.size:
        params = latent.reseed(family, params, lost, pivot[lost])
    return params


def params_on_rows(latent, family, driver, rows):
    """Components centred on data rows, equally weighted, with covariance ``reg_covar``:
    the M-step of one-hot responsibilities on those rows, from a pass over those rows only."""
    k = len(rows)
    chosen = np.ascontiguousarray(fill_missing(driver.rows(rows)), dtype=driver.dtype)
    one_hot = np.eye(k)
    return params_from_resp(latent, family, LocalDriver(chosen, n_threads=1),
                            chosen.astype(np.float64),
                            lambda start, block: one_hot[start:start + block.shape[0]])


def labelled_sample(driver, fill):
    """At most ``MAX_SAMPLE`` labelled rows (``driver.labels >= 0``, evenly spaced), NaN
    entries filled with ``fill``, and their labels; None without labels."""
    labels = getattr(driver, "labels", None)
    if labels is None:
        return None
    rows = np.concatenate([start + np.flatnonzero(np.asarray(labels[start:start + data.BLOCK_ROWS])
                                                  >= 0)
                           for start in range(0, labels.shape[0], data.BLOCK_ROWS)])
    rows = rows[::-(-rows.size // MAX_SAMPLE)]
    return fill_missing(driver.rows(rows), fill), np.asarray(labels[rows], dtype=np.intp)


def match_labels(labelled, centers):
    """The component of each k-means cluster: the one-to-one assignment under which most
    ``labelled`` rows (:func:`labelled_sample`) fall in the cluster of their own component
    (Hungarian algorithm); the identity without labels."""
    k = centers.shape[0]
    if labelled is None:
        return np.arange(k)
    agree = np.zeros((k, k))
    np.add.at(agree, (nearest(labelled[0], centers)[0], labelled[1]), 1.0)
    from scipy.optimize import linear_sum_assignment

    cluster, component = linear_sum_assignment(agree, maximize=True)
    mapping = np.empty(k, dtype=np.intp)
    mapping[cluster] = component
    return mapping


def column_means(rows):
    """Each column's mean over its observed (not NaN) entries; 0 where none is observed."""
    seen = rows == rows
    counts = seen.sum(axis=0)
    return np.where(seen, rows, 0.0).sum(axis=0) / np.maximum(counts, 1)


def fill_missing(rows, values=None):
    """``rows`` with NaN entries (missing values) replaced by ``values`` per column (default:
    :func:`column_means` of ``rows``); ``rows`` itself when it has none."""
    missing = rows != rows
    if not missing.any():
        return rows
    return np.where(missing, column_means(rows) if values is None else values, rows)


def call(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``: what :meth:`fastem.lockstep.SharedInit.share` does once for
    many fits."""
    return fn(*args, **kwargs)


class OneHotLabels:
    """``resp_fn`` of a k-means start: each row one-hot on its nearest centre's component
    (``component`` maps centres to components; NaN entries filled with ``fill``; labelled rows
    are clamped by the driver, as for every given ``resp_fn``), labelled on the driver's
    ``n_threads``. The last block's
    responsibilities are kept, read-only, so that fits starting from the same centres label a
    block of a shared pass once."""

    def __init__(self, centers, component, fill, n_threads=1):
        self.centers, self.component = centers, np.asarray(component, dtype=np.intp)
        self.n_threads = n_threads
        self.fill = np.asarray(fill)
        self.last = None

    def __call__(self, start, block):
        if self.last is not None and self.last[0] == start and self.last[1] is block:
            return self.last[2]
        resp = np.zeros((block.shape[0], self.centers.shape[0]))
        with np.errstate(invalid="ignore"):  # omitted rows' inf - inf; zero weight, any label
            labels = self.component[closest(fill_missing(block, self.fill), self.centers,
                                            self.n_threads)]
        resp[np.arange(block.shape[0]), labels] = 1.0
        resp.flags.writeable = False
        self.last = start, block, resp
        return resp


def cluster(sample, weights, k, rng):
    """The k-means centres of ``sample``: k-means++ seeding, then Lloyd iterations."""
    return lloyd(sample, weights, kmeans_plusplus(sample, weights, k, rng)[0])


def closest(X, centers, n_threads=1):
    """Index of the nearest centre for each row (the first of equals): the argmin over k of
    |c_k|^2 - 2 x.c_k (the rows' own |x|^2, the same for every k, is left out); compiled
    (``fastem/_kernels/kmeans.pyx``), 10-20x faster than NumPy's (n, K) distances."""
    X = np.asarray(X)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    return closest_kernel(np.ascontiguousarray(X), np.ascontiguousarray(centers, np.float64),
                          n_threads)


def nearest(X, centers):
    """Index of the nearest centre for each row (:func:`closest`), and the squared distance
    to it (from the difference, so never negative)."""
    labels = closest(X, centers)
    diff = X - centers[labels]
    return labels, np.einsum("ij,ij->i", diff, diff)


def squared_distances(X, norms, rows):
    """(len(rows), n) squared distances from the given rows of X to every row."""
    dist = norms[rows][:, None] - 2.0 * (X[rows] @ X.T) + norms[None, :]
    return np.maximum(dist, 0.0)


def kmeans_plusplus(X, weights, k, rng):
    """Greedy weighted k-means++ seeding (Arthur & Vassilvitskii 2007), as scikit-learn does it.

    Returns the centres and the indices of the rows chosen.
    """
    n = X.shape[0]
    trials = 2 + int(np.log(k))
    chosen = [rng.choice(n, p=weights / weights.sum())]
    norms = np.einsum("ij,ij->i", X, X)
    closest = squared_distances(X, norms, chosen)[0]
    for _ in range(1, k):
        cumulative = np.cumsum(weights * closest)
        candidates = np.searchsorted(cumulative, rng.uniform(size=trials) * cumulative[-1])
        candidates = np.minimum(candidates, n - 1)
        dist = np.minimum(closest[None, :], squared_distances(X, norms, candidates))
        best = int(np.argmin(dist @ weights))
        chosen.append(candidates[best])
        closest = dist[best]
    chosen = np.asarray(chosen)
    return X[chosen].copy(), chosen


def kmeans(X, weights, k, rng, n_init=10):
    """``(centres, labels)`` of the best of ``n_init`` k-means runs (k-means++ seeding, then
    Lloyd) on in-memory rows, by weighted inertia, as scikit-learn's ``KMeans(n_init=10)``."""
    best = None
    for _ in range(n_init):
        centers = lloyd(X, weights, kmeans_plusplus(X, weights, k, rng)[0])
        labels, dist = nearest(X, centers)
        inertia = float(dist @ weights)
        if best is None or inertia < best[0]:
            best = (inertia, centers, labels)
    return best[1], best[2]


def lloyd(X, weights, centers, max_iter=KMEANS_MAX_ITER, tol=1e-4):
    """Weighted Lloyd iterations from ``centers``; an empty cluster keeps its centre."""
    k = centers.shape[0]
    scale = tol * np.mean(np.var(X, axis=0)) if X.shape[0] > 1 else 0.0
    for _ in range(max_iter):
        labels = closest(X, centers)
        mass = np.bincount(labels, weights=weights, minlength=k)
        sums = np.stack(
            [np.bincount(labels, weights=X[:, j] * weights, minlength=k) for j in range(X.shape[1])],
            axis=1,
        )
        filled = mass > 0
        new = centers.copy()
        new[filled] = sums[filled] / mass[filled, None]
        shift = ((new - centers) ** 2).sum()
        centers = new
        if shift <= scale:
            break
    return centers
