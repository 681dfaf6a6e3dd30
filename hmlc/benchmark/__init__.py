"""Benchmarks: a cross-dataset matrix from a benchmark file (:mod:`hmlc.benchmark.matrix`) and
registered benchmark suites under a published protocol (:mod:`hmlc.benchmark.suite`), both behind
``hmlc benchmark`` and both resumable."""
