"""Model files: a ``.npz`` of plain arrays plus a JSON header, never pickle.

Loading uses ``allow_pickle=False``, so a tampered file cannot execute code; every array is
checked against the header (shapes, finiteness, positive precision factors) so that a damaged
or foreign file is refused with a clear error instead of giving a model that predicts garbage.
Saving writes a temporary file in the target folder and renames it, so a crash or Ctrl-C
never leaves a half-written model behind.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

FORMAT = "fastem-model"
FORMAT_VERSION = 1
_PARAMS = ("n_components", "covariance_type", "tol", "reg_covar", "max_iter", "n_init",
           "init_params", "random_state", "warm_start", "verbose", "verbose_interval",
           "n_threads", "chunk_size", "progress", "nan_policy", "m_step", "m_step_iters",
           "weight_concentration_prior", "mean_precision_prior", "degrees_of_freedom_prior",
           "frozen")
_FITTED = ("converged_", "n_iter_", "lower_bound_", "lower_bounds_", "n_features_in_",
           "n_omitted_rows_")
_ARRAYS = ("weights_", "means_", "covariances_", "precisions_cholesky_")


def save(model, path):
    """Write a fitted model to ``path`` (.npz) atomically; returns the path written.

    GaussianMixture only, so far; the other families' estimators can be pickled by the user."""
    from .estimators import GaussianMixture

    if not isinstance(model, GaussianMixture):
        raise TypeError(f"model files hold GaussianMixture models; got {type(model).__name__}")
    model._check_fitted()
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    params = {name: _jsonable(getattr(model, name)) for name in _PARAMS if name != "random_state"}
    seed = model.random_state  # a RandomState instance cannot be stored; its fit is
    params["random_state"] = seed if seed is None or isinstance(seed, int) else None
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "estimator": type(model).__name__,
        "params": params,
        "fitted": {name: _jsonable(getattr(model, name)) for name in _FITTED},
    }
    arrays = {name: np.asarray(getattr(model, name), dtype=np.float64) for name in _ARRAYS}
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix=".npz.tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, header=np.array(json.dumps(header)), **arrays)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def load(path):
    """Read a model written by :func:`save`; ValueError for anything that is not one."""
    from .families.gaussian import GaussianParams
    from .estimators import GaussianMixture

    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            header = json.loads(str(archive["header"][()]))
            arrays = {name: archive[name] for name in _ARRAYS}
    except FileNotFoundError:
        raise ValueError(f"no such model file: {path!r}") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile,
            json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"{path!r} is not a readable fastem model file ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not a fastem model file")
    if header.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path!r} has model format version {header.get('version')!r}; this "
                         f"fastem reads version {FORMAT_VERSION}")
    if header.get("estimator") != GaussianMixture.__name__:
        raise ValueError(f"{path!r} holds an unknown estimator {header.get('estimator')!r}")
    try:
        params = dict(header["params"])
        if "frozen" in params:  # JSON has no tuples
            params["frozen"] = tuple(params["frozen"])
        model = GaussianMixture(**params)
        for name, value in header["fitted"].items():
            if name not in _FITTED:
                raise KeyError(name)
            setattr(model, name, value)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path!r} has a damaged header ({exc})") from None
    _check_arrays(path, model, arrays)
    model._set_params(GaussianParams(model.covariance_type, *(arrays[name] for name in _ARRAYS)))
    return model


def _check_arrays(path, model, arrays):
    from .families.gaussian import covariance_shape

    k, d, t = model.n_components, model.n_features_in_, model.covariance_type
    shapes = {"weights_": (k,), "means_": (k, d), "covariances_": covariance_shape(t, k, d),
              "precisions_cholesky_": covariance_shape(t, k, d)}
    for name, array in arrays.items():
        if array.shape != shapes[name] or array.dtype != np.float64:
            raise ValueError(f"{path!r}: {name} has shape {array.shape} and dtype {array.dtype}, "
                             f"expected {shapes[name]} float64")
        if not np.isfinite(array).all():
            raise ValueError(f"{path!r}: {name} contains NaN or infinity")
    chol = arrays["precisions_cholesky_"]
    diagonal = np.diagonal(chol, axis1=-2, axis2=-1) if t in ("full", "tied") else chol
    if (diagonal <= 0).any() or (arrays["weights_"] < 0).any() or not np.isclose(
            arrays["weights_"].sum(), 1.0):
        raise ValueError(f"{path!r}: parameters are not a valid mixture")


def _jsonable(value):
    """Plain Python for JSON; numpy scalars become numbers, anything else must already be."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in a model file")
