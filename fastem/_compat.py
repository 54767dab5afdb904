"""fastem's exception and warning classes as scikit-learn's too, when scikit-learn is loaded,
so ``except`` clauses, warning filters and ``pytest.warns`` written for scikit-learn catch
fastem's; scikit-learn is never imported for it."""
import sys

_flavoured = {}


def also_sklearns(ours, module, name):
    """``ours``, or a subclass of ``ours`` and of scikit-learn's class ``name`` in ``module``
    (e.g. "sklearn.exceptions") when that module is loaded; one class per pair, so repeated
    raises and warnings share it."""
    theirs = getattr(sys.modules.get(module), name, None)
    if theirs is None:
        return ours
    if (ours, theirs) not in _flavoured:
        _flavoured[ours, theirs] = type(ours.__name__, (ours, theirs), {
            "__module__": ours.__module__, "__doc__": ours.__doc__})
    return _flavoured[ours, theirs]
