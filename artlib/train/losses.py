"""Losses: class-weighted cross-entropy for labels, KL divergence for the nine-emotion vote distributions."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SoftTargetKL(nn.Module):
    """KL(target ‖ softmax(logits)) averaged over the batch: the loss of ArtEmis's image-to-emotion classifier.

    ArtEmis trains against each painting's normalised vote histogram with
    ``torch.nn.KLDivLoss(reduction="batchmean")`` on log-probabilities; this is the same quantity, written
    with ``xlogy`` so that emotions nobody chose (target 0) contribute exactly 0. With one-hot targets it
    equals the unweighted cross-entropy.
    """

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of sum_k t_k (log t_k − log softmax(logits)_k)."""
        target = target.float()
        log_probs = F.log_softmax(logits.float(), dim=1)
        return (torch.xlogy(target, target) - target * log_probs).sum(dim=1).mean()
