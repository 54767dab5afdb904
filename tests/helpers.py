"""Data helpers shared by the tests: small mixtures with known parameters."""
import numpy as np


def make_blobs(n=2000, d=3, k=3, seed=0, spread=6.0, offset=0.0):
    """Points from k anisotropic Gaussians with well separated means; returns X, labels, means."""
    rng = np.random.RandomState(seed)
    means = spread * rng.randn(k, d) + offset
    labels = rng.randint(0, k, n)
    mixing = [np.eye(d) + 0.3 * rng.randn(d, d) for _ in range(k)]
    X = np.vstack([rng.randn(1, d) @ mixing[z] for z in labels]) + means[labels]
    return X, labels, means


def sklearn_start(X, k, covariance_type, seed=1):
    """Initial parameters from one sklearn iteration, as keyword arguments for either estimator."""
    from sklearn.mixture import GaussianMixture

    start = GaussianMixture(k, covariance_type=covariance_type, max_iter=1,
                            random_state=seed).fit(X)
    return dict(weights_init=start.weights_, means_init=start.means_,
                precisions_init=start.precisions_, covariance_type=covariance_type)


def build_consumer(tmp, module, source):
    """Compile ``source`` (.pyx text that cimports fastem's public .pxd files) as extension
    ``module`` in folder ``tmp`` and import it; pytest.skip without a C compiler or Cython.
    The caller removes ``tmp`` from sys.path and the module from sys.modules when done."""
    import importlib
    import os
    import shlex
    import shutil
    import subprocess
    import sys
    import sysconfig

    import pytest

    import fastem

    command = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    if not command or shutil.which(command[0]) is None:
        pytest.skip("no C compiler")
    pytest.importorskip("Cython")
    (tmp / f"{module}.pyx").write_text(source)
    (tmp / "setup.py").write_text(_SETUP.format(module=module))
    build = subprocess.run(
        [sys.executable, "setup.py", fastem.get_include(), np.get_include(),
         "build_ext", "--inplace"],
        cwd=tmp, capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    sys.path.insert(0, str(tmp))
    return importlib.import_module(module)


_SETUP = '''
import sys
from Cython.Build import cythonize
from setuptools import Extension, setup

fastem_include, numpy_include = sys.argv.pop(1), sys.argv.pop(1)
ext = Extension("{module}", ["{module}.pyx"],
                include_dirs=[fastem_include, numpy_include],
                extra_compile_args=["-O0"] if sys.platform != "win32" else [])  # fast build
setup(ext_modules=cythonize([ext], include_path=[fastem_include], quiet=True))
'''
