"""Statistics on results: exact and cluster intervals, per-image predictions, paired tests on the
same test images, rankings across datasets, and the self-contained HTML report.

Submodules are imported on use (``from embedstore.results.paired import compare_predictions``);
this package imports none of them, so importing one pulls in only what it needs.
"""
