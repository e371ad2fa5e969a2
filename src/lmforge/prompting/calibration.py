"""Calibrating label probabilities: contextual calibration and a fitted affine map.

Contextual calibration (Zhao et al. 2021, "Calibrate Before Use"): ask the model
about content-free inputs (``N/A``, ``[MASK]``, the empty string) in the same
prompt; ``p_cf`` is the mean of their label probabilities (each normalised over
the labels). A test input's probabilities ``p`` become

    q = W p + b,   W = diag(p_cf)^-1,  b = 0,   then renormalised to sum to 1,

so the content-free input itself maps to the uniform distribution: the prompt's
bias toward a label (its majority or its last example's label, a frequent token)
is divided out. The same map in log space is ``log q = log p - log p_cf + const``:
the affine map below with ``W = I`` and ``b = -log p_cf``.

The affine variant for comparison fits ``q = softmax(W x + b)`` on a few labelled
examples by L-BFGS on the cross-entropy, with ``W`` full (C x C) or diagonal and
``x = log p`` (default; ``W = I, b = 0`` is then the uncalibrated model, and the
L2 penalty pulls toward it) or ``x = p`` (the paper's parametrisation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..common import LmforgeError


def normalize(probs: torch.Tensor) -> torch.Tensor:
    """(..., C) non-negative scores divided by their sum over the labels."""
    total = probs.sum(dim=-1, keepdim=True)
    if bool((total <= 0).any()):
        raise LmforgeError("label probabilities sum to 0; nothing to normalise")
    return probs / total


def content_free_probs(cf_probs: torch.Tensor) -> torch.Tensor:
    """p_cf (C,): the mean over content-free inputs of their (normalised) label probabilities."""
    if cf_probs.dim() != 2 or cf_probs.size(0) == 0:
        raise LmforgeError("content-free probabilities: need a (M, C) tensor with M >= 1 rows")
    return normalize(normalize(cf_probs.double()).mean(dim=0))


@dataclass
class ContextualCalibration:
    """q = diag(p_cf)^-1 p, renormalised."""

    p_cf: torch.Tensor  # (C,)

    @classmethod
    def from_content_free(cls, cf_probs: torch.Tensor) -> ContextualCalibration:
        """From the (M, C) label probabilities of M content-free prompts."""
        return cls(content_free_probs(cf_probs))

    @property
    def W(self) -> torch.Tensor:
        return torch.diag(1.0 / self.p_cf)

    @property
    def b(self) -> torch.Tensor:
        return torch.zeros_like(self.p_cf)

    def apply(self, probs: torch.Tensor) -> torch.Tensor:
        """(N, C) label probabilities -> calibrated (N, C), each row summing to 1."""
        p = normalize(probs.double())
        if bool((self.p_cf <= 0).any()):
            raise LmforgeError(
                "p_cf has a zero entry; a label the model never gives cannot be divided out"
            )
        return normalize(p @ self.W.T + self.b)


@dataclass
class AffineCalibration:
    """q = softmax(W x + b) with x = log p (or p), fitted on labelled examples."""

    W: torch.Tensor  # (C, C)
    b: torch.Tensor  # (C,)
    inputs: str = "log"

    def _x(self, probs: torch.Tensor) -> torch.Tensor:
        p = normalize(probs.double())
        return p.clamp_min(1e-300).log() if self.inputs == "log" else p

    def apply(self, probs: torch.Tensor) -> torch.Tensor:
        """(N, C) label probabilities -> calibrated (N, C)."""
        return torch.softmax(self._x(probs) @ self.W.T + self.b, dim=-1)

    @classmethod
    def fit(
        cls,
        probs: torch.Tensor,
        targets: torch.Tensor,
        *,
        diagonal: bool = False,
        inputs: str = "log",
        l2: float = 1e-2,
        max_iter: int = 200,
    ) -> AffineCalibration:
        """Fit on (n, C) label probabilities and their (n,) label indices.

        Minimises mean cross-entropy + ``l2 * (|W - W0|^2 + |b|^2)`` (W0 = I for log
        inputs, 0 for probabilities) with L-BFGS; convex, so the start does not matter.
        """
        if inputs not in ("log", "prob"):
            raise LmforgeError(f"inputs: got {inputs!r}; allowed: log, prob")
        if probs.dim() != 2 or probs.size(0) != targets.numel() or probs.size(0) == 0:
            raise LmforgeError(
                f"affine calibration: need (n, C) probabilities and n labels, got "
                f"{tuple(probs.shape)} and {targets.numel()}"
            )
        C = probs.size(1)
        base = cls(torch.eye(C, dtype=torch.float64), torch.zeros(C, dtype=torch.float64), inputs)
        x = base._x(probs)  # (n, C)
        y = targets.long()
        w0 = torch.eye(C, dtype=torch.float64) if inputs == "log" else torch.zeros(C, C).double()
        with torch.enable_grad():
            if diagonal:
                d = torch.diagonal(w0).clone().requires_grad_(True)
                params = [d]
            else:
                W = w0.clone().requires_grad_(True)
                params = [W]
            b = torch.zeros(C, dtype=torch.float64, requires_grad=True)
            params.append(b)
            opt = torch.optim.LBFGS(
                params, lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe",
                tolerance_grad=1e-10, tolerance_change=1e-12,
            )  # fmt: skip

            def weight() -> torch.Tensor:
                return torch.diag(d) if diagonal else W

            def closure() -> torch.Tensor:
                opt.zero_grad()
                Wt = weight()
                loss = torch.nn.functional.cross_entropy(x @ Wt.T + b, y)
                loss = loss + l2 * (((Wt - w0) ** 2).sum() + (b**2).sum())
                loss.backward()
                return loss

            opt.step(closure)
            return cls(weight().detach().clone(), b.detach().clone(), inputs)
