"""A log-normal emission family in one module, as a user would add one: per column,
log x ~ N(mu, var). It runs on fastem's engine, drivers and mixture layer unchanged
(test_new_family.py fits it). Statistics per component: [sum r log x_j, sum r (log x_j)^2] for each column j."""
from typing import NamedTuple

import numba
import numpy as np

from fastem.families.custom import CustomFamily


class LogNormalParams(NamedTuple):
    mu: np.ndarray  # (K, D) means of log x
    var: np.ndarray  # (K, D) variances of log x


@numba.njit(nogil=True, cache=True)
def log_density(X, args, out):
    mu, var, const = args
    n, d = X.shape
    for i in range(n):
        for k in range(mu.shape[0]):
            total = const[k]
            for j in range(d):
                y = np.log(X[i, j])
                total -= y + 0.5 * (y - mu[k, j]) ** 2 / var[k, j]
            out[i, k] = total


@numba.njit(nogil=True, cache=True)
def statistics(X, resp, out):
    n, d = X.shape
    for i in range(n):
        for k in range(resp.shape[1]):
            for j in range(d):
                y = np.log(X[i, j])
                out[k, j] += resp[i, k] * y
                out[k, d + j] += resp[i, k] * y * y


def prepare(params):
    return params.mu, params.var, -0.5 * np.log(2 * np.pi * params.var).sum(axis=1)


def m_step(s0, sums, params):
    d = sums.shape[1] // 2
    mu = sums[:, :d] / s0[:, None]
    return LogNormalParams(mu, sums[:, d:] / s0[:, None] - mu**2 + 1e-6)


def invalid_rows(block):
    return (block <= 0).any(axis=1)


def make_family(n_features):
    return CustomFamily(log_density, statistics, m_step, 2 * n_features, prepare=prepare,
                        n_parameters=lambda d: 2 * d, invalid_rows=invalid_rows,
                        error_message="log-normal values must be positive")
