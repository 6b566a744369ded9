"""`embedstore analyze`: what features encode — similarity (CKA, store only), invariance and
occlusion saliency (run backbones over images)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.table import Table

from embedstore.cli._common import (
    DatasetOpt,
    DeviceOpt,
    StoreArg,
    WeightsOpt,
    console,
    err_console,
    parse_weights,
    progress_bar,
    user_errors,
)

analyze_app = typer.Typer(
    help="What features encode: backbone similarity (CKA), invariance, occlusion saliency.",
    no_args_is_help=True,
)

AnalyzeBackboneOpt = Annotated[
    list[str] | None,
    typer.Option("--backbone", "-b", help="A backbone of the dataset (repeatable; default all)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON lines, no table.")]
OutOpt = Annotated[
    str | None,
    typer.Option(help="Append one JSON record per result to this file (and resume from it)."),
]
PlotOpt = Annotated[str | None, typer.Option(help="Write a PNG figure here.")]
SourceOpt = Annotated[
    str | None,
    typer.Option(
        help="Images (folder, .csv, .npz or 'demo'); default: the dataset's recorded one."
    ),
]
SeedOpt = Annotated[int, typer.Option(help="Seed for the image sample and random views.")]
BatchOpt = Annotated[int, typer.Option(help="Images per forward pass.")]


def register(app: typer.Typer) -> None:
    app.add_typer(analyze_app, name="analyze")


@analyze_app.command("similarity")
def similarity(
    store: StoreArg,
    dataset: DatasetOpt,
    backbone: AnalyzeBackboneOpt = None,
    split: Annotated[str, typer.Option(help="Rows compared: train, val, test or all.")] = "test",
    plot: PlotOpt = None,
    as_json: JsonOpt = False,
    out: OutOpt = None,
) -> None:
    """Linear and debiased CKA between every pair of a dataset's backbones, from the store."""
    with user_errors():
        from embedstore import open_store
        from embedstore.analyze.records import write_records
        from embedstore.analyze.similarity import backbone_similarity

        matrix = backbone_similarity(
            open_store(store), dataset, backbones=backbone or None, split=split
        )
        records = matrix.to_records()
        if out:
            write_records(records, out)
        if plot:
            from embedstore.analyze.plots import plot_similarity

            plot_similarity(matrix, plot)
    if as_json:
        for r in records:
            typer.echo(json.dumps(r.to_dict(), default=str))
        return
    table = Table(
        title=f"{store} :: {dataset} — CKA on {matrix.split} (n={matrix.n}), linear / debiased"
    )
    table.add_column("backbone")
    for name in matrix.backbones:
        table.add_column(name, justify="right")
    for i, name in enumerate(matrix.backbones):
        cells = [
            f"{_fmt(matrix.cka[i, j])} / {_fmt(matrix.cka_debiased[i, j])}"
            for j in range(len(matrix.backbones))
        ]
        table.add_row(name, *cells)
    console.print(table)
    console.print(
        f"1.00 = the same representation up to rotation and scale; computed in "
        f"{matrix.seconds:.2f} s from stored embeddings.",
        highlight=False,
    )
    if out:
        err_console.print(f"wrote {len(records)} records to {out}")
    if plot:
        err_console.print(f"wrote {plot}")


def _fmt(v: float) -> str:
    return "—" if v != v else f"{v:.2f}"


def _open_checked(store: str, dataset: str, backbone: list[str] | None, device: str, weights):
    """The store, the backbone names and the weights map, after the checks that need no model
    (dataset, backbones, --device, --weights paths): a mistake is answered before torch loads."""
    import os

    from embedstore import open_store
    from embedstore.devices import resolve_device
    from embedstore.errors import WeightsNotFoundError

    s = open_store(store)
    names = backbone or s.backbones(dataset)
    for name in names:
        s.array_info(dataset, name)
    resolve_device(device)

    paths = parse_weights(weights or [])
    for name, path in paths.items():
        if not os.path.isfile(path):
            raise WeightsNotFoundError(f"--weights {name}={path}: no such file")
    return s, names, paths


