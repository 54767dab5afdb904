"""Drivers: run a family's kernels over a data source, pass by pass, on threads or a cluster.

:func:`make_driver` picks the driver for the data: :class:`~fastem.drivers.dask.DaskDriver` for
a ``dask.array.Array`` (imported only then: Dask is optional), else
:class:`~fastem.drivers.local.LocalDriver` (arrays, memmaps, ``.npy`` paths, h5py/zarr
datasets). The EM loop, the initialisation and the estimators use only this contract, which
both drivers honour:

Attributes
    ``X`` (the source), ``dtype`` (the working dtype, float32 or float64), ``n_samples``,
    ``n_features``, ``sample_weight`` (float64 (n,) or None), ``n_omitted`` (rows left out by
    the last check).
``block(start, stop)``
    A driver of the same kind and options over rows [start, stop) (online EM's blocks).
``check_finite(family=None)``
    One pass raising ValueError at the first row holding NaN or infinity or, given a family,
    a value outside its support (:func:`fastem.data.screen`).
``omit_nonfinite(family=None)``
    One pass giving rows holding NaN or infinity zero weight in every later pass; returns and
    stores their count; raises at rows outside the family's support.
``mark_missing(family=None)``
    ``nan_policy="marginalize"``: one pass raising at rows holding infinity (or outside the
    family's support), giving rows with no observed entry zero weight (their count is
    returned and stored) and raising when a column is NaN in every row.
``accumulate(family, packed, with_stats=True, resp_fn=None, nan_policy=None)``
    One pass: the summed statistics vector and [lowest log p(x_i), its row]. ``resp_fn(start,
    block)`` supplies the responsibilities (initialisation) instead of the E-step.
``predict(family, packed, outputs, nan_policy=None)``
    Per-row outputs by name (``fastem.data.PER_ROW``: "log_prob", "resp", "labels"):
    ``outputs`` maps each wanted name to where it goes (None for a new array; locally also a
    path for a new ``.npy`` file or an array to fill); returns the outputs by name, numpy
    arrays locally and lazy dask arrays (blocked as ``X``) on Dask.
``column_max()``
    One pass: the largest finite value of each column (-inf where there is none).
``rows(indices)``, ``sample_rows(rng, size)``
    Given rows, or at most ``size`` sampled ones (:func:`fastem.sampling.sample_rows`), as
    float64.

``nan_policy`` given to a pass makes that pass check the rows it reads, so data are read once:
"raise" raises as :meth:`check_finite` does, "omit" leaves rows holding NaN or infinity out
(zero weight; NaN log-likelihood and posteriors and label -1 in predictions) and stores their
count in ``n_omitted``; "marginalize" passes NaN entries to the kernels of a marginal family
(``family.marginal()``), raises at infinity and leaves out rows with no observed entry as
"omit" does. None means the rows were checked before (fits check once, then pass
many times).
"""
from .. import data
from .local import LocalDriver


def is_dask_array(X):
    """Whether ``X`` is a ``dask.array.Array`` (checked without importing Dask)."""
    return type(X).__module__.split(".")[0] == "dask" and hasattr(X, "chunks")


def make_driver(X, sample_weight=None, chunk_size=None, n_threads=None, progress=None, *,
                min_samples=1, n_features=None, estimator="fastem"):
    """The driver for ``X``, after checking its shape (errors name the ``estimator`` class):
    Dask arrays run on their cluster, anything else on this machine."""
    dask = is_dask_array(X)
    source = X if dask else data.open_source(X)
    data.check_shape(source, estimator, min_samples=min_samples, n_features=n_features)
    if dask:
        from .dask import DaskDriver

        return DaskDriver(source, sample_weight, chunk_size, n_threads, progress)
    return LocalDriver(source, sample_weight, chunk_size, n_threads, progress)
