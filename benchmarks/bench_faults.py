"""Fault injection, the long version: SIGKILL real `embedstore extract` processes at many random
moments and resume each time; damage local stores in every way `verify` must name; feed hostile
archives to every entry point. Prints how many kills were survived (the resumed store
bit-identical to an uninterrupted run), damages detected out of made (by `embedstore verify`, and
by plain zarr-python reading the same store, for comparison), hostile inputs refused out of tried.

    python benchmarks/bench_faults.py [--kills 30] [--images 512]

The fast versions of the same checks run in the test suite (tests/faults/test_faults_*.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import zarr  # noqa: E402  (after the repo root is importable)

from embedstore import open_store  # noqa: E402
from embedstore.archive import import_archive, verify  # noqa: E402
from embedstore.errors import EmbedstoreError  # noqa: E402
from embedstore.testing.damage import DAMAGES, OVERSIZED, SILENT, make_store  # noqa: E402
from embedstore.testing.harness import (  # noqa: E402
    BACKBONE,
    chunk_files,
    command,
    env,
    kill_and_resume,
    write_images,
)
from embedstore.testing.hostile import (  # noqa: E402
    HOSTILE,
    VERIFY_IMPORT_PEAK,
    chunk_bomb,
    make_declared,
    make_hostile,
)

TABLE: dict[str, str] = {}  # the summary printed at the end, one row per class of fault


def kills(tmp: Path, n_kills: int, n_images: int) -> None:
    images = write_images(tmp / "images", n_images)
    clean = tmp / "clean.zarr"
    proc = subprocess.Popen(command(clean, images), cwd=ROOT, env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    marker = clean / "ds" / BACKBONE / "zarr.json"
    while not marker.exists() and proc.poll() is None:
        time.sleep(0.002)
    t0 = time.monotonic()
    assert proc.wait() == 0, "the uninterrupted extraction failed"
    window = time.monotonic() - t0  # from the array's creation to the end of the process
    reference = chunk_files(clean)
    n_chunks = sum(k.startswith("embeddings/") for k in reference)
    print(f"uninterrupted run: {n_images} images, {n_chunks} chunks; writing window {window:.2f} s")
    total = made = survived = 0
    states: dict[str, int] = {}
    failures = []
    store = tmp / "killed.zarr"
    t_start = time.monotonic()
    while made < n_kills:
        batch = min(5, n_kills - made)
        report = kill_and_resume(store, images, reference, batch, window * 1.1, seed=made)
        made += report.kills + report.finished_first
        total += report.kills
        survived += report.survived
        failures += report.failures
        for k, v in report.states.items():
            states[k] = states.get(k, 0) + v
        if report.failures:
            print("  FAILED:", report.failures)
        shutil.rmtree(store, ignore_errors=True)
    print(f"kills survived: {survived}/{total} (resumed store bit-identical to the "
          f"uninterrupted one: rows lost 0, duplicated 0); {made - total} runs finished before "
          f"their kill; {time.monotonic() - t_start:.0f} s")  # fmt: skip
    TABLE["SIGKILLs of extract, resumed"] = (
        f"{survived}/{total} survived bit-identical; rows lost 0 in each survivor"
    )
    for where, n in sorted(states.items(), key=lambda kv: -kv[1]):
        print(f"  killed {where}: {n}")
    if failures:
        print(f"  failures: {failures}")


def damages(tmp: Path) -> None:
    pristine = make_store(tmp / "pristine.zarr")
    found = plain = 0
    for name, damage, rel, array, says in DAMAGES:
        store = tmp / f"damaged-{name.replace(' ', '_')}.zarr"
        shutil.copytree(pristine, store)
        damage(store / rel)
        lines = verify(store).problem_lines()
        named = any(line.startswith(array) and says in line for line in lines)
        found += named
        plain_found = _plain_zarr_notices(store)
        plain += plain_found
        print(f"  {name:34s} verify: {'named' if named else 'MISSED'}; plain zarr read: "
              f"{'error' if plain_found else 'silent'}")  # fmt: skip
    print(f"damages detected by embedstore verify: {found}/{len(DAMAGES)}; by reading the arrays "
          f"with plain zarr-python: {plain}/{len(DAMAGES)}")  # fmt: skip
    tried = detected = refused = wrong = 0
    baseline = set(verify(pristine).problem_lines())
    reference = _read_all(pristine)
    cases = {n: (d, rel) for n, d, rel, _, _ in DAMAGES}
    cases.update({n: (d, "") for n, d in SILENT.items()})
    cases.update({n: (d, "") for n, (d, _) in OVERSIZED.items()})
    for name, (damage, rel) in cases.items():
        store = tmp / f"matrix-{tried}.zarr"
        shutil.copytree(pristine, store)
        damage(store / rel)
        tried += 1
        detected += bool(set(verify(store).problem_lines()) - baseline)
        got = _read_all(store)
        refused += got is None
        if got is not None and got != reference:
            wrong += 1
            print(f"  READ WRONGLY: {name}")
    TABLE["damaged stores (plain folders)"] = (
        f"{tried} tried, {detected} detected by verify, {refused} refused by a read, "
        f"{wrong} read wrongly"
    )


def _read_all(store: Path) -> tuple | None:
    """What the API reads of the complete array and the dataset, or None when it refuses."""
    try:
        s = open_store(store)
        info = s.dataset_info("toy")
        return (
            info.class_names, info.task, info.n_samples,
            s.embeddings("toy", "bb").tobytes(), s.labels("toy").tobytes(),
            s.split("toy").tobytes(), tuple(s.ids("toy")),
        )  # fmt: skip
    except EmbedstoreError:
        return None


def _plain_zarr_notices(store: Path) -> bool:
    """Does reading every array with zarr-python alone raise (rather than return numbers)?"""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            root = zarr.open_group(str(store), mode="r")
            for _, ds in root.groups():
                for _, arr in ds.arrays():
                    arr[...]
                for _, bg in ds.groups():
                    for _, arr in bg.arrays():
                        arr[...]
                    if "embeddings" not in bg.array_keys():
                        return True  # a missing array is visible
    except Exception:
        return True
    return False


def hostile(tmp: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        archives = make_hostile(tmp)
    refused = 0
    for name, archive in archives.items():
        target = tmp / f"target-{len(name)}-{refused}.zarr"
        ok = True
        try:
            open_store(archive)
            ok = False
        except EmbedstoreError:
            pass
        ok &= not verify(archive).ok
        try:
            import_archive(archive, target)
            ok = False
        except EmbedstoreError:
            pass
        ok &= not target.exists() and not Path("/tmp/evil.txt").exists()
        refused += ok
        print(f"  {name:34s} {'refused by open, verify and import' if ok else 'NOT REFUSED'}")
    # A zstd frame in a chunk declaring 64 MiB where the chunk holds 512 bytes: refused by verify
    # and import from the frame header (a direct read would decode it, see the README).
    bomb = chunk_bomb(tmp / "good.zip", tmp / "chunk-bomb.zip")
    ok = not verify(bomb).ok
    try:
        import_archive(bomb, tmp / "target-bomb.zarr")
        ok = False
    except EmbedstoreError:
        pass
    refused += ok
    print(
        f"  {'zstd bomb inside a chunk':34s} {'refused by verify and import' if ok else 'NOT REFUSED'}"
    )
    print(f"hostile inputs refused: {refused}/{len(HOSTILE) + 1}")
    declared = make_declared(tmp / "declared")
    peaks, refused_declared = [], 0
    for name, archive in declared.items():
        argv = [sys.executable, "-c", VERIFY_IMPORT_PEAK, str(archive), str(tmp / "t.zarr")]
        out = subprocess.run(argv, capture_output=True, text=True, env=env(), cwd=ROOT)
        verified, imported, peak = out.stdout.split()
        refused_declared += verified == "False" and imported == "False"
        peaks.append(int(peak))
        print(f"  {name:34s} peak {int(peak) / 2**20:.0f} MiB (verify + import, fresh process)")
    n = len(HOSTILE) + 1 + len(declared)
    TABLE["hostile archives"] = (
        f"{n} tried, {refused + refused_declared} refused; declared-shape archives: peak memory "
        f"of verify + import {max(peaks) / 2**20:.0f} MiB at most (limit 256 MiB)"
    )


def bad_inputs(tmp: Path) -> None:
    """Every command against damaged metadata of every node kind: one line, never a traceback."""
    import numpy as np
    from typer.testing import CliRunner

    from embedstore import create_store
    from embedstore.cli.main import app
    from embedstore.testing.commands import COMMAND_LIST, fill
    from embedstore.testing.damage import damaged_copy, damages
    from embedstore.testing.toy import make_dataset, write_embeddings

    good = create_store(tmp / "good.zarr")
    make_dataset(good, n=40)
    write_embeddings(good, "toy", "bb", np.ones((40, 8), np.float32), chunk_rows=16)
    tried = one_line = 0
    for i, (kind, damage, apply) in enumerate(damages()):
        store = damaged_copy(tmp / "good.zarr", tmp / f"d{i}.zarr", apply)
        for path, cmd in COMMAND_LIST:
            if not any(p.required for p in cmd.params) or path == ["report"]:
                continue
            argv = path + fill(cmd, store, tmp / f"out{i}", "toy", "bb")
            argv += ["-b", "bb"] if path in (["probe"], ["sweep"]) or path[0] == "analyze" else []
            result = CliRunner().invoke(app, argv)
            tried += 1
            lines = [x for x in result.output.strip().splitlines() if x.strip()]
            clean = result.exception is None or isinstance(result.exception, SystemExit)
            clean &= "Traceback" not in result.output and result.exit_code in (0, 1)
            clean &= result.exit_code == 0 or path == ["verify"] or len(lines) == 1
            one_line += clean
            if not clean:
                print(f"  NOT ONE LINE: {kind} {damage}: {' '.join(path)}")
    TABLE["bad inputs (commands x damaged metadata)"] = (
        f"{tried} tried, {one_line} answered in one line or a result (no traceback)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--images", type=int, default=512)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for part in ("kills", "damages", "hostile"):
            (tmp / part).mkdir()
        print("== hostile archives")
        hostile(tmp / "hostile")
        print("== damaged stores")
        damages(tmp / "damages")
        print("== bad inputs")
        (tmp / "bad").mkdir()
        bad_inputs(tmp / "bad")
        print("== SIGKILL and resume")
        kills(tmp / "kills", args.kills, args.images)
    print("\n| fault class | result |\n|:--|:--|")
    for what, result in TABLE.items():
        print(f"| {what} | {result} |")


if __name__ == "__main__":
    main()