def _run_resumable(label: str, out: str | None, quiet: bool, run) -> list:
    """Run one analysis resumably: ``run(done, progress)`` yields records; those already in
    ``out`` are passed in as ``done``, new ones are appended to ``out`` one by one, under a
    progress bar (none with ``quiet``)."""
    from embedstore.analyze.records import read_records, write_records

    done = read_records(out) if out else []
    seen = {r.key() for r in done}
    results = []
    with progress_bar(label, quiet) as bar:
        task = bar.add_task("loading", total=None)

        def progress(d: int, total: int, text: str) -> None:
            bar.update(task, completed=d, total=total, description=text)

        for r in run(done, progress):
            results.append(r)
            if out and r.key() not in seen:
                write_records([r], out)
    return results


@analyze_app.command("invariance")
def invariance(
    store: StoreArg,
    dataset: DatasetOpt,
    backbone: AnalyzeBackboneOpt = None,
    transform: Annotated[
        str,
        typer.Option(
            help="'all' or a comma list: h_flip, v_flip, rotation, hue, saturation, brightness, "
            "contrast, grayscale, resized_crop, multi_view, blur."
        ),
    ] = "all",
    source: SourceOpt = None,
    images: Annotated[int, typer.Option(help="Images drawn (seeded) from the dataset.")] = 1000,
    steps: Annotated[int, typer.Option(help="Grid size of each parametrised transform.")] = 8,
    seed: SeedOpt = 0,
    eps: Annotated[float, typer.Option(help="Ridge added to the covariance.")] = 1e-6,
    batch_size: BatchOpt = 64,
    device: DeviceOpt = "auto",
    weights: WeightsOpt = None,
    plot: PlotOpt = None,
    as_json: JsonOpt = False,
    out: OutOpt = None,
) -> None:
    """Invariance to transformations: mean cosine of Mahalanobis-whitened features (Anton §4.4.3)."""
    with user_errors():
        s, names, paths = _open_checked(store, dataset, backbone, device, weights)
        from embedstore.analyze.invariance import evaluate_invariance  # heavy: torch

        results = _run_resumable(
            "invariance", out, as_json,
            lambda done, progress: evaluate_invariance(
                s, dataset, names, transforms=transform, source=source, n_images=images,
                steps=steps, seed=seed, eps=eps, batch_size=batch_size, device=device,
                weights=paths, done=done, progress=progress,
            ),
        )  # fmt: skip
        if plot:
            from embedstore.analyze.plots import plot_invariance

            plot_invariance(results, plot)
    if as_json:
        for r in results:
            typer.echo(json.dumps(r.to_dict(), default=str))
        return
    _render_by_backbone(
        results,
        "cosine",
        f"{store} :: {dataset} — invariance (whitened cosine, mean ± 95% CI over images)",
        row_label="transformation",
    )
    if results:
        r = results[0]
        console.print(
            f"{r.n} images (seed {r.settings['seed']}), {r.settings['steps']}-step grids; "
            "1.00 = features unchanged by the transformation. Whitening: the covariance of "
            f"{r.extra.get('covariance_rows')} stored rows.",
            highlight=False,
        )
        names = list(dict.fromkeys(x.feature_name for x in results))
        share = {(x.setting, x.feature_name): x.extra.get("identical_views", 0.0) for x in results}
        flagged = [t for t in dict.fromkeys(x.setting for x in results)
                   if any(share.get((t, n), 0.0) >= 0.5 for n in names)]  # fmt: skip
        if flagged:
            parts = [
                f"{t} {'/'.join(f'{share.get((t, n), 0.0):.0%}' for n in names)}" for t in flagged
            ]
            console.print(
                "views the backbone saw unchanged, pixel for pixel (e.g. colour changes of grey "
                f"images; per column): {', '.join(parts)}; a score near 1.00 there says nothing "
                "about the backbone.",
                highlight=False,
            )
    if out:
        err_console.print(f"records in {out}")
    if plot:
        err_console.print(f"wrote {plot}")


