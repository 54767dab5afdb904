"""The scikit-learn estimator protocol (parameters, repr, tags) without importing scikit-learn.

scikit-learn is not a dependency of fastem, but its tools (``clone``, pipelines, grid search,
``check_estimator``) only need this duck-typed surface; tags import scikit-learn lazily, when
scikit-learn itself asks for them.
"""
import inspect
import numbers
import warnings

import numpy as np

from ._compat import also_sklearns

ESTIMATORS = {}  # every Estimator class by its registry name, for model files (fastem.io)


class Estimator:
    """Constructor arguments are stored as given; fitted attributes end in ``_``.

    Every subclass is registered in ``ESTIMATORS`` when it is defined, so that a model file can
    name its class without pickle: fastem's own by their public name (files survive internal
    moves), others by module and name (a user's subclass loads once its module is imported).
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        ESTIMATORS[registry_name(cls)] = cls

    @classmethod
    def _param_names(cls):
        signature = inspect.signature(cls.__init__)
        return sorted(
            p.name for p in signature.parameters.values()
            if p.name != "self" and p.kind != p.VAR_KEYWORD
        )

    def get_params(self, deep=True):
        """Constructor parameters by name (``deep`` is accepted for scikit-learn compatibility)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set constructor parameters; unknown names raise ValueError."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for estimator {type(self).__name__}. "
                    f"Valid parameters are: {valid!r}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = {
            p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()
        }
        changed = []
        for name in self._param_names():
            value = getattr(self, name)
            default = defaults.get(name, inspect.Parameter.empty)
            if value is default or (_is_scalar(value) and value == default):
                continue
            changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"

    def _check_feature_names(self, X, reset):
        """Set ``feature_names_in_`` from ``X``'s column names when fitting (``reset``), or check
        them against it: scikit-learn's rules and words (``_check_feature_names``), a
        UserWarning when only one of fit and ``X`` had names, ValueError when they differ."""
        names = feature_names(X)
        if reset:
            if names is not None:
                self.feature_names_in_ = names
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            return
        fitted = getattr(self, "feature_names_in_", None)
        name = type(self).__name__
        if fitted is None and names is not None:
            warnings.warn(f"X has feature names, but {name} was fitted without feature names",
                          UserWarning, stacklevel=4)
        elif names is None and fitted is not None:
            warnings.warn(f"X does not have valid feature names, but {name} was fitted with "
                          "feature names", UserWarning, stacklevel=4)
        elif names is not None and (len(names) != len(fitted) or (names != fitted).any()):
            raise ValueError(_names_mismatch(fitted, names))

    def __sklearn_is_fitted__(self):
        return hasattr(self, "n_features_in_")

    _positive_only = False  # scikit-learn input tag: the model needs non-negative data

    def __sklearn_tags__(self):
        from sklearn.utils import InputTags, Tags, TargetTags

        return Tags(
            estimator_type="density_estimator",
            input_tags=InputTags(positive_only=self._positive_only),
            target_tags=TargetTags(required=False),
            transformer_tags=None,
            regressor_tags=None,
            classifier_tags=None,
        )


def feature_names(X):
    """The feature names of ``X`` as scikit-learn reads them: its ``columns`` (a pandas or
    polars DataFrame's, or any other object's with that attribute) as an object array when
    they are all strings, None when there are none or none is a string; TypeError for a mix."""
    columns = None if isinstance(X, np.ndarray) else getattr(X, "columns", None)
    if columns is None:
        return None
    names = np.asarray(list(columns), dtype=object)
    if names.ndim != 1 or len(names) == 0:
        return None
    types = sorted(t.__qualname__ for t in {type(v) for v in names})
    if len(types) > 1 and "str" in types:
        raise TypeError(
            "Feature names are only supported if all input features have string names, "
            f"but your input has {types} as feature name / column name types. "
            "If you want feature names to be stored and validated, you must convert "
            "them all to strings, by using X.columns = X.columns.astype(str) for "
            "example. Otherwise you can remove feature / column names from your input "
            "data, or convert them all to a non-string data type."
        )
    return names if types == ["str"] else None


