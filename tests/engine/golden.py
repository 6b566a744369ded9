"""The records ``probe`` and ``sweep`` wrote before the evaluation engine (issue 27) replaced their
two orchestrators, and the fixed store they were computed on.

``python -m tests.engine.golden`` (run once, on the code before the engine) wrote
``golden_records.json``; ``test_golden.py`` checks that the engine reproduces every record field
for field. The store is rebuilt from a seed, so the file holds only the records.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from embedstore import create_store
from tests.conftest import write_embeddings

GOLDEN = Path(__file__).with_name("golden_records.json")
SETS = [["a"], ["b"], ["a", "b"]]
FEWSHOT = {"k_shot": 5, "n_query": 5, "n_episodes": 40, "n_way": 2}


def make_store(path, *, n=180, dim=6, seed=7):
    """3-class dataset, 60/20/20 split, two float32 backbones (a float16 one and a float32 one)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    split = np.repeat([0, 1, 2], [n * 6 // 10, n * 2 // 10, n - n * 8 // 10]).astype(np.uint8)
    means = rng.normal(size=(2, 3, dim))
    Xs = [(means[i][y] + 1.7 * rng.normal(size=(n, dim))).astype(np.float32) for i in range(2)]
    store = create_store(path)
    store.add_dataset(
        "d",
        ids=[f"s{i:04d}" for i in range(n)],
        labels=y,
        split=split,
        task="multiclass",
        class_names=["x", "y", "z"],
    )
    write_embeddings(store, "d", "a", Xs[0], dtype="float16")
    write_embeddings(store, "d", "b", Xs[1])
    return store


def runs():
    """(name, function of the store returning records) for every golden run."""
    from embedstore.engine.probe import ProbeOptions, evaluate_probes
    from embedstore.engine.sweep import run_sweep

    fast = ProbeOptions(n_bootstrap=200, **FEWSHOT)
    yield "probe-all", lambda s: evaluate_probes(s, "d", SETS, "all", fast)
    yield "probe-svm", lambda s: evaluate_probes(s, "d", SETS[:1], "svm", fast)
    yield (
        "probe-linear",
        lambda s: evaluate_probes(
            s, "d", SETS[:1], "all", ProbeOptions(n_bootstrap=100), protocol="ericsson-linear"
        ),
    )
    for sel in ("train-cv", "val"):
        yield (
            f"sweep-{sel}",
            lambda s, sel=sel: run_sweep(
                s,
                "d",
                SETS,
                fractions=[0.2, 1.0],
                seeds=2,
                methods="knn,logreg,proto,svm,dvme",
                selection=sel,
                options=ProbeOptions(n_bootstrap=0),
            ),
        )
    yield (
        "sweep-nielsen",
        lambda s: run_sweep(
            s,
            "d",
            SETS[:1],
            shots=[5, 20],
            seeds=2,
            protocol="nielsen",
            options=ProbeOptions(n_bootstrap=0),
        ),
    )


def comparable(record: dict) -> dict:
    """A record's fields without the software version."""
    return {k: v for k, v in record.items() if k != "embedstore_version"}


def main() -> None:
    import tempfile

    from embedstore.results.records import json_default

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = make_store(Path(tmp) / "g.zarr")
        for name, run in runs():
            out[name] = [comparable(r.to_dict()) for r in run(store)]
    GOLDEN.write_text(json.dumps(out, indent=1, default=json_default, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}: {sum(map(len, out.values()))} records")


if __name__ == "__main__":
    main()
