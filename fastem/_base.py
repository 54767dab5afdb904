"""The scikit-learn estimator protocol (parameters, repr, tags) without importing scikit-learn.

scikit-learn is not a dependency of fastem, but its tools (``clone``, pipelines, grid search,
``check_estimator``) only need this duck-typed surface; tags import scikit-learn lazily, when
scikit-learn itself asks for them.
"""
import inspect

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
    cls = NotFittedError
    try:
        from sklearn.exceptions import NotFittedError as SklearnNotFitted
    except ImportError:
        pass
    else:
        cls = _both(SklearnNotFitted)
    return cls(
        f"This {type(estimator).__name__} instance is not fitted yet. Call 'fit' with "
        "appropriate arguments before using this estimator."
    )


_both_cache = {}


def _both(sklearn_cls):
    if sklearn_cls not in _both_cache:
        _both_cache[sklearn_cls] = type("NotFittedError", (NotFittedError, sklearn_cls), {
            "__module__": __name__, "__doc__": NotFittedError.__doc__})
    return _both_cache[sklearn_cls]


def _is_scalar(value):
    return isinstance(value, (int, float, str, bool, type(None)))
