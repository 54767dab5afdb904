"""Model files: a ``.npz`` of plain arrays plus a JSON header, never pickle.

The header names the estimator's class (``fastem._base.ESTIMATORS``: every estimator class,
users' subclasses included), its constructor parameters (``get_params()``) and its fitted state
(the attributes the class declares in ``_fitted_state`` and ``_fitted_arrays``, and
``feature_names_in_`` when the model was fitted on named columns). Values are
stored by type: numbers (numpy scalars with their dtype), strings, lists, tuples and sets in the
JSON; numpy arrays as arrays of the archive that the JSON refers to by name; built-in families,
their columns and priors, and parameters objects as their class name and constructor arguments
(read back from their attributes of the same names). A ``RandomState`` and the
parameters a class declares as hooks of the running program (``_unsaved_params``, e.g.
``callback``) are stored as None; a family of user Python functions (``CustomFamily``) is
refused, as it cannot be stored without pickle.

Loading uses ``allow_pickle=False``, so a tampered file cannot execute code, and instantiates
only registered classes; every array is checked against the header (shapes, finiteness, a valid
mixture; hidden Markov models check their own state in ``_check_loaded``) so that a damaged or foreign file is refused with a clear error instead of giving a
model that predicts garbage. Saving writes a temporary file in the target folder and renames it,
so a crash or Ctrl-C never leaves a half-written model behind.

Format version 2 (this one) stores every constructor parameter and the fitted family. Version 1
files (GaussianMixture only) lacked ``mean_prior``, ``covariance_prior``, the ``*_init`` arrays
and the family's data-based prior, so they cannot be read back exactly: they are refused with a
message saying so (refit and save again).
"""
import inspect
import json
import os
import zipfile

import numpy as np

from ._base import ESTIMATORS, Estimator, registry_name
from .data import new_file

FORMAT = "fastem-model"
FORMAT_VERSION = 2


def save(model, path):
    """Write a fitted estimator to ``path`` (.npz) atomically; returns the path written."""
    if not (isinstance(model, Estimator) and hasattr(model, "_fitted_arrays")):
        raise TypeError(f"model files hold fastem estimators; got {type(model).__name__}")
    model._check_fitted()
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    writer = _Writer()
    params = {name: writer.encode(_stored_param(model, name, value), name)
              for name, value in model.get_params().items()}
    fitted = {name: writer.encode(getattr(model, name), name) for name in _fitted_names(model)}
    header = {"format": FORMAT, "version": FORMAT_VERSION, "estimator": registry_name(type(model)),
              "params": params, "fitted": fitted}
    if hasattr(model, "feature_names_in_"):  # a DataFrame's column names (strings)
        header["feature_names_in"] = [str(name) for name in model.feature_names_in_]
    with new_file(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, header=np.array(json.dumps(header)), **writer.arrays)
    return path


def load(path):
    """Read a model written by :func:`save`; ValueError for anything that is not one."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except FileNotFoundError:
        raise ValueError(f"no such model file: {path!r}") from None
    except OSError as exc:
        raise ValueError(f"cannot read the model file {path!r}: {exc.strerror or exc}") from None
    if head == b"\x93NUMPY":
        raise ValueError(f"{path!r} is a .npy data array, not a fastem model file (.npz)")
    if not head.startswith(b"PK"):
        raise ValueError(f"{path!r} is not a fastem model file (not a .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        header = json.loads(str(arrays.pop("header")[()]))
    except FileNotFoundError:
        raise ValueError(f"no such model file: {path!r}") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, AttributeError,
            json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"{path!r} is not a readable fastem model file ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{path!r} is not a fastem model file")
    if header.get("version") == 1:
        raise ValueError(f"{path!r} has model format version 1, which did not store every "
                         "parameter (mean_prior, covariance_prior, the *_init arrays) nor the "
                         f"fitted family; this fastem reads version {FORMAT_VERSION}: refit the "
                         "model and save it again")
    if header.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path!r} has model format version {header.get('version')!r}; this "
                         f"fastem reads version {FORMAT_VERSION}")
    name = header.get("estimator")
    cls = ESTIMATORS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"{path!r} holds an unknown estimator {name!r} (for a subclass, import "
                         "the module that defines it before loading)")
    reader = _Reader(arrays)
    try:
        model = cls(**{key: reader.decode(value) for key, value in header["params"].items()})
        fitted = header["fitted"]
        expected = set(_fitted_names(model))
        if set(fitted) != expected:
            raise KeyError(f"fitted attributes {sorted(set(fitted) ^ expected)}")
        for key in expected:
            setattr(model, key, reader.decode(fitted[key]))
        names = header.get("feature_names_in")
        if names is not None:
            if not (isinstance(names, list) and len(names) == model.n_features_in_
                    and all(isinstance(name, str) for name in names)):
                raise ValueError(f"feature_names_in {names!r} are not {model.n_features_in_} "
                                 "strings")
            model.feature_names_in_ = np.asarray(names, dtype=object)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path!r} has a damaged header ({exc})") from None
    try:
        if hasattr(model, "_check_loaded"):  # estimators that check their own state (HMMs)
            model._check_loaded()
            return model
        _check_params(model)
    except (ValueError, TypeError, AttributeError) as exc:  # the last two: foreign structures
        raise ValueError(f"{path!r}: {exc}") from None
    # attributes derived from them (precisions_, ...), in the stored dtype (float32 data's)
    model._set_params(model._fitted_params().astype(model.weights_.dtype))
    return model


def _fitted_names(model):
    return tuple(model._fitted_state) + tuple(model._fitted_arrays)


def _stored_param(model, name, value):
    """A parameter as stored: a random state's state and hooks of the program are not."""
    if name in model._unsaved_params or isinstance(value, np.random.RandomState):
        return None
    return value


