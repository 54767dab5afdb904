"""asv benchmarks for fastem."""
