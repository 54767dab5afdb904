"""Row samplers over a data source: at most ``size`` rows for seeding, read in one pass.

Data-path code below the drivers: the local driver runs :func:`sample_rows` over its source, and
the Dask driver runs :func:`reservoir` in each block on its worker and merges the blocks'
samples with :func:`keep_largest`.
"""
import numpy as np

from . import data


def sample_rows(X, sample_weight, rng, size, bar=None):
    """At most ``size`` rows (float64) of ``X``, their weights and their row indices.

    Small data are used whole (read by slices, which every source takes). Larger data are
    sampled in one sequential pass (shown on ``bar``), without replacement and with probability
    growing with the sample weight, by weighted reservoir sampling (Efraimidis & Spirakis 2006:
    keep the rows with the largest log(u) / w); the sampled rows then count once each.
    Zero-weight rows are never chosen.
    """
    n, w = X.shape[0], sample_weight
    if n <= size:
        indices = np.arange(n) if w is None else np.flatnonzero(w > 0)
        blocks = data.iter_blocks(X, size, np.float64)
        rows = np.concatenate([block for _, block, _ in blocks])
        return rows[indices], (np.ones(n) if w is None else w[indices]), indices
    blocks = data.iter_blocks(X, data.BLOCK_ROWS, np.float64, w, bar)
    return sample_from_keys(*reservoir(blocks, rng, size, X.shape[1]))


def reservoir(blocks, rng, size, n_features):
    """Keys, row indices and rows of the ``size`` rows with the largest keys log(u) / w among
    ``(start, block, weights)`` blocks (float64); zero-weight rows get key -inf."""
    sample = (np.empty(0), np.empty(0, dtype=np.intp), np.empty((0, n_features)))
    for start, block, weights in blocks:
        with np.errstate(divide="ignore"):
            keys = np.log(rng.uniform(size=block.shape[0]))
            if weights is not None:
                keys = np.where(weights > 0, keys / np.where(weights > 0, weights, 1), -np.inf)
        sample = keep_largest(size, sample, (keys, start + np.arange(block.shape[0]), block))
    return sample


def keep_largest(size, *samples):
    """Merge ``(keys, indices, rows)`` samples, keeping the ``size`` rows with the largest keys."""
    keys, indices, rows = (np.concatenate(parts) for parts in zip(*samples))
    if keys.size > size:
        keep = np.argpartition(keys, keys.size - size)[keys.size - size:]
        keys, indices, rows = keys[keep], indices[keep], rows[keep]
    return keys, indices, rows


def sample_from_keys(keys, indices, rows):
    """The sampled rows in row order, each counting once, without never-chosen (-inf) rows."""
    usable = np.isfinite(keys)
    order = np.argsort(indices[usable])
    return rows[usable][order], np.ones(order.size), indices[usable][order]
