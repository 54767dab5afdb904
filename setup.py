"""Build the Cython kernels: -O3, OpenMP when the compiler supports it, serial otherwise.

Everything else about the package lives in pyproject.toml; this file only declares extensions.
"""
import os
import sys
import tempfile
import textwrap

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

KERNELS = ["_blocks", "expfam", "forward_backward", "gaussian", "grid", "kmeans", "logsumexp",
           "multinomial", "state_mixture"]
OPENMP_PROBE = textwrap.dedent(
    """
    #include <omp.h>
    int main(void) { int n = 0;
    #pragma omp parallel reduction(+:n)
      n += 1;
      return omp_get_max_threads() > 0 && n > 0 ? 0 : 1; }
    """
)


def openmp_flags(compiler):
    """Return the OpenMP compile flag that this compiler accepts, or None (serial build)."""
    if os.environ.get("FASTEM_NO_OPENMP"):
        return None
    flag = "/openmp" if compiler.compiler_type == "msvc" else "-fopenmp"
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=[flag])
            compiler.link_executable(objs, "probe", output_dir=tmp, extra_postargs=[flag])
        except Exception:  # any compile/link failure means no usable OpenMP
            return None
    return flag


class BuildExt(build_ext):
    """build_ext that probes for OpenMP once and applies the flags to every kernel."""

    def build_extensions(self):
        flag = openmp_flags(self.compiler)
        if flag is None:
            print("fastem: OpenMP not available, building serial kernels", file=sys.stderr)
        for ext in self.extensions:
            if flag:
                ext.extra_compile_args.append(flag)
                ext.extra_link_args.append(flag)
        super().build_extensions()


def extension(name):
    # -fno-trapping-math lets the compiler vectorise branch-free selects (as in _vexp.h); unlike
    # -ffast-math it changes no result: it only assumes floating-point exceptions do not trap.
    compile_args = [] if sys.platform == "win32" else ["-O3", "-fno-trapping-math"]
    return Extension(
        f"fastem._kernels.{name}",
        [f"fastem/_kernels/{name}.pyx"],
        # ".": headers are included as "fastem/_kernels/x.h", the path that fastem.get_include()
        # gives consumers of the public .pxd files
        include_dirs=[np.get_include(), "."],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
        extra_compile_args=compile_args,
    )


setup(
    ext_modules=cythonize(
        [extension(name) for name in KERNELS],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
    cmdclass={"build_ext": BuildExt},
)
