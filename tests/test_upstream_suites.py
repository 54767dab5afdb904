"""The upstream libraries' own tests of the estimators fastem replaces, run against fastem:
hmmlearn 0.3.3's test files of its HMM classes against ``fastem.hmm``, and scikit-learn 1.9's
GaussianMixture test files against ``fastem.GaussianMixture``. Each file is copied into a
temporary package with its import of the upstream class rewritten to fastem's, and run by pytest
in a subprocess. They cover the constructor parameters, attributes, methods, errors, warnings and
logged messages that user code and tests written against those libraries rely on; the few tests
left out (``DESELECTED``) exercise upstream internals fastem does not have, or assert an
upstream failure."""
import os
import re
import subprocess
import sys

import pytest

import fastem

PACKAGE = "upstream_tests_on_fastem"

HMMLEARN_FILES = ["test_gaussian_hmm.py", "test_categorical_hmm.py", "test_poisson_hmm.py",
                  "test_multinomial_hmm.py", "test_gmm_hmm.py", "test_gmm_hmm_new.py",
                  "test_gmm_hmm_multisequence.py"]
# their hmm module ("from .. import hmm", "from hmmlearn import hmm", "from ..hmm import GMMHMM")
HMMLEARN_REWRITES = [(r"^from (\.\.|hmmlearn) import hmm$", f"from {PACKAGE} import hmm"),
                     (r"^from \.\.hmm import ", f"from {PACKAGE}.hmm import ")]
# Left out: a test asserting that hmmlearn's scaled forward pass fails on an outlier (fastem's
# fits that sequence, for every covariance type, to what hmmlearn's log-domain pass gives)
HMMLEARN_DESELECTED = "not (TestGaussianHMMWithSphericalCovars and test_underflow_from_scaling)"

SKLEARN_FILES = ["test_gaussian_mixture.py", "test_mixture.py"]
SKLEARN_REWRITES = [(r"^from sklearn\.mixture import GaussianMixture$",
                     "from fastem import GaussianMixture"),
                    (r"^from sklearn\.mixture import BayesianGaussianMixture, GaussianMixture$",
                     "from sklearn.mixture import BayesianGaussianMixture\n"
                     "from fastem import GaussianMixture")]
# Left out: tests of scikit-learn's private GaussianMixture._set_parameters and of how often its
# private _estimate_gaussian_parameters runs (mocked)
SKLEARN_DESELECTED = ("not test_gaussian_mixture_precisions_init"
                      " and not test_gaussian_mixture_all_init_does_not_estimate")


def run_upstream(tmp_path, source, files, rewrites, deselected, support):
    """Copy ``files`` of the test folder ``source`` into a package under tmp_path beside
    ``support`` (file name: text, e.g. its conftest.py), apply ``rewrites`` (each must match in
    some file), run them with ``-k deselected``; returns pytest's output, asserting it passed."""
    tests = tmp_path / PACKAGE / "tests"
    tests.mkdir(parents=True)
    (tests.parent / "__init__.py").write_text("")
    (tests.parent / "hmm.py").write_text("from fastem.hmm import *  # noqa: F401,F403\n")
    for name, text in support.items():
        (tests / name).write_text(text)
    used = set()
    for name in files:
        text = open(os.path.join(source, name)).read()
        for pattern, replacement in rewrites:
            text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
            used.update([pattern] * bool(count))
        (tests / name).write_text(text)
    assert used == {pattern for pattern, _ in rewrites}, used
    here = os.path.dirname(os.path.dirname(os.path.abspath(fastem.__file__)))  # this fastem
    paths = [str(tmp_path), here, os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path for path in paths if path))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *[str(tests / name) for name in files], "-k", deselected],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]
    return done.stdout


def upstream_tests(module, version):
    """The tests folder of an installed upstream module at ``version``, or skip."""
    library = pytest.importorskip(module.split(".")[0])
    if not library.__version__.startswith(version):
        pytest.skip(f"the tests of {library.__name__} {version}, whose API fastem follows")
    path = os.path.join(os.path.dirname(pytest.importorskip(module).__file__), "tests")
    if not os.path.isdir(path):
        pytest.skip(f"{module} was installed without its tests")
    return path


def test_hmmlearns_tests_pass_against_fastem_hmm(tmp_path):
    source = upstream_tests("hmmlearn", "0.3.3")
    support = {name: open(os.path.join(source, name)).read()  # their helpers and fixtures
               for name in ("__init__.py", "conftest.py")}
    out = run_upstream(tmp_path, source, HMMLEARN_FILES, HMMLEARN_REWRITES,
                       HMMLEARN_DESELECTED, support)
    assert int(re.search(r"(\d+) passed", out).group(1)) >= 200, out[-500:]


def test_sklearns_gaussian_mixture_tests_pass_against_fastem(tmp_path):
    source = upstream_tests("sklearn.mixture", "1.9")
    support = {"__init__.py": "", "conftest.py": "from sklearn.conftest import *  # noqa\n"}
    out = run_upstream(tmp_path, source, SKLEARN_FILES, SKLEARN_REWRITES, SKLEARN_DESELECTED,
                       support)
    assert int(re.search(r"(\d+) passed", out).group(1)) >= 50, out[-500:]
