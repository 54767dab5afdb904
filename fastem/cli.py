"""The ``fastem`` command: fit, select, predict, score, sample and inspect models on files.

``fit --family`` takes a family name (gaussian, bernoulli, categorical, poisson, exponential,
gamma) or a product of columns (``normal,poisson,categorical:3`` or a JSON file of such names);
``fit --model hmm`` fits a hidden Markov model instead of a mixture (hmmlearn's classes for
gaussian, categorical, poisson, multinomial and gmm; ``fastem.hmm.HMM`` over the columns
otherwise), on sequences cut by ``--lengths`` (a ``.npy`` file of sequence lengths), which
``predict`` and ``score`` take too. ``select`` fits a grid of mixtures in shared passes and
keeps the best by BIC, AIC or ICL.

Data are ``.npy`` files (memory-mapped, never loaded whole) or raw binary files described by
``--dtype``, ``--n-features`` and ``--offset``. Models are ``.npz`` files (no pickle).
"""
import argparse
import os
import signal
import sys
import tempfile
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
    except OSError as exc:  # a file that cannot be read or written, said in one line
        print(f"fastem {args.command}: error: {exc}", file=sys.stderr)
        return 1


def build_parser():
    parser = argparse.ArgumentParser(prog="fastem", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    fit = commands.add_parser("fit", help="fit a mixture or a hidden Markov model to a data "
                                           "file")
    add_data_arguments(fit)
    fit.add_argument("--model", default="mixture", choices=["mixture", "hmm"],
                     help="a mixture (default) or a hidden Markov model")
    fit.add_argument("-k", "--n-components", type=int, default=None,
                     help="components, or states of a hidden Markov model (default: 1)")
    fit.add_argument("--covariance", default=None,
                     choices=["full", "tied", "diag", "spherical"],
                     help="Gaussian covariance type (default: full for mixtures, diag for "
                          "hidden Markov models, as hmmlearn)")
    add_lengths_argument(fit)
    fit.add_argument("--n-mix", type=positive_int, default=None,
                     help="Gaussian components per state of --model hmm --family gmm")
    add_model_arguments(fit)
    fit.add_argument("-o", "--output", required=True, help="model file to write (.npz)")
    fit.add_argument("--checkpoint", help="model file rewritten every --checkpoint-every "
                                          "iterations (atomically)")
    fit.add_argument("--checkpoint-every", type=positive_int, default=1, metavar="N")
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

    select = commands.add_parser("select", help="fit a grid of mixtures in shared passes and "
                                                "keep the best by BIC, AIC or ICL")
    add_data_arguments(select)
    select.add_argument("-k", "--n-components", default="1-9",
                        help="numbers of components: a range 1-20, a list 2,4,8, or one")
    select.add_argument("--covariance", default="full,tied,diag,spherical",
                        help="Gaussian covariance types, comma-separated")
    select.add_argument("--criterion", default="bic", choices=["bic", "aic", "icl"])
    add_model_arguments(select)
    select.add_argument("-o", "--output", required=True, help="best model file to write (.npz)")
    select.add_argument("--plot", help="image file of the criterion against K (matplotlib)")
    select.set_defaults(run=run_select)

    predict = commands.add_parser("predict", help="label rows (or --proba: posteriors)")
    predict.add_argument("model")
    add_data_arguments(predict)
    add_lengths_argument(predict)
    predict.add_argument("-o", "--output", required=True, help=".npy file to write")
    predict.add_argument("--proba", action="store_true", help="write p(z | x), (n, K)")
    predict.set_defaults(run=run_predict)

    score = commands.add_parser("score", help="log-likelihood of the rows, BIC and AIC")
    score.add_argument("model")
    add_data_arguments(score)
    add_lengths_argument(score)
    score.set_defaults(run=run_score)

    sample = commands.add_parser("sample", help="draw points from a model")
    sample.add_argument("model")
    sample.add_argument("-n", "--n-samples", type=int, required=True)
    sample.add_argument("-o", "--output", required=True, help=".npy file to write")
    sample.add_argument("--states", help=".npy file of each drawn row's component (mixtures) "
                                         "or hidden state (hidden Markov models)")
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


def positive_int(text):
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_data_arguments(parser):
    parser.add_argument("data", help=".npy file, or raw binary with --dtype/--n-features")
    parser.add_argument("--dtype", help="dtype of a raw binary data file (e.g. float32)")
    parser.add_argument("--n-features", type=int, help="columns of a raw binary data file")
    parser.add_argument("--offset", type=int, default=None,
                        help="header bytes of a raw file (default 0)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--chunk-size", type=int, default=None)
    parser.add_argument("--nan-policy", default="raise",
                        choices=["raise", "omit", "marginalize"],
                        help="rows with NaN/inf: stop with an error, leave them out, or "
                             "marginalize NaN entries as missing values (exact EM)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def add_lengths_argument(parser):
    parser.add_argument("--lengths", help="hidden Markov models: .npy file of the lengths of "
                                          "the consecutive sequences (default: one sequence)")


def add_model_arguments(parser):
    """Options of the family and of EM, shared by ``fit`` and ``select``."""
    parser.add_argument("--family", default="gaussian",
                        help="gaussian, bernoulli, categorical, poisson, exponential, gamma, "
                             "or one column type per feature: normal,poisson,categorical:3 "
                             "(name*R repeats a column) or a JSON file of such names")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="EM iterations at most (default: the estimator's, 100 for "
                             "mixtures, hmmlearn's n_iter=10 for hidden Markov models)")
    parser.add_argument("--tol", type=float, default=None,
                        help="convergence threshold (default: the estimator's, 1e-3 on the "
                             "mean log-likelihood for mixtures, 1e-2 on the log-likelihood "
                             "for hidden Markov models)")
    parser.add_argument("--reg-covar", type=float, default=None,
                        help="Gaussian covariance regularisation (default: 1e-6)")
    parser.add_argument("--init", default=None,
                        choices=["kmeans", "k-means++", "random", "random_from_data"],
                        help="initialisation (default: the estimator's)")
    parser.add_argument("--n-init", type=int, default=1)
    parser.add_argument("--seed", type=int, default=None)


def model_choice(args, n_features):
    """``(estimator class, its parameters)`` for ``--family`` and the EM options; Gaussian
    options with another family are an error."""
    from .estimators import MixtureModel
    from .estimators.names import FAMILIES, product_family

    params = {"n_init": args.n_init, "random_state": args.seed,
              **given({"tol": args.tol, "max_iter": args.max_iter})}
    if args.init is not None:
        params["init_params"] = args.init
    gaussian = args.family == "gaussian"
    if not gaussian and (args.command == "fit" and args.covariance is not None
                         or args.reg_covar is not None):
        raise ValueError(f"--covariance and --reg-covar apply to --family gaussian, not "
                         f"{args.family!r}")
    if gaussian and args.reg_covar is not None:
        params["reg_covar"] = args.reg_covar
    if args.family in FAMILIES:
        return FAMILIES[args.family], params
    params["family"] = product_family(args.family, n_features)
    return MixtureModel, params


def given(options):
    """The options whose value is not None."""
    return {name: value for name, value in options.items() if value is not None}


def hmm_choice(args, n_features):
    """``(estimator class, its parameters)`` of ``fit --model hmm``; ValueError naming the
    options that apply to mixtures only."""
    from .estimators.names import hmm_estimator

    mixture_only = [option for option, used in (
        ("--checkpoint", args.checkpoint), ("--resume", args.resume),
        ("--algorithm", args.algorithm != "batch"), ("--n-init", args.n_init != 1),
        ("--init", args.init), ("--reg-covar", args.reg_covar)) if used]
    if mixture_only:
        raise ValueError(f"{', '.join(mixture_only)} apply to mixtures, not to --model hmm")
    cls, params = hmm_estimator(args.family, n_features)
    for option, name, value in (("--covariance", "covariance_type", args.covariance),
                                ("--n-mix", "n_mix", args.n_mix)):
        if value is not None:
            if name not in cls._param_names():
                raise ValueError(f"{option} does not apply to {cls.__name__} (--family "
                                 f"{args.family})")
            params[name] = value
    return cls, dict(params, random_state=args.seed,
                     **given({"tol": args.tol, "n_iter": args.max_iter}))


def read_lengths(args, n_samples):
    """``--lengths`` as a checked vector of sequence lengths summing to ``n_samples``;
    None without it. ValueError naming the file and the problem."""
    from .data import check_lengths, open_source

    if args.lengths is None:
        return None
    name = f"--lengths {args.lengths!r}"
    return check_lengths(np.array(open_source(args.lengths, name="--lengths")), n_samples,
                         name=name)


def is_hmm(model):
    from .estimators.hmm import _HMMBase

    return isinstance(model, _HMMBase)


def open_data(args):
    """The data file as a memory-mapped array (raw files need --dtype and --n-features)."""
    from .data import open_raw, open_source

    if args.dtype or args.n_features:
        if not (args.dtype and args.n_features):
            raise ValueError("a raw data file needs both --dtype and --n-features")
        return open_raw(args.data, args.dtype, args.n_features, args.offset or 0)
    if args.offset is not None:
        raise ValueError("--offset applies to raw data files (with --dtype and --n-features); "
                         f"{args.data!r} is read as .npy, whose header gives the offset")
    return open_source(args.data, name=args.data)


def load_file(path):
    """The estimator of a model file, mixtures and hidden Markov models alike (importing the
    HMM classes registers them for ``fastem.io.load``)."""
    from . import hmm  # noqa: F401
    from .io import load

    return load(path)


def load_model(args):
    """The model file's estimator with the command's thread, chunk, progress and NaN options
    (those it has)."""
    model = load_file(args.model)
    options = {"n_threads": args.threads, "chunk_size": args.chunk_size,
               "progress": not args.quiet, "nan_policy": args.nan_policy}
    return model.set_params(**{name: value for name, value in options.items()
                               if name in model.get_params()})


def model_lengths(args, model, n_samples):
    """``--lengths`` for ``model`` (hidden Markov models only), see :func:`read_lengths`."""
    if args.lengths is not None and not is_hmm(model):
        raise ValueError(f"--lengths applies to hidden Markov models; {args.model!r} holds a "
                         f"{type(model).__name__}")
    return read_lengths(args, n_samples)


def run_fit(args):
    if args.model == "hmm":
        return run_fit_hmm(args)
    if args.lengths is not None or args.n_mix is not None:
        raise ValueError(f"{'--lengths' if args.lengths is not None else '--n-mix'} applies "
                         "to --model hmm")
    return run_fit_mixture(args)


def run_fit_mixture(args):
    from .data import SourceChanged
    from .io import load, save

    if args.n_init > 1 and (args.checkpoint or args.resume):
        raise ValueError("--checkpoint and --resume hold a single run: use them with --n-init 1")
    check_outputs([args.output, model_file(args.output), args.checkpoint,
                   args.checkpoint and model_file(args.checkpoint)], [args.data])
    X = open_data(args)
    if args.resume:
        model = load(args.resume)
        check_resumable(args, model, X)
        if args.max_iter is None:  # the checkpointed fit's
            args.max_iter = model.max_iter
        done, history = model.n_iter_, list(model.lower_bounds_)
        if done >= args.max_iter:  # nothing left to run; a 0-iteration fit would reset the bound
            return report(args, model, done, save(model, args.output))
        model.set_params(warm_start=True, max_iter=max(0, args.max_iter - done))
        # this run's iterations only: FitRun adds ``done`` and ``history`` when saving, also
        # when the run is interrupted before its first iteration completes
        model.n_iter_, model.lower_bounds_ = 0, []
    else:
        cls, params = model_choice(args, X.shape[1])
        if args.covariance is not None:
            params["covariance_type"] = args.covariance
        model = cls(n_components=1 if args.n_components is None else args.n_components,
                    algorithm=args.algorithm, batch_size=args.batch_size,
                    learning_offset=args.learning_offset, learning_decay=args.learning_decay,
                    **params)
        args.max_iter = model.max_iter
        done, history = 0, []
    run = FitRun(args, done, history)
    model.set_params(n_threads=args.threads, chunk_size=args.chunk_size, progress=not args.quiet,
                     nan_policy=args.nan_policy, callback=run.after_iteration)
    with sigint_as_keyboard_interrupt():
        try:
            model.fit(X)
        except (KeyboardInterrupt, SourceChanged) as exc:
            stopped = "interrupted:" if isinstance(exc, KeyboardInterrupt) else f"error: {exc};"
            if hasattr(model, "n_features_in_"):
                save_or_keep(run, model, args.output, args.checkpoint)
                print(f"{stopped} wrote the last completed iteration "
                      f"({done + model.n_iter_}) to {args.output}", file=sys.stderr)
            elif isinstance(exc, SourceChanged):  # before any iteration: nothing to keep
                raise
            return 130 if isinstance(exc, KeyboardInterrupt) else 1
    return report(args, model, done + model.n_iter_,
                  save_or_keep(run, model, args.output, args.checkpoint))


def run_fit_hmm(args):
    """``fastem fit --model hmm``: a line per iteration (the log-likelihood, as hmmlearn's
    monitor reports it) unless --quiet; Ctrl-C writes the last completed iteration."""
    from .io import save

    check_outputs([args.output, model_file(args.output)], [args.data, args.lengths])
    X = open_data(args)
    cls, params = hmm_choice(args, X.shape[1])
    lengths = read_lengths(args, X.shape[0])
    model = cls(n_components=1 if args.n_components is None else args.n_components,
                n_threads=args.threads, chunk_size=args.chunk_size, nan_policy=args.nan_policy,
                **params)
    model.monitor_ = printing_monitor()(model.tol, model.n_iter, False, quiet=args.quiet)
    with sigint_as_keyboard_interrupt():
        try:
            model.fit(X, lengths)
        except KeyboardInterrupt:
            if model.monitor_.iter:  # the model holds the last completed iteration
                path = save(model.set_params(n_threads=None, chunk_size=None), args.output)
                print(f"interrupted: wrote the last completed iteration ({model.monitor_.iter})"
                      f" to {path}", file=sys.stderr)
            return 130
    path = save(model.set_params(n_threads=None, chunk_size=None), args.output)
    if not args.quiet:
        history = model.monitor_.history
        print(f"{hmm_status(model)} after {len(history)} iterations, log-likelihood "
              f"{history[-1]:.6f}; wrote {path}")
    return 0


def hmm_status(model):
    """Whether an HMM's fit converged: its last change below ``tol`` (hmmlearn's monitor also
    calls reaching ``n_iter`` converged; the command does not)."""
    history = model.monitor_.history
    return ("converged" if len(history) > 1 and history[-1] - history[-2] < model.tol
            else "did not converge")


def printing_monitor():
    """hmmlearn's convergence monitor printing a line per iteration (made on first use, so
    that the command's other subcommands do not import the HMM classes)."""
    from .hmm import ConvergenceMonitor

    class Monitor(ConvergenceMonitor):
        def __init__(self, tol, n_iter, verbose, quiet=False):
            super().__init__(tol, n_iter, verbose)
            self.quiet = quiet

        def report(self, value):
            super().report(value)
            if not self.quiet:
                change = (f" (change {value - self.history[-2]:+.3e})"
                          if len(self.history) > 1 else "")
                print(f"iteration {self.iter}: log-likelihood {value:.6f}{change}", flush=True)

    return Monitor


def check_resumable(args, model, X):
    """ValueError when the options of ``fastem fit --resume`` contradict the checkpoint (they
    cannot change a fit under way) or the data ``X`` have other columns than the checkpoint's."""
    if X.shape[1] != model.n_features_in_:
        raise ValueError(f"{args.data!r} has {X.shape[1]} columns but {args.resume!r} was fitted "
                         f"on {model.n_features_in_}: resume on the data it was fitted on")
    given = {"-k": (args.n_components, model.n_components),
             "--covariance": (args.covariance, getattr(model, "covariance_type", None))}
    for option, (value, stored) in given.items():
        if value is not None and value != stored:
            raise ValueError(f"{option} {value} contradicts {args.resume!r}, which holds "
                             f"{stored}: leave {option} out to resume, or start a new fit")


def model_file(path):
    """The path ``fastem.io.save`` writes for ``path`` (it appends .npz)."""
    return path if path.endswith(".npz") else path + ".npz"


def check_outputs(outputs, inputs):
    """Before anything is read or written: ValueError when an output (None: not given) is the
    same file as an input, links included (writing it would destroy the input), or cannot be
    created (a directory, a missing or read-only folder), so that no fit runs for nothing."""
    from .data import NewFiles, check_output_path

    for path in filter(None, outputs):
        check_output_path(path, filter(None, inputs), name="output")
        if os.path.isdir(path):
            raise ValueError(f"output {path!r} is a directory; give a file name")
        try:  # a real creation (permissions, quotas, ...) of the temporary file, then removed
            os.unlink(NewFiles().create(path))
        except OSError as exc:
            raise ValueError(f"cannot create the output {path!r}: "
                             f"{exc.strerror or exc}") from None


def save_or_keep(run, model, path, keep_near=None):
    """Write ``model`` to ``path``; when that fails (the folder went away, the disk is full),
    keep it in a new file next to ``keep_near`` (the checkpoint) or in the temporary folder
    and raise an OSError saying both paths, rather than lose the fit."""
    try:
        return run.save(model, path)
    except OSError as exc:
        folder = os.path.dirname(os.path.abspath(keep_near)) if keep_near else None
        fd, kept = tempfile.mkstemp(prefix="fastem-model-", suffix=".npz", dir=folder)
        os.close(fd)
        run.save(model, kept)
        raise OSError(f"cannot write {path!r} ({exc.strerror or exc}); the fitted model was "
                      f"kept in {kept}") from None


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
        try:  # restored even when Ctrl-C comes while the counts are shifted
            model.n_iter_ = self.done + model.n_iter_
            model.lower_bounds_ = self.history + list(model.lower_bounds_)
            model.set_params(callback=None, warm_start=False, max_iter=self.args.max_iter,
                             progress=False, n_threads=None, chunk_size=None)
            return save(model, path)
        finally:
            model.n_iter_, model.lower_bounds_ = kept[0], kept[1]
            model.set_params(**kept[2])


def run_select(args):
    """``fastem select``: the table (a line per shared pass on stderr unless --quiet), the
    best model written, and the plot."""
    from .io import save
    from .select import select

    check_outputs([args.output, model_file(args.output), args.plot], [args.data])
    X = open_data(args)
    cls, params = model_choice(args, X.shape[1])

    def progress(n_passes, running):
        if not args.quiet:
            print(f"pass {n_passes}: {len(running)} candidates running", file=sys.stderr,
                  flush=True)

    result = select(X, parse_components(args.n_components), args.covariance.split(","),
                    args.criterion, family=cls, n_threads=args.threads,
                    chunk_size=args.chunk_size, progress=not args.quiet,
                    nan_policy=args.nan_policy, callback=progress, **params)
    print(result)
    best = result.best_.set_params(n_threads=None, chunk_size=None, progress=False,
                                   callback=None)
    print(f"wrote {save(best, args.output)}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        result.plot().figure.savefig(args.plot, bbox_inches="tight", dpi=120)
        print(f"wrote {args.plot}")
    return 0


def parse_components(text):
    """Numbers of components from "1-20", "2,4,8" or "3"."""
    values = []
    try:
        for part in text.split(","):
            low, _, high = part.partition("-")
            values += range(int(low), int(high or low) + 1)
    except ValueError:
        raise ValueError(f"-k must be a range (1-20), a list (2,4,8) or a number, got "
                         f"{text!r}") from None
    return values


def run_predict(args):
    check_outputs([args.output], [args.data, args.model, args.lengths])
    model = load_model(args)
    X = open_data(args)
    rows = (X, model_lengths(args, model, X.shape[0])) if is_hmm(model) else (X,)
    if args.proba:
        model.predict_proba(*rows, out=args.output)
    else:
        model.predict(*rows, out=args.output)
    if not args.quiet:
        what = "posteriors" if args.proba else "states" if is_hmm(model) else "labels"
        print(f"wrote {what} of {X.shape[0]:,} rows to {args.output}")
    return 0


def run_score(args):
    """Mixtures: the mean log-likelihood per row (``score``); hidden Markov models: the
    log-likelihood of all the sequences (hmmlearn's ``score``). Both with BIC and AIC."""
    model = load_model(args)
    X = open_data(args)
    n = X.shape[0]
    if is_hmm(model):
        lengths = model_lengths(args, model, n)
        log_l = model.score(X, lengths)
        head = (f"rows: {n}\nsequences: {1 if lengths is None else lengths.size}\n"
                f"log-likelihood: {log_l:.10g}")
    else:
        model_lengths(args, model, n)
        mean = model.score(X)
        log_l = mean * n
        head = f"rows: {n}\nmean log-likelihood: {mean:.10g}"
    n_params = model._n_parameters()
    print(f"{head}\nBIC: {-2 * log_l + n_params * np.log(n):.10g}\n"
          f"AIC: {-2 * log_l + 2 * n_params:.10g}")
    return 0


def run_sample(args):
    """The drawn rows to ``--output`` and, with ``--states``, each row's component or state
    (hidden Markov models draw one sequence)."""
    from .data import new_file

    paths = [None if path is None else path if path.endswith(".npy") else path + ".npy"
             for path in (args.output, args.states)]  # as np.save names them
    if paths[0] == paths[1]:
        raise ValueError(f"--states and --output are the same file {paths[0]!r}")
    check_outputs([args.output, args.states, *paths], [args.model])
    model = load_file(args.model).set_params(random_state=args.seed)
    drawn = model.sample(args.n_samples)
    for path, values in zip(paths, drawn):
        if path is not None:
            with new_file(path) as tmp, open(tmp, "wb") as f:
                np.save(f, values)
    print(f"wrote {args.n_samples:,} points to {paths[0]}"
          + (f" and their {'states' if is_hmm(model) else 'components'} to {paths[1]}"
             if paths[1] else ""))
    return 0


def run_info(args):
    model = load_file(args.model)
    kind = f", {model.covariance_type} covariances" if hasattr(model, "covariance_type") else ""
    if hasattr(model, "n_mix"):
        kind += f", {model.n_mix} Gaussians per state"
    units = "states" if is_hmm(model) else "components"
    print(f"{type(model).__name__}: {model.n_components} {units}, {model.n_features_in_} "
          f"features{kind}")
    family = getattr(model, "family_", getattr(model, "family", None))
    if type(model).__name__ in ("MixtureModel", "HMM") and hasattr(family, "columns"):
        print("columns: " + ", ".join(repr(column) for column in family.columns))
    if is_hmm(model):
        history = model.monitor_.history  # kept by the model file
        if history:
            print(f"fitted: {len(history)} iterations, {hmm_status(model)}, log-likelihood "
                  f"{history[-1]:.10g}")
        names = ("startprob_", "transmat_", "weights_", "means_", "covars_", "lambdas_",
                 "emissionprob_")
    else:
        print(f"fitted: {model.n_iter_} iterations, converged: {model.converged_}, mean "
              f"log-likelihood {model.lower_bound_:.10g}")
        names = ("weights_", "means_", "probabilities_", "shapes_", "rates_")
    with np.printoptions(precision=4, suppress=True, linewidth=100):
        for name in names:  # whichever it has
            if hasattr(model, name):
                value = np.asarray(getattr(model, name))
                print(f"{name[:-1]}:{' ' if value.ndim < 2 else chr(10)}{value}")
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