def _render_by_backbone(
    results: list, metric: str, title: str, *, row_label: str, digits: int = 3
) -> None:
    """Rows: the records' settings (transformations); columns: backbones; value ± CI half-width."""
    names = list(dict.fromkeys(r.feature_name for r in results))
    settings = list(dict.fromkeys(r.setting for r in results))
    by_key = {(r.feature_name, r.setting): r.metrics.get(metric) for r in results}
    table = Table(title=title)
    table.add_column(row_label)
    for n in names:
        table.add_column(n, justify="right")
    for t in settings:
        table.add_row(
            t or metric.replace("_", " "), *[_fmt_ci(by_key.get((n, t)), digits) for n in names]
        )
    console.print(table)


def _fmt_ci(m: dict | None, digits: int) -> str:
    if not m or m.get("value") is None:
        return "—"
    if m.get("ci_low") is None or m.get("ci_high") is None:
        return f"{m['value']:.{digits}f}"
    return f"{m['value']:.{digits}f} ± {(m['ci_high'] - m['ci_low']) / 2:.{digits}f}"


@analyze_app.command("saliency")
def saliency(
    store: StoreArg,
    dataset: DatasetOpt,
    backbone: AnalyzeBackboneOpt = None,
    source: SourceOpt = None,
    images: Annotated[int, typer.Option(help="Images drawn (seeded) from the dataset.")] = 16,
    stride: Annotated[
        int, typer.Option(help="Step between mask positions; 1 is the authors' (slow on CPU).")
    ] = 1,
    mask: Annotated[int, typer.Option(help="Side of the square occluding mask.")] = 10,
    image_size: Annotated[int, typer.Option(help="Images are resized and cropped to this.")] = 242,
    examples: Annotated[int, typer.Option(help="Images per backbone in the figure.")] = 4,
    seed: SeedOpt = 0,
    batch_size: BatchOpt = 64,
    device: DeviceOpt = "auto",
    weights: WeightsOpt = None,
    plot: PlotOpt = None,
    as_json: JsonOpt = False,
    out: OutOpt = None,
) -> None:
    """Occlusion saliency maps and their attentive diffusion per backbone (Anton §4.4.1)."""
    with user_errors():
        s, names, paths = _open_checked(store, dataset, backbone, device, weights)
        from embedstore.analyze.saliency import evaluate_saliency  # heavy: torch

        results = _run_resumable(
            "saliency", out, as_json,
            lambda done, progress: evaluate_saliency(
                s, dataset, names, source=source, n_images=images, image_size=image_size,
                size=mask, stride=stride, seed=seed, batch_size=batch_size, device=device,
                weights=paths, done=done, progress=progress,
            ),
        )  # fmt: skip
        if plot:
            from embedstore.analyze.plots import plot_saliency
            from embedstore.analyze.saliency import example_images

            per_image = [r for r in results if r.analysis == "saliency_image"]
            first = list(dict.fromkeys(r.setting for r in per_image))[: max(1, examples)]
            shown = {(r.feature_name, r.setting): r for r in per_image}
            maps: dict[str, Sequence[Any]] = {
                n: [shown[(n, i)].extra["map"] for i in first] for n in names
            }
            diffusion: dict[str, Sequence[float]] = {
                n: [shown[(n, i)].metrics["attentive_diffusion"]["value"] for i in first]
                for n in names
            }
            pictures = example_images(
                s, dataset, [shown[(names[0], i)] for i in first], source=source,
                image_size=image_size,
            )  # fmt: skip
            plot_saliency(pictures, maps, plot, titles=first, diffusion=diffusion)
    if as_json:
        for r in results:
            typer.echo(json.dumps(r.to_dict(), default=str))
        return
    summaries = [r for r in results if r.analysis == "saliency"]
    _render_by_backbone(
        summaries,
        "attentive_diffusion",
        f"{store} :: {dataset} — attentive diffusion (% of the map above its mean, ± 95% CI)",
        row_label="",
        digits=1,
    )
    if summaries:
        st = summaries[0].settings
        console.print(
            f"{summaries[0].n} images (seed {st['seed']}) at {st['image_size']} px, "
            f"{st['mask']}×{st['mask']} mask, stride {st['stride']}; higher = attention spread "
            "over more of the image.",
            highlight=False,
        )
    if out:
        err_console.print(f"records in {out}")
    if plot:
        err_console.print(f"wrote {plot}")
