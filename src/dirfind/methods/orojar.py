"""OroJaR direction discovery (Wei et al., ICCV 2021; csyxwei/OroJaR).

Orthogonal Jacobian regularisation: for w ↦ image of z + w Q at w = 0, the penalty is the
variance over k Rademacher probes v of ‖J v‖² (the squared norm of the whole output change),
averaged over samples. Its expectation over probes is 2 Σ_{i≠j} (JᵀJ)_ij², which vanishes when
the directions' image changes are mutually orthogonal. Estimators:

* ``fd``: the official forward difference (G(w + εv) − G(w)) / ε, ε = 0.1, 1 + k passes;
* ``exact``: J v by forward mode (one jvp per probe), no ε.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import jvp

ESTIMATORS = ("fd", "exact")


def orojar_penalty(
    g: Callable[[torch.Tensor], torch.Tensor],
    w: torch.Tensor,
    probes: torch.Tensor,
    epsilon: float = 0.1,
    estimator: str = "fd",
) -> torch.Tensor:
    """OroJaR penalty of ``g`` at ``w`` (N, K) with ±1 ``probes`` (k, N, K); a differentiable scalar."""
    probes = probes.to(w.dtype)
    k = probes.shape[0]
    if estimator == "fd":
        outs = g(torch.cat([w[None], w[None] + probes * epsilon]))  # (1 + k, N, ...)
        fdd = (outs[1:] - outs[0]) / epsilon
    elif estimator == "exact":
        fdd = jvp(g, (w[None].expand(k, *w.shape).clone(),), (probes,))[1]
    else:
        raise ValueError(f"unknown estimator {estimator!r}")
    dots = fdd.flatten(2).pow(2).sum(-1)  # (k, N)
    return torch.var(dots, dim=0, unbiased=True).mean()