def _names_mismatch(fitted, names):
    """scikit-learn's message for feature names other than those seen in fit."""
    def listed(items):
        return "".join(f"- {item}\n" for item in items[:5]) + ("- ...\n" if len(items) > 5
                                                               else "")

    unseen = sorted(set(names) - set(fitted))
    missing = sorted(set(fitted) - set(names))
    message = "The feature names should match those that were passed during fit.\n"
    if unseen:
        message += "Feature names unseen at fit time:\n" + listed(unseen)
    if missing:
        message += "Feature names seen at fit time, yet now missing:\n" + listed(missing)
    if not unseen and not missing:
        message += "Feature names must be in the same order as they were in fit.\n"
    return message


def registry_name(cls):
    """The name a model file gives the class ``cls``."""
    if cls.__module__.split(".")[0] == "fastem":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


class NotFittedError(ValueError, AttributeError):
    """The estimator is used before ``fit``.

    Raised through :func:`not_fitted`, so that it is also a
    ``sklearn.exceptions.NotFittedError`` when scikit-learn is installed.
    """


def not_fitted(estimator):
    """The NotFittedError to raise for ``estimator``; catchable as fastem's or scikit-learn's."""
    try:  # scikit-learn's class is wanted whenever it is installed, as it always was
        import sklearn.exceptions  # noqa: F401
    except ImportError:
        pass
    cls = also_sklearns(NotFittedError, "sklearn.exceptions", "NotFittedError")
    return cls(
        f"This {type(estimator).__name__} instance is not fitted yet. Call 'fit' with "
        "appropriate arguments before using this estimator."
    )


class InvalidParameterError(ValueError, TypeError):
    """A constructor parameter of the wrong type or value, found when fitting.

    Raised through :func:`check_int`, :func:`check_float`, :func:`check_str` and
    :func:`invalid_parameter`, in scikit-learn's wording ("The 'tol' parameter of
    GaussianMixture must be a float in the range [0.0, inf). Got -1 instead."), and as a
    subclass of scikit-learn's own InvalidParameterError when scikit-learn is loaded."""


def invalid_parameter(estimator, name, expected):
    """The InvalidParameterError for ``estimator``'s parameter ``name``, which must be
    ``expected`` (scikit-learn's constraint text)."""
    cls = also_sklearns(InvalidParameterError, "sklearn.utils._param_validation",
                        "InvalidParameterError")
    return cls(f"The {name!r} parameter of {type(estimator).__name__} must be {expected}. "
               f"Got {getattr(estimator, name)!r} instead.")


def check_int(estimator, name, low):
    """``estimator.name`` must be an integer >= ``low`` (scikit-learn's Interval(Integral)),
    not a bool."""
    value = getattr(estimator, name)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) \
            or value < low:
        raise invalid_parameter(estimator, name, f"an int in the range [{low}, inf)")


def check_float(estimator, name, low):
    """``estimator.name`` must be a real number in [low, inf): not NaN, not infinite."""
    value = getattr(estimator, name)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
            or not low <= value < np.inf:
        raise invalid_parameter(estimator, name, f"a float in the range [{float(low)}, inf)")


def check_str(estimator, name, options):
    """``estimator.name`` must be one of the strings ``options``."""
    value = getattr(estimator, name)
    if not isinstance(value, str) or value not in options:
        listed = ", ".join(repr(option) for option in sorted(options))
        raise invalid_parameter(estimator, name, f"a str among {{{listed}}}")


def check_common(estimator):
    """random_state, warm_start and verbose as scikit-learn's estimators check them."""
    state = estimator.random_state
    if not (state is None or isinstance(state, np.random.RandomState)
            or (isinstance(state, numbers.Integral) and not isinstance(state, (bool, np.bool_))
                and 0 <= state <= 2**32 - 1)):
        raise invalid_parameter(estimator, "random_state", "an int in the range [0, 4294967295], "
                                "an instance of 'numpy.random.mtrand.RandomState' or None")
    booleans = "an instance of 'bool' or an instance of 'numpy.bool'"
    if not isinstance(estimator.warm_start, (bool, np.bool_)):
        raise invalid_parameter(estimator, "warm_start", booleans)
    verbose = estimator.verbose
    if not (isinstance(verbose, (bool, np.bool_))
            or (isinstance(verbose, numbers.Integral) and verbose >= 0)):
        raise invalid_parameter(estimator, "verbose", f"an int in the range [0, inf), {booleans}")


def _is_scalar(value):
    return isinstance(value, (int, float, str, bool, type(None)))
