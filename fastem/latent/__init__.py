"""Latent structures: what couples the components of a model.

A latent structure owns the distribution of the latent variables z and their posterior given the
components' log-densities; an emission family (``fastem.families``) owns the components
p(x | z = k). :class:`fastem.latent.mixture.Mixture` is independent rows with mixture weights.
"""
