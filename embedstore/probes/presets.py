"""The published evaluation protocols as data: one named, documented object per preset.

A :class:`Protocol` says which method runs, with which fixed hyper-parameters or which grid, how a
hyper-parameter is selected (and on what), which metric is the headline, which label subsets and
how many seeds, and which paper and code it comes from. ``probe`` and ``sweep`` take a preset by
name (``--protocol``) and every record they write names it (``protocol["preset"]``) with its
settings. Adding a protocol means adding one object to ``PROTOCOLS``; ``embedstore protocols``
lists them.

Facts below come from the authors' code (cited per preset); where a setting is this project's
choice rather than the paper's, the preset's ``notes`` say so.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from typing import Any

from embedstore.errors import InvalidDataError

__all__ = ["PROTOCOLS", "Protocol", "get_protocol", "protocol_names"]


@dataclass(frozen=True)
class Protocol:
    """One published evaluation protocol.

    Attributes:
        name: the preset's name (``--protocol NAME``).
        title: one line: what it evaluates.
        paper: the paper it comes from (authors, title, venue, year).
        source: where its settings were read (repository and file).
        command: "probe" (one evaluation on the dataset's splits) or "sweep" (label subsets ×
            seeds).
        methods: the probe methods it runs (names of the method registry).
        hyperparameters: fixed settings, or the grid it selects from (by name and values).
        selection: how a hyper-parameter is chosen: "none" (fixed), "val", "train-cv".
        metric: the headline metric (a key of the records' ``metrics``).
        subsets: for sweeps: {"shots": (...)} or {"fractions": (...)}; {} for a probe.
        seeds: seeds the paper uses (or this project's default where the paper gives none).
        notes: departures from the paper's code, and choices the paper leaves open.
        options: the ``ProbeOptions`` fields the preset sets (e.g. the logistic grid).
    """

    name: str
    title: str
    paper: str
    source: str
    command: str
    methods: tuple[str, ...]
    hyperparameters: dict[str, Any]
    selection: str
    metric: str
    subsets: dict[str, tuple] = field(default_factory=dict)
    seeds: int = 1
    notes: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """What a result record stores about its preset (``protocol["preset"]``)."""
        out = asdict(self)
        out["methods"] = list(self.methods)
        out["subsets"] = {k: list(v) for k, v in self.subsets.items()}
        out["notes"] = list(self.notes)
        return out


_ERICSSON = (
    "Ericsson, Gouk & Hospedales, How Well Do Self-Supervised Models Transfer? CVPR 2021 "
    "(used by Anton et al. 2022)"
)

PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            name="ericsson-fewshot",
            title="prototypical N-way K-shot episodes on the test split",
            paper=_ERICSSON,
            source="github.com/linusericsson/ssl-transfer, few_shot.py",
            command="probe",
            methods=("fewshot",),
            options={"k_shot": 20, "n_query": 15, "n_episodes": 600},
            # n_way: probes.prototypes.WAYS_RULE (a test checks that the two say the same)
            hyperparameters={"n_way": "2-way for two classes, 5-way for five or more, and "
                             "every class (3- or 4-way) in between", "k_shot": 20,
                             "n_query": 15, "n_episodes": 600,
                             "distance": "squared Euclidean to the class mean"},
            selection="none",
            metric="accuracy",
            notes=("interval: mean ± 1.96·std/sqrt(episodes)",
                   "the same episodes for every backbone and fusion (paired)"),
        ),
        Protocol(
            name="ericsson-linear",
            title="multinomial L2 logistic regression, C from a 45-value grid chosen on "
            "validation, refit on train+val",
            paper=_ERICSSON,
            source="github.com/linusericsson/ssl-transfer, linear.py",
            command="probe",
            methods=("logreg",),
            options={"grid": "ericsson"},
            hyperparameters={"grid": "ericsson", "C": "1 / logspace(-6, 5, 45)",
                             "solver": "L-BFGS, scikit-learn's objective"},
            selection="val",
            metric="accuracy",
            notes=("validation: the dataset's own split, else a fixed-seed 20% of train",),
        ),
        Protocol(
            name="dinov2-linear",
            title="L2 logistic regression, C = 10^linspace(-6, 5, 45) chosen on validation, "
            "refit on train+val",
            paper="Oquab et al., DINOv2: Learning Robust Visual Features without Supervision, "
            "TMLR 2024",
            source="github.com/facebookresearch/dinov2, dinov2/eval/log_regression.py "
            "(C_POWER_RANGE)",
            command="probe",
            methods=("logreg",),
            options={"grid": "dinov2"},
            hyperparameters={"grid": "dinov2", "C": "10 ** linspace(-6, 5, 45)"},
            selection="val",
            metric="accuracy",
            notes=("DINOv2 chooses C on 10% of train when there is no validation set; here the "
                   "dataset's own validation split, else a fixed-seed 20% of train",
                   "DINOv2 fits with cuML (tol 1e-12, 1,000 iterations); here scikit-learn's "
                   "objective solved by batched L-BFGS"),
        ),
        Protocol(
            name="dino-knn",
            title="weighted k-nearest neighbours on L2-normalised features",
            paper="Caron et al., Emerging Properties in Self-Supervised Vision Transformers, "
            "ICCV 2021",
            source="github.com/facebookresearch/dino, eval_knn.py",
            command="probe",
            methods=("knn",),
            options={"k": 20, "temperature": 0.07},
            hyperparameters={"k": 20, "temperature": 0.07, "metric": "cosine",
                             "vote": "exp(similarity / temperature)"},
            selection="none",
            metric="accuracy",
            notes=("the neighbour base is train+val",),
        ),
        Protocol(
            name="truong",
            title="label fractions 1%, 10%, 100% of train, stratified, several seeds",
            paper="Truong et al., How Transferable Are Self-supervised Features in Medical Image "
            "Classification Tasks? ML4H 2021",
            source="the paper's label-fraction protocol (fractions 1%, 10%, 100% of train); "
            "the classifiers and the number of seeds are this project's choice, not the authors' "
            "code",
            command="sweep",
            methods=("logreg", "knn"),
            options={"grid": "ericsson", "temperature": 0.07},
            hyperparameters={"logreg": {"grid": "ericsson"}, "knn": {"temperature": 0.07}},
            selection="train-cv",
            metric="accuracy",
            subsets={"fractions": (0.01, 0.1, 1.0)},
            seeds=5,
            notes=("C and k chosen by cross-validation inside each labelled subset (this "
                   "project's honest default at low labels; --selection val for the full "
                   "validation split)",
                   "seeds: 5, this project's default, not a number taken from the paper"),
        ),
        Protocol(
            name="nielsen",
            title="PowerTransformer -> PCA -> SVM / kNN / logistic regression with fixed settings "
            "over 1-1000 labelled samples per class",
            paper="Nielsen et al., Self-Supervision for Medical Image Classification: "
            "State-of-the-Art Performance with ~100 Labeled Training Samples per Class, "
            "Bioengineering 10(8):895, 2023",
            source="github.com/IPMI-ICNS-UKE/sparsam, reproducability/parameter.py (CLASSIFIERS) "
            "and reproducability/reproduce_results.py (fit_classifier)",
            command="sweep",
            methods=("nielsen-svm", "nielsen-knn", "nielsen-logreg"),
            options={"normalize": "none"},  # raw class tokens into the PowerTransformer
            hyperparameters={
                "features": "Yeo-Johnson PowerTransformer(standardize=True) -> PCA(all components)",
                "svm": {"kernel": "rbf", "C": 1.0, "gamma": "scale", "class_weight": "balanced",
                        "probability": True, "break_ties": True},
                "knn": {"weights": "distance", "n_neighbors": "5 * n_classes",
                        "metric": "euclidean"},
                "logreg": {"C": 2.5, "class_weight": "balanced", "max_iter": 10000,
                           "penalty": "l2"},
            },
            selection="none",
            metric="balanced_accuracy",
            subsets={"shots": (1, 5, 10, 25, 50, 100, 250, 500, 1000)},
            seeds=5,
            notes=("fixed hyper-parameters, no selection (the authors' protocol)",
                   "features as stored (no L2 normalisation): the pipeline standardises them",
                   "a class with fewer training samples than asked gives all it has (capped, "
                   "listed), as sparsam's uniform_train_test_splitting",
                   "kNN: k capped at the labelled rows where 5 * n_classes is more "
                   "(scikit-learn refuses k > n; the authors' code cannot run that cell)",
                   "every seed fits its own subset (the authors' fit_classifier fits only the "
                   "last seed's); the SVM's Platt folds are seeded",
                   "seeds: the authors' n_iterations defaults to 1; 5 is this project's default"),
        ),
    )
}  # fmt: skip


def protocol_names() -> list[str]:
    """Every preset's name, in listing order."""
    return list(PROTOCOLS)


def get_protocol(name: str) -> Protocol:
    """The preset ``name``; an unknown name is one error listing the presets (and a guess)."""
    if name in PROTOCOLS:
        return PROTOCOLS[name]
    guess = difflib.get_close_matches(name, PROTOCOLS, n=1)
    hint = f"did you mean '{guess[0]}'? " if guess else ""
    raise InvalidDataError(
        f"protocol '{name}' is not a preset; {hint}choose one of {', '.join(PROTOCOLS)} "
        "(embedstore protocols)"
    )
