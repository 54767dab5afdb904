"""Estimators by family name, and product families from a small spec, for ``fastem.select``
and the ``fastem`` command: mixtures (:data:`FAMILIES`) and hidden Markov models
(:func:`hmm_estimator`).

A spec lists one column type per feature, comma-separated: ``normal,poisson,categorical:3``
(``categorical:N`` has N categories; ``name*R`` repeats a column R times, e.g. ``normal*4``),
or is the path of a JSON file holding such a list of strings.
"""
import json
import os

from ..families.expfam import (
    Bernoulli,
    Categorical,
    Exponential,
    Gamma,
    Normal,
    Poisson,
    ProductFamily,
)
from .expfam import (
    BernoulliMixture,
    CategoricalMixture,
    ExponentialMixture,
    GammaMixture,
    PoissonMixture,
)
from .gaussian import GaussianMixture
from .hmm import GMMHMM, HMM, CategoricalHMM, GaussianHMM, MultinomialHMM, PoissonHMM

FAMILIES = {"gaussian": GaussianMixture, "bernoulli": BernoulliMixture,
            "categorical": CategoricalMixture, "poisson": PoissonMixture,
            "exponential": ExponentialMixture, "gamma": GammaMixture}
# hmmlearn's classes; any other family name or spec is an HMM over a product of columns
HMM_CLASSES = {"gaussian": GaussianHMM, "categorical": CategoricalHMM, "poisson": PoissonHMM,
               "multinomial": MultinomialHMM, "gmm": GMMHMM}
COLUMNS = {"normal": Normal, "bernoulli": Bernoulli, "categorical": Categorical,
           "poisson": Poisson, "exponential": Exponential, "gamma": Gamma}


def estimator_class(name):
    """The estimator class of a family ``name`` (one of :data:`FAMILIES`)."""
    try:
        return FAMILIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown family {name!r}; expected one of {sorted(FAMILIES)}, or a "
                         "product of columns such as 'normal,poisson,categorical:3'") from None


def hmm_estimator(name, n_features):
    """``(class, parameters)`` of the hidden Markov model for a family ``name`` on data of
    ``n_features`` columns: hmmlearn's class where there is one (:data:`HMM_CLASSES`;
    categorical is hmmlearn's one column of integer codes), else :class:`HMM` over the columns
    ``name`` repeats (bernoulli, exponential, gamma) or a product spec describes."""
    if name in HMM_CLASSES:
        return HMM_CLASSES[name], {}
    if name.isalpha() and name not in FAMILIES and name not in COLUMNS:
        raise ValueError(f"unknown family {name!r} for a hidden Markov model; expected one of "
                         f"{sorted(set(HMM_CLASSES) | set(FAMILIES))}, or a product of columns "
                         "such as 'normal,poisson,categorical:3'")
    spec = f"{name}*{n_features}" if name in FAMILIES else name
    return HMM, {"family": product_family(spec, n_features)}


def product_family(spec, n_features=None):
    """The :class:`~fastem.families.expfam.ProductFamily` a spec describes (see the module);
    ValueError if it is malformed or, given ``n_features``, has another number of columns."""
    items = _read_spec(spec)
    columns = [column for item in items for column in _columns(item.strip().lower(), spec)]
    if not columns:
        raise ValueError(f"the family spec {spec!r} names no columns")
    if n_features is not None and len(columns) != n_features:
        raise ValueError(f"the family spec {spec!r} describes {len(columns)} columns but the "
                         f"data have {n_features}")
    return ProductFamily(columns)


def _read_spec(spec):
    if spec.endswith(".json") or os.path.isfile(spec):
        with open(spec) as file:
            items = json.load(file)
        if not (isinstance(items, list) and all(isinstance(item, str) for item in items)):
            raise ValueError(f"{spec}: a family spec file holds a JSON list of column names, "
                             'e.g. ["normal", "poisson", "categorical:3"]')
        return items
    return spec.split(",")


def _columns(item, spec):
    """The columns of one spec item ``name[:n_categories][*repeat]``."""
    name, _, repeat = item.partition("*")
    name, _, count = name.partition(":")
    if name not in COLUMNS:
        raise ValueError(f"unknown column type {name!r} in the family spec {spec!r}: a spec "
                         f"lists column types of {sorted(COLUMNS)}; a family name is one of "
                         f"{sorted(FAMILIES)}")
    if (name == "categorical") != bool(count):
        raise ValueError(f"{item!r} in the family spec {spec!r}: give categorical columns "
                         "their number of categories (categorical:N), and no other column")
    n = _positive(repeat or "1", item, spec)
    if count:
        return [Categorical(_positive(count, item, spec)) for _ in range(n)]
    return [COLUMNS[name]() for _ in range(n)]


def _positive(text, item, spec):
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{item!r} in the family spec {spec!r}: {text!r} is not a positive "
                         "integer")
    return int(text)
