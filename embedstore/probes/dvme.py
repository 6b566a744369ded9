"""DVME, the Dynamic Visual Meta-Embedding fusion head (Truong et al., ML4H 2021), on plain arrays.

Each backbone's embedding is projected to a common width by its own linear layer; the projected
embeddings form a short sequence, one token per backbone, that passes through one ViT-style pre-norm
self-attention block (attention runs across backbones, not patches); the outputs are concatenated,
projected to 512 and classified. Training uses the stored embeddings only: AdamW, mini-batches,
early stopping on a validation set, a fixed seed.

``X`` is always the concatenation of the backbones' embeddings, shape (n_samples, sum(widths));
``widths`` says where one backbone ends and the next begins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from embedstore.errors import InvalidDataError
from embedstore.probes._sklearn import ProbeEstimator
from embedstore.probes.selection import holdout_rows
from embedstore.probes.selection import score as selection_score
from embedstore.probes.validation import (
    TASK_KINDS,
    check_choice,
    check_features,
    check_fitted,
    check_labels,
    check_targets,
    encode_with_classes,
)

__all__ = ["DVMENet", "DVMEClassifier", "DVME_TASKS", "HIDDEN_DIM"]

DVME_TASKS = TASK_KINDS
HIDDEN_DIM = 512  # width of the projection after the concatenated tokens (the paper's 512)
_INFER_BATCH = 4096
_MIN_DELTA = 1e-4  # a validation loss must drop by more than this to count as an improvement


class DVMENet(nn.Module):
    """The DVME network: per-backbone projections, one pre-norm attention block, a classifier.

    Tokens also get a learned per-backbone embedding (like a ViT's position embedding), so the
    attention block knows which backbone each token came from even if two projections coincide.

    Args:
        widths: embedding width of each backbone, in the order they are concatenated in the input.
        n_outputs: number of logits (classes, or labels for multilabel).
    """

    def __init__(
        self,
        widths: Sequence[int],
        n_outputs: int,
        *,
        proj_dim: int = 512,
        n_heads: int = 8,
        mlp_ratio: float = 4.0,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.widths = [int(w) for w in widths]
        m = len(self.widths)
        self.proj = nn.ModuleList(nn.Linear(w, proj_dim) for w in self.widths)
        self.source = nn.Parameter(torch.zeros(m, proj_dim))
        nn.init.trunc_normal_(self.source, std=0.02)
        self.norm1 = nn.LayerNorm(proj_dim)
        self.attn = nn.MultiheadAttention(proj_dim, n_heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(proj_dim)
        hidden = int(round(proj_dim * mlp_ratio))
        self.mlp = nn.Sequential(
            nn.Linear(proj_dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, proj_dim),
            nn.Dropout(dropout),
        )
        self.norm = nn.LayerNorm(proj_dim)  # final norm of a pre-norm ViT
        self.head = nn.Sequential(
            nn.Linear(m * proj_dim, HIDDEN_DIM),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(HIDDEN_DIM, n_outputs),
        )

    def forward(
        self, x: torch.Tensor, *, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits of shape (B, n_outputs) for x of shape (B, sum(widths)).

        With ``return_attention`` also the head-averaged attention matrix, shape (B, M, M),
        rows = query tokens, columns = key tokens (backbones).
        """
        parts = torch.split(x, self.widths, dim=1)
        tokens = torch.stack([p(xi) for p, xi in zip(self.proj, parts, strict=True)], dim=1)
        tokens = tokens + self.source  # (B, M, P)
        h = self.norm1(tokens)
        a, weights = self.attn(h, h, h, need_weights=return_attention, average_attn_weights=True)
        tokens = tokens + a
        tokens = tokens + self.mlp(self.norm2(tokens))
        logits = self.head(self.norm(tokens).flatten(1))  # (B, M*P) -> (B, n_outputs)
        if return_attention:
            return logits, weights
        return logits


class DVMEClassifier(ProbeEstimator):
    """DVME fusion head as an estimator: fit / predict / predict_proba / score / attention.

    Args:
        widths: embedding width of each backbone; X has sum(widths) columns, backbone i's
            embedding in the i-th block. One backbone (``[d]``) also works.
        task: "binary" (a 2-class softmax, so predict_proba is (n, 2)), "multiclass", "ordinal"
            (trained as multiclass) or "multilabel" (one sigmoid per label; y is (n, C) of 0/1).
        proj_dim: common token width each backbone is projected to.
        n_heads: attention heads; must divide proj_dim.
        mlp_ratio: hidden width of the block's MLP as a multiple of proj_dim.
        dropout: dropout in attention, MLP and head.
        lr, weight_decay: AdamW parameters.
        batch_size: mini-batch size.
        max_epochs, patience: stop after ``patience`` epochs in which the validation loss did
            not drop by more than 1e-4; the weights of the lowest validation loss are kept.
        val_fraction: share of the training rows held out (stratified, by ``seed``) for early
            stopping when ``fit`` gets no ``X_val``; 0 trains ``max_epochs`` with no early stop.
        seed: seeds initialisation, dropout and shuffling; on CPU two fits are bit-identical.
        device: torch device for training and inference ("cpu", "cuda", "cuda:1").

    Inputs are standardised per feature with the training rows' mean and standard deviation
    (``mean_``, ``scale_``) so that backbones of different scales train alike.

    Fitted attributes: ``net_`` (DVMENet, in eval mode), ``classes_``, ``n_epochs_``,
    ``best_val_loss_`` (None without a validation set), ``history_`` (one dict per epoch with
    ``epoch``, ``train_loss``, ``val_loss``), ``mean_``, ``scale_``, ``n_features_in_``.
    """

    def __init__(
        self,
        *,
        widths: Sequence[int],
        task: str = "multiclass",
        proj_dim: int = 512,
        n_heads: int = 8,
        mlp_ratio: float = 4.0,
        dropout: float = 0.1,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 256,
        max_epochs: int = 200,
        patience: int = 10,
        val_fraction: float = 0.1,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        self.widths = widths
        self.task = task
        self.proj_dim = proj_dim
        self.n_heads = n_heads
        self.mlp_ratio = mlp_ratio
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.val_fraction = val_fraction
        self.seed = seed
        self.device = device

    # ----------------------------------------------------------------------------- fit
    def fit(
        self,
        X: Any,
        y: Any,
        *,
        X_val: Any | None = None,
        y_val: Any | None = None,
    ) -> DVMEClassifier:
        """Train on X (n, sum(widths)) and y ((n,) labels, or (n, C) 0/1 for multilabel).

        Early stopping uses (X_val, y_val) when given, else ``val_fraction`` of the training rows.
        """
        self._check_params()
        X = self._check_X(X, "X")
        targets = self._encode_fit_targets(y, len(X))
        if (X_val is None) != (y_val is None):
            raise InvalidDataError(
                "pass both X_val and y_val, or neither (then val_fraction of X is held out); "
                f"received X_val={'None' if X_val is None else 'array'}, "
                f"y_val={'None' if y_val is None else 'array'}"
            )
        if X_val is not None:
            Xv = self._check_X(X_val, "X_val")
            tv = self._encode_targets(y_val, len(Xv), "y_val")
            Xt, tt = X, targets
        elif self.val_fraction > 0:
            tr, va = holdout_rows(targets, self.val_fraction, self.seed, self._multilabel)
            Xt, tt, Xv, tv = X[tr], targets[tr], X[va], targets[va]
        else:
            Xt, tt, Xv, tv = X, targets, None, None

        self.mean_ = Xt.mean(axis=0)
        std = Xt.std(axis=0)
        self.scale_ = np.where(std > 1e-8, std, 1.0).astype(np.float32)
        self.n_features_in_ = X.shape[1]

        device = torch.device(self.device)
        # seed init and dropout without disturbing the caller's global RNG state
        fork = [device.index or torch.cuda.current_device()] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork):
            torch.manual_seed(self.seed)
            self._train(Xt, tt, Xv, tv, device)
        return self

    def _train(
        self,
        Xt: np.ndarray,
        tt: np.ndarray,
        Xv: np.ndarray | None,
        tv: np.ndarray | None,
        device: torch.device,
    ) -> None:
        n_out = tt.shape[1] if self._multilabel else len(self.classes_)
        net = DVMENet(
            self.widths,
            n_out,
            proj_dim=self.proj_dim,
            n_heads=self.n_heads,
            mlp_ratio=self.mlp_ratio,
            dropout=self.dropout,
        ).to(device)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        loss_fn = nn.BCEWithLogitsLoss() if self._multilabel else nn.CrossEntropyLoss()
        xt = torch.from_numpy(self._standardise(Xt)).to(device)
        yt = torch.from_numpy(tt).to(device)
        gen = torch.Generator().manual_seed(self.seed)

        best_loss, best_state, history = math.inf, None, []
        last_gain = (math.inf, 0)  # (loss, epoch) of the last drop larger than _MIN_DELTA
        for epoch in range(1, self.max_epochs + 1):
            net.train()
            total = 0.0
            for idx in torch.randperm(len(xt), generator=gen).split(self.batch_size):
                idx = idx.to(device)
                loss = loss_fn(net(xt[idx]), yt[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            val_loss = (
                None if Xv is None or tv is None else self._loss(net, Xv, tv, loss_fn, device)
            )
            history.append({"epoch": epoch, "train_loss": total / len(xt), "val_loss": val_loss})
            if val_loss is None:
                continue
            if val_loss < best_loss:  # keep the lowest-loss weights, however small the drop
                best_loss = val_loss
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            if val_loss < last_gain[0] - _MIN_DELTA:
                last_gain = (val_loss, epoch)
            elif epoch - last_gain[1] >= self.patience:
                break
        if best_state is not None:
            net.load_state_dict(best_state)
        self.net_ = net.eval()
        self.n_epochs_ = len(history)
        self.best_val_loss_ = None if Xv is None else best_loss
        self.history_ = history

    def _loss(
        self,
        net: DVMENet,
        X: np.ndarray,
        t: np.ndarray,
        loss_fn: nn.Module,
        device: torch.device,
    ) -> float:
        net.eval()
        logits = self._logits(net, X, device)
        return float(loss_fn(logits, torch.from_numpy(t).to(device)).item())

    # ----------------------------------------------------------------------------- predict
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n, n_classes); for multilabel, per-label probabilities (n, C)."""
        X = self._check_fitted_X(X)
        logits = self._logits(self.net_, X, torch.device(self.device))
        p = torch.sigmoid(logits) if self._multilabel else torch.softmax(logits, dim=1)
        return p.cpu().numpy()

    def predict(self, X: Any) -> np.ndarray:
        """Labels (n,) from classes_; for multilabel, 0/1 of shape (n, C) (probability >= 0.5)."""
        proba = self.predict_proba(X)
        if self._multilabel:
            return (proba >= 0.5).astype(np.int64)
        return self.classes_[proba.argmax(axis=1)]

    def score(self, X: Any, y: Any) -> float:
        """Accuracy; multilabel: mean per-label accuracy (the selection score everywhere)."""
        proba = self.predict_proba(X)
        y = check_labels(y, n_samples=len(proba), allow_names=True)
        return selection_score(y, proba, classes=None if self._multilabel else self.classes_)

    # ----------------------------------------------------------------------------- attention
    def attention(self, X: Any) -> np.ndarray:
        """Mean attention each backbone token receives, shape (n, M), ordered like ``widths``.

        The head-averaged (M, M) attention matrix of each sample is averaged over its query
        tokens (column means), so each row sums to 1.
        """
        X = self._check_fitted_X(X)
        device = torch.device(self.device)
        out = []
        with torch.no_grad():
            for start in range(0, len(X), _INFER_BATCH):
                xb = torch.from_numpy(self._standardise(X[start : start + _INFER_BATCH]))
                _, w = self.net_(xb.to(device), return_attention=True)  # (B, M, M)
                out.append(w.mean(dim=1).cpu())  # (B, M)
        return torch.cat(out).numpy()

    def attention_summary(self, X: Any, y: Any) -> dict[str, Any]:
        """Mean attention per backbone, overall and per class (for multilabel: per positive label).

        Returns ``{"mean": [M floats], "per_class": {class: [M floats]}}``, backbones ordered like
        ``widths``; a class with no rows in y is left out.
        """
        att = self.attention(X)
        y = np.asarray(y)
        if len(y) != len(att):
            raise InvalidDataError(
                f"y must have one entry per row of X ({len(att)}), received {len(y)}"
            )
        per_class: dict[Any, list[float]] = {}
        for i, c in enumerate(self.classes_):
            rows = y[:, i].astype(bool) if self._multilabel else (y == c)
            if rows.any():
                key = c.item() if isinstance(c, np.generic) else c
                per_class[key] = att[rows].mean(axis=0).tolist()
        return {"mean": att.mean(axis=0).tolist(), "per_class": per_class}

    # ----------------------------------------------------------------------------- helpers
    @property  # per instance (its task); the base class's is a class attribute
    def _multilabel(self) -> bool:  # type: ignore[override]
        return self.task == "multilabel"

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean_) / self.scale_).astype(np.float32, copy=False)

    def _logits(self, net: DVMENet, X: np.ndarray, device: torch.device) -> torch.Tensor:
        chunks = []
        with torch.no_grad():
            for start in range(0, len(X), _INFER_BATCH):
                xb = torch.from_numpy(self._standardise(X[start : start + _INFER_BATCH]))
                chunks.append(net(xb.to(device)))
        return torch.cat(chunks)

    def _check_params(self) -> None:
        widths = list(self.widths)
        if not widths or any(int(w) != w or w <= 0 for w in widths):
            raise InvalidDataError(
                f"widths must be a non-empty list of positive integers (one per backbone), "
                f"received {widths!r}"
            )
        check_choice("task", self.task, DVME_TASKS)
        if self.proj_dim <= 0 or self.n_heads <= 0 or self.proj_dim % self.n_heads:
            raise InvalidDataError(
                f"proj_dim must be a positive multiple of n_heads, received proj_dim="
                f"{self.proj_dim}, n_heads={self.n_heads}; e.g. proj_dim=512, n_heads=8"
            )
        if not 0 <= self.val_fraction < 1:
            raise InvalidDataError(f"val_fraction must be in [0, 1), received {self.val_fraction}")
        if self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
            raise InvalidDataError(
                "batch_size, max_epochs and patience must be >= 1, received "
                f"{self.batch_size}, {self.max_epochs}, {self.patience}"
            )

    def _check_X(self, X: Any, name: str) -> np.ndarray:
        X = check_features(X, name=name).astype(np.float32, copy=False)
        if X.shape[1] != sum(self.widths):
            raise InvalidDataError(
                f"{name} has {X.shape[1]} columns but widths={list(self.widths)} sum to "
                f"{sum(self.widths)}; pass widths matching the concatenated embeddings"
            )
        return X

    def _check_fitted_X(self, X: Any) -> np.ndarray:
        check_fitted(self, "net_")
        return self._check_X(X, "X")

    def _encode_fit_targets(self, y: Any, n: int) -> np.ndarray:
        self.classes_, targets = check_targets(y, self.task, n_samples=n)
        return targets.astype(np.float32) if self._multilabel else targets.astype(np.int64)

    def _encode_targets(self, y: Any, n: int, name: str) -> np.ndarray:
        """Validation labels as fitted targets: class indices (n,), or (n, C) float32 0/1."""
        t = encode_with_classes(y, self.classes_, self._multilabel, n_samples=n, name=name)
        return t.astype(np.float32) if self._multilabel else t
