"""The ``fastem`` command: fit, predict, score, sample and inspect Gaussian mixtures on files.

Data are ``.npy`` files (memory-mapped, never loaded whole) or raw binary files described by
``--dtype``, ``--n-features`` and ``--offset``. Models are ``.npz`` files (no pickle).
"""
import argparse
import signal
import sys
import warnings

import numpy as np


def main(argv=None):
    """Entry point of the console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    warnings.simplefilter("default")
    try:
        return args.run(args)
    except ValueError as exc:  # bad input: one clear line, no traceback
        print(f"fastem {args.command}: error: {exc}", file=sys.stderr)
        return 2


def build_parser():
    parser = argparse.ArgumentParser(prog="fastem", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    fit = commands.add_parser("fit", help="fit a Gaussian mixture to a data file")
    add_data_arguments(fit)
    fit.add_argument("-k", "--n-components", type=int, default=1)
    fit.add_argument("--covariance", default="full", choices=["full", "tied", "diag", "spherical"])
    fit.add_argument("--max-iter", type=int, default=100)
    fit.add_argument("--tol", type=float, default=1e-3)
    fit.add_argument("--reg-covar", type=float, default=1e-6)
    fit.add_argument("--init", default="kmeans",
                     choices=["kmeans", "k-means++", "random", "random_from_data"])
    fit.add_argument("--n-init", type=int, default=1)
    fit.add_argument("--seed", type=int, default=None)
    fit.add_argument("-o", "--output", required=True, help="model file to write (.npz)")
    fit.add_argument("--checkpoint", help="model file rewritten every --checkpoint-every "
                                          "iterations (atomically)")
    fit.add_argument("--checkpoint-every", type=int, default=1)
    fit.add_argument("--resume", help="continue from this model or checkpoint file")
    fit.add_argument("--algorithm", default="batch", choices=["batch", "incremental", "stepwise"],
                     help="EM with an M-step per pass (batch) or per block of --batch-size rows "
                          "(iterations then count passes); a resumed online fit rebuilds its "
                          "running statistics")
    fit.add_argument("--batch-size", type=int, default=10_000,
                     help="rows per block of incremental and stepwise EM")
    fit.add_argument("--learning-offset", type=float, default=10.0,
                     help="stepwise EM's tau in rho_t = (t + tau)^-kappa")
    fit.add_argument("--learning-decay", type=float, default=0.7,
                     help="stepwise EM's kappa, in (0.5, 1]")
    fit.set_defaults(run=run_fit)

    predict = commands.add_parser("predict", help="label rows (or --proba: posteriors)")
    predict.add_argument("model")
    add_data_arguments(predict)
    predict.add_argument("-o", "--output", required=True, help=".npy file to write")
    predict.add_argument("--proba", action="store_true", help="write p(z | x), (n, K)")
    predict.set_defaults(run=run_predict)

    score = commands.add_parser("score", help="mean log-likelihood of the rows, BIC and AIC")
    score.add_argument("model")
    add_data_arguments(score)
    score.set_defaults(run=run_score)

    sample = commands.add_parser("sample", help="draw points from a model")
    sample.add_argument("model")
    sample.add_argument("-n", "--n-samples", type=int, required=True)
    sample.add_argument("-o", "--output", required=True, help=".npy file to write")
    sample.add_argument("--seed", type=int, default=None)
    sample.set_defaults(run=run_sample)

    info = commands.add_parser("info", help="describe a model file")
    info.add_argument("model")
    info.set_defaults(run=run_info)

    demo = commands.add_parser("demo", help="fit a mixture streamed from a memory-mapped file")
    demo.add_argument("--n-samples", type=int, default=4_000_000)
    demo.add_argument("--n-features", type=int, default=16)
    demo.add_argument("--n-components", type=int, default=8)
    demo.add_argument("--covariance-type", default="full",
                      choices=["full", "tied", "diag", "spherical"])
    demo.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    demo.add_argument("--max-iter", type=int, default=100)
    demo.add_argument("--threads", type=int, default=None)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--dir", default=None, help="folder for the data file (default: a "
                                                   "temporary folder, removed afterwards)")
    demo.set_defaults(run=run_demo)
    return parser


def add_data_arguments(parser):
    parser.add_argument("data", help=".npy file, or raw binary with --dtype/--n-features")
    parser.add_argument("--dtype", help="dtype of a raw binary data file (e.g. float32)")
    parser.add_argument("--n-features", type=int, help="columns of a raw binary data file")
    parser.add_argument("--offset", type=int, default=0, help="header bytes of a raw file")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--nan-policy", default="raise", choices=["raise", "omit"],
                        help="rows with NaN/inf: stop with an error, or leave them out")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def open_data(args):
    """The data file as a memory-mapped array (raw files need --dtype and --n-features)."""
    from .data import open_raw, open_source

    if args.dtype or args.n_features:
        if not (args.dtype and args.n_features):
            raise ValueError("a raw data file needs both --dtype and --n-features")
        return open_raw(args.data, args.dtype, args.n_features, args.offset)
    return open_source(args.data, name=args.data)


def load_model(args):
    from .io import load

    model = load(args.model)
    return model.set_params(n_threads=args.threads, chunk_size=args.chunk_size,
                            progress=not args.quiet, nan_policy=args.nan_policy)


def run_fit(args):
    from .estimators import GaussianMixture
    from .io import load, save

    if args.n_init > 1 and (args.checkpoint or args.resume):
        raise ValueError("--checkpoint and --resume hold a single run: use them with --n-init 1")
    X = open_data(args)
    if args.resume:
        model = load(args.resume)
        done, history = model.n_iter_, list(model.lower_bounds_)
        if done >= args.max_iter:  # nothing left to run; a 0-iteration fit would reset the bound
            return report(args, model, done, save(model, args.output))
        model.set_params(warm_start=True, max_iter=max(0, args.max_iter - done))
    else:
        model = GaussianMixture(args.n_components, covariance_type=args.covariance,
                                tol=args.tol, reg_covar=args.reg_covar, max_iter=args.max_iter,
                                n_init=args.n_init, init_params=args.init,
                                random_state=args.seed, algorithm=args.algorithm,
                                batch_size=args.batch_size,
                                learning_offset=args.learning_offset,
                                learning_decay=args.learning_decay)
        done, history = 0, []
    run = FitRun(args, done, history)
    model.set_params(n_threads=args.threads, chunk_size=args.chunk_size, progress=not args.quiet,
                     nan_policy=args.nan_policy, callback=run.after_iteration)
    with sigint_as_keyboard_interrupt():
        try:
            model.fit(X)
        except KeyboardInterrupt:
            if hasattr(model, "n_features_in_"):
                run.save(model, args.output)
                print(f"interrupted: wrote the last completed iteration "
                      f"({done + model.n_iter_}) to {args.output}", file=sys.stderr)
            return 130
    return report(args, model, done + model.n_iter_, run.save(model, args.output))


def report(args, model, n_iter, path):
    """The last line of ``fastem fit`` (unless --quiet); returns the exit code, 0."""
    if not args.quiet:
        status = "converged" if model.converged_ else "did not converge"
        print(f"{status} after {n_iter} iterations, mean log-likelihood "
              f"{model.lower_bound_:.6f}; wrote {path}")
    return 0


class FitRun:
    """One ``fastem fit``: a line per iteration, periodic checkpoints, and model files that
    count iterations from the very start when the fit resumed from a checkpoint."""

    def __init__(self, args, done, history):
        self.args, self.done, self.history = args, done, history

    def after_iteration(self, model):
        n_iter = self.done + model.n_iter_
        bounds = self.history + model.lower_bounds_
        if not self.args.quiet:
            change = f" (change {bounds[-1] - bounds[-2]:+.3e})" if len(bounds) > 1 else ""
            print(f"iteration {n_iter}: mean log-likelihood {bounds[-1]:.6f}{change}",
                  flush=True)
        if self.args.checkpoint and n_iter % self.args.checkpoint_every == 0:
            self.save(model, self.args.checkpoint)

    def save(self, model, path):
        """Write ``model`` as if it had been fitted in one go (atomic; see fastem.io.save)."""
        from .io import save

        kept = (model.n_iter_, model.lower_bounds_, model.get_params())
        model.n_iter_ = self.done + model.n_iter_
        model.lower_bounds_ = self.history + list(model.lower_bounds_)
        model.set_params(callback=None, warm_start=False, max_iter=self.args.max_iter,
                         progress=False, n_threads=None, chunk_size=None)
        try:
            return save(model, path)
        finally:
            model.n_iter_, model.lower_bounds_ = kept[0], kept[1]
            model.set_params(**kept[2])


def run_predict(args):
    model = load_model(args)
    X = open_data(args)
    if args.proba:
        model.predict_proba(X, out=args.output)
    else:
        model.predict(X, out=args.output)
    if not args.quiet:
        print(f"wrote {'posteriors' if args.proba else 'labels'} of {X.shape[0]:,} rows to "
              f"{args.output}")
    return 0


def run_score(args):
    model = load_model(args)
    X = open_data(args)
    n = X.shape[0]
    mean = model.score(X)
    n_params = model._n_parameters()
    print(f"rows: {n}\nmean log-likelihood: {mean:.10g}\n"
          f"BIC: {-2 * mean * n + n_params * np.log(n):.10g}\n"
          f"AIC: {-2 * mean * n + 2 * n_params:.10g}")
    return 0


def run_sample(args):
    from .io import load

    model = load(args.model).set_params(random_state=args.seed)
    points, labels = model.sample(args.n_samples)
    np.save(args.output, points)
    print(f"wrote {args.n_samples:,} points to {args.output}")
    return 0


def run_info(args):
    from .io import load

    model = load(args.model)
    kind = f", {model.covariance_type} covariances" if hasattr(model, "covariance_type") else ""
    print(f"{type(model).__name__}: {model.n_components} components, {model.n_features_in_} "
          f"features{kind}")
    print(f"fitted: {model.n_iter_} iterations, converged: {model.converged_}, mean "
          f"log-likelihood {model.lower_bound_:.10g}")
    with np.printoptions(precision=4, suppress=True, linewidth=100):
        print(f"weights: {model.weights_}")
        for name in ("means_", "probabilities_", "shapes_", "rates_"):  # whichever it has
            if hasattr(model, name):
                print(f"{name[:-1]}:\n{getattr(model, name)}")
    return 0


def run_demo(args):
    from .demo import run

    return run(args)


class sigint_as_keyboard_interrupt:
    """Make sure SIGINT raises KeyboardInterrupt (a parent may have set it to be ignored)."""

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, signal.default_int_handler)

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.previous)
        return False


if __name__ == "__main__":
    sys.exit(main())
