"""Fault-injection tools shared by the test suite and ``benchmarks/bench_faults.py`` (as
``zarr.testing`` ships zarr's), so that benchmarks never import ``tests/``: tiny images and a
SIGKILL-and-resume harness for real ``embedstore extract`` processes
(:mod:`~embedstore.testing.harness`, run through :mod:`~embedstore.testing.fault_cli`, the real CLI
with two deterministic test backbones), every damage ``verify`` must name and the store it is made
to (:mod:`~embedstore.testing.damage`), hostile archives every entry point must refuse
(:mod:`~embedstore.testing.hostile`), every CLI command with arguments for its required parameters
(:mod:`~embedstore.testing.commands`) and tiny seeded datasets and arrays
(:mod:`~embedstore.testing.toy`, behind ``tests/conftest.py``'s helpers).

Nothing else in ``embedstore`` imports this package, and it never imports pytest; it imports torch
only in ``fault_cli``.
"""
