"""Fault-injection tools shared by the test suite and ``benchmarks/bench_faults.py`` (as
``zarr.testing`` ships zarr's): tiny images and a SIGKILL-and-resume harness for real
``embedstore extract`` processes (:mod:`~embedstore.testing.harness`, run through
:mod:`~embedstore.testing.fault_cli`, the real CLI with two deterministic test backbones), every
damage ``verify`` must name (:mod:`~embedstore.testing.damage`) and hostile archives every entry
point must refuse (:mod:`~embedstore.testing.hostile`).

Nothing else in ``embedstore`` imports this package; it imports torch only in ``fault_cli``.
"""
