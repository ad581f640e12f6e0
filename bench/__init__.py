"""Benchmarks (not part of the test suite): each module's `main(argv)` prints its figures."""
