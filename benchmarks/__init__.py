"""Reproducible speed and quality benchmarks, run by `transformer bench WHAT` (results in
docs/benchmarks.md); not part of the importable library. `common` holds what they share."""
