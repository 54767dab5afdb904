"""The statistics vector in a fixed frame, with named parts instead of raw offsets.

Every pass fills one float64 vector ``[ll, total, s0 (K), family part]``:
``ll = sum_i w_i log p(x_i)``, ``total = sum_i w_i``, ``s0_k = sum_i w_i r_ik`` (the
responsibility mass of component k) and the family's own sums, laid out and centred as the
packing that computed them says. Its zero is ``np.zeros(size)`` and merging two passes made with
the same packing is addition; statistics of passes made with different packings are added after
``family.rebase`` restates them in one frame (``fastem.families.base.Family.rebase``).
"""
import numpy as np


class Statistics:
    """A named view of a statistics vector of ``n_components`` components (no copy)."""

    __slots__ = ("vector", "n_components")

    def __init__(self, vector, n_components):
        self.vector = np.asarray(vector)
        self.n_components = int(n_components)

    @property
    def log_likelihood(self):
        """sum_i w_i log p(x_i) (-inf if a row has zero density)."""
        return self.vector[0]

    @property
    def total(self):
        """sum_i w_i, the weight of the rows the pass saw."""
        return self.vector[1]

    @property
    def s0(self):
        """(K,) responsibility mass of each component."""
        return self.vector[2:2 + self.n_components]

    @property
    def family(self):
        """The family's sums, in its packing's layout."""
        return self.vector[2 + self.n_components:]

    @staticmethod
    def head_size(n_components):
        """Entries before the family's part: ll, total and s0."""
        return 2 + n_components

    def with_family(self, family_part):
        """A new vector with the same ll, total and s0 and another family part."""
        head = self.vector[:2 + self.n_components]
        return Statistics(np.concatenate([head, family_part]), self.n_components)


EMPTY_MASS = 1e-12  # a component with s0_k <= EMPTY_MASS * sum(s0) has lost its data


def empty_components(s0):
    """Indices of components whose mass is negligible (<= EMPTY_MASS of the total)."""
    return np.flatnonzero(s0 <= EMPTY_MASS * s0.sum())
