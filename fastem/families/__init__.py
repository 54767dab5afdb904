"""Emission families: one module per family of components (see ``base.Family``)."""
