"""A Vision Transformer whose parameter names match DINO's releases, so they load strictly.

Key names (facebookresearch/dino ``vision_transformer.py``): ``cls_token``, ``pos_embed``,
``patch_embed.proj``, ``blocks.N.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}``, ``norm``.
The embedding is the class token after the final norm, or (``n_last_blocks=4``) the normed class
tokens of the last four blocks concatenated, as DINO's ``eval_linear.py`` does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DinoViT", "vit_small_patch16", "vit_base_patch16"]


class _PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, N, D)


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (B, H, N, D/H)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DinoViT(nn.Module):
    """ViT with DINO's key names. ``forward``: (B, 3, H, W) -> (B, dim * n_last_blocks).

    ``img_size`` fixes the stored ``pos_embed`` grid; other input sizes interpolate it bicubically
    (H and W must be multiples of ``patch``).
    """

    def __init__(
        self,
        *,
        img_size: int = 224,
        patch: int = 16,
        dim: int = 384,
        depth: int = 12,
        heads: int = 6,
        mlp_ratio: float = 4.0,
        n_last_blocks: int = 1,
    ) -> None:
        super().__init__()
        if not 1 <= n_last_blocks <= depth:
            raise ValueError(f"n_last_blocks must be in [1, {depth}], got {n_last_blocks}")
        self.patch = patch
        self.n_last_blocks = n_last_blocks
        self.patch_embed = _PatchEmbed(patch, dim)
        n_patches = (img_size // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n_patches + 1, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(_Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def _pos_embed(self, h: int, w: int) -> torch.Tensor:
        """The positional embedding for an (h, w) patch grid, shape (1, 1 + h * w, dim)."""
        n_stored = self.pos_embed.shape[1] - 1
        if n_stored == h * w:
            return self.pos_embed
        side = int(math.sqrt(n_stored))
        cls_pos, grid = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        grid = grid.reshape(1, side, side, -1).permute(0, 3, 1, 2)  # (1, D, s, s)
        grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
        return torch.cat([cls_pos, grid.permute(0, 2, 3, 1).reshape(1, h * w, -1)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2] // self.patch, x.shape[-1] // self.patch
        tokens = self.patch_embed(x)  # (B, N, D)
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        tokens = tokens + self._pos_embed(h, w)
        first_kept = len(self.blocks) - self.n_last_blocks
        cls_tokens = []
        for i, block in enumerate(self.blocks):
            tokens = block(tokens)
            if i >= first_kept:
                cls_tokens.append(self.norm(tokens)[:, 0])  # (B, D)
        return torch.cat(cls_tokens, dim=-1)  # (B, D * n_last_blocks)


def vit_small_patch16(n_last_blocks: int = 1) -> DinoViT:
    """ViT-S/16 (DINO ``vit_small``): dim 384, 12 blocks, 6 heads."""
    return DinoViT(dim=384, depth=12, heads=6, n_last_blocks=n_last_blocks)


def vit_base_patch16(n_last_blocks: int = 1) -> DinoViT:
    """ViT-B/16 (DINO ``vit_base``): dim 768, 12 blocks, 12 heads."""
    return DinoViT(dim=768, depth=12, heads=12, n_last_blocks=n_last_blocks)