def _storable_classes():
    """The classes other than estimators that a file may hold, by name: built-in families, their
    columns and priors, and their parameters objects (each rebuilt from constructor arguments
    read from its attributes of the same names)."""
    from .families import expfam, gaussian, multinomial

    classes = (gaussian.GaussianFamily, gaussian.GaussianPrior, gaussian.GaussianParams,
               expfam.ProductFamily, expfam.ExpFamParams, expfam.Bernoulli, expfam.Categorical,
               expfam.Poisson, expfam.Exponential, expfam.Gamma, expfam.Normal,
               multinomial.MultinomialFamily, multinomial.MultinomialParams)
    return {cls.__name__: cls for cls in classes}


def _arg_names(cls):
    return [p.name for p in inspect.signature(cls).parameters.values()]


class _Writer:
    """Encodes values for the JSON header, collecting their arrays under their path."""

    def __init__(self):
        self.arrays = {}
        self.classes = _storable_classes()

    def encode(self, value, path):
        if isinstance(value, np.ndarray) and not value.dtype.hasobject:
            self.arrays[path] = value
            return {"array": path}
        if isinstance(value, np.generic) and not value.dtype.hasobject:
            return {"scalar": [value.dtype.str, self.encode(value.item(), path)]}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, list):
            return self._items(value, path)
        for kind in (tuple, set, frozenset):
            if isinstance(value, kind):
                items = value if kind is tuple else sorted(value, key=repr)
                return {kind.__name__: self._items(items, path)}
        name = type(value).__name__
        if self.classes.get(name) is type(value):
            return {"object": {"class": name, "args": {
                arg: self.encode(getattr(value, arg), f"{path}.{arg}")
                for arg in _arg_names(type(value))}}}
        from .families.base import Family

        if isinstance(value, Family):
            raise TypeError(f"cannot save {path}, a {name}: a family of user Python functions "
                            "cannot be stored in a model file without pickle (built-in families "
                            "can: GaussianFamily, ProductFamily)")
        raise TypeError(f"cannot store {path} ({name}) in a model file")

    def _items(self, values, path):
        return [self.encode(v, f"{path}.{i}") for i, v in enumerate(values)]


class _Reader:
    """Decodes header values written by :class:`_Writer`, taking arrays from the archive."""

    def __init__(self, arrays):
        self.arrays = arrays
        self.classes = _storable_classes()

    def decode(self, value):
        if isinstance(value, list):
            return [self.decode(v) for v in value]
        if not isinstance(value, dict):
            return value
        (tag, content), = value.items()
        if tag == "array":
            return self.arrays[content]
        if tag == "scalar":
            dtype, number = np.dtype(content[0]), content[1]
            if dtype.hasobject or not isinstance(number, (bool, int, float)):
                raise TypeError(f"a {dtype} scalar of {number!r}")
            return dtype.type(number)
        if tag in ("tuple", "set", "frozenset"):
            return {"tuple": tuple, "set": set, "frozenset": frozenset}[tag](self.decode(content))
        if tag == "object":
            cls = self.classes[content["class"]]
            return cls(**{arg: self.decode(v) for arg, v in content["args"].items()})
        raise KeyError(f"unknown value tag {tag!r}")


