"""The package surface: import cost, the installed kernels, the ``fastem demo`` command."""
import subprocess
import sys

import fastem


def test_import_is_fast_and_compiles_nothing():
    code = ("import time, sys; t = time.perf_counter(); import fastem; "
            "print(time.perf_counter() - t); print('Cython' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert float(out[0]) < 1.0
    assert out[1] == "False"


def test_kernels_are_compiled_extensions():
    from fastem._kernels import gaussian

    assert gaussian.__file__.endswith((".so", ".pyd"))
    assert fastem.__version__


def test_demo_runs_end_to_end(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "fastem.cli", "demo", "--n-samples", "20000", "--n-features", "4",
         "--n-components", "3", "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "wrote 20,000 x 4 float64 points" in out
    assert "Iteration 1" in out and "ms per EM iteration" in out and "peak memory" in out
    error = float(out.rsplit("against the truth:", 1)[1])
    assert error < 0.1
    assert (tmp_path / "demo.npy").exists()