def _check_params(model):
    """ValueError unless the fitted parameters are a valid mixture of the fitted family."""
    from .families.expfam import ProductFamily
    from .families.gaussian import GaussianFamily, covariance_shape
    from .families.multinomial import MultinomialFamily

    dtype = getattr(model.weights_, "dtype", None)  # float32 data's models are float32
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"weights_ has dtype {dtype}, expected float64 or float32")
    params, family = model._fitted_params(), model.family_
    k, d = model.n_components, model.n_features_in_
    expected = {"weights": (k,)}
    if isinstance(family, GaussianFamily):
        t = family.covariance_type
        if params.covariance_type != t:
            raise ValueError(f"parameters of covariance type {params.covariance_type!r} for a "
                             f"{t!r} family")
        expected.update(means=(k, d), covariances=covariance_shape(t, k, d),
                        precisions_cholesky=covariance_shape(t, k, d))
    elif isinstance(family, ProductFamily):
        if not family.n_features == len(params.columns) == d:
            raise ValueError(f"{family.n_features} family columns and {len(params.columns)} "
                             f"parameter columns for {d} features")
        expected.update({f"columns.{j}": (k, c.n_params) for j, c in enumerate(family.columns)})
    elif isinstance(family, MultinomialFamily):
        expected.update(probabilities=(k, d))
    else:
        raise ValueError(f"family_ is a {type(family).__name__}, which model files do not hold")
    for field, shape in expected.items():
        stored = f"{field}_" in model._fitted_arrays
        name = f"{field}_" if stored else f"params_.{field}"
        array = getattr(model, name) if stored else _field(model.params_, field)
        if not (isinstance(array, np.ndarray) and array.shape == shape and array.dtype == dtype):
            raise ValueError(f"{name} has shape {np.shape(array)} and dtype "
                             f"{getattr(array, 'dtype', type(array).__name__)}, expected "
                             f"{shape} {dtype} (that of weights_)")
        if not np.isfinite(array).all():
            raise ValueError(f"{name} contains NaN or infinity")
    weights = params.weights
    valid = (weights >= 0).all() and np.isclose(weights.sum(), 1.0)
    if isinstance(family, GaussianFamily):
        chol = params.precisions_cholesky
        diagonal = (np.diagonal(chol, axis1=-2, axis2=-1)
                    if family.covariance_type in ("full", "tied") else chol)
        valid = valid and (diagonal > 0).all()
    if not valid:
        raise ValueError("parameters are not a valid mixture")
    if isinstance(family, GaussianFamily):
        _check_covariances(params.covariances, params.precisions_cholesky,
                           family.covariance_type, dtype)


def _check_covariances(covariances, chol, covariance_type, dtype):
    """ValueError unless ``covariances`` are the inverses of the precisions ``chol`` factors (a
    model predicts with the factors but reports the covariances: they must agree). The bound,
    1e-5 of each component's largest entry, leaves room for the rounding of ill-conditioned
    fits (condition numbers up to ~1e10); for float32 parameters, each rounded to float32
    apart, 1e-2 (condition numbers up to ~1e5)."""
    if covariance_type in ("full", "tied"):  # precision = chol chol^T, whichever triangle
        rebuilt = np.linalg.inv(chol @ np.swapaxes(chol, -1, -2))
    else:
        rebuilt = 1.0 / chol**2
    k = covariances.shape[0] if covariance_type != "tied" else 1
    error = np.abs(rebuilt - covariances).reshape(k, -1).max(axis=1)
    scale = np.abs(covariances).reshape(k, -1).max(axis=1)
    if not (error <= (1e-5 if dtype == np.float64 else 1e-2) * scale).all():
        raise ValueError("covariances_ disagree with precisions_cholesky_ (they must be "
                         "inverses of each other): a damaged or edited file")


def _field(params, field):
    """``params.means`` for "means", ``params.columns[3]`` for "columns.3"."""
    name, _, index = field.partition(".")
    value = getattr(params, name)
    return value[int(index)] if index else value
