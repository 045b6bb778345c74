"""The penalties that direction learning minimises: Hessian Penalty and OroJaR.

Hessian Penalty (Peebles et al., ECCV 2020; wpeebles/hessian_penalty). The penalty of G at
coefficients w (N x K, w ↦ image of z + w Q) is, per output value, the variance over k Rademacher
probes v of the second directional derivative vᵀ H v, averaged over values and samples
(``reduction=torch.mean`` as the discovery script uses). Estimators:

* ``fd``: the official central difference (G(w + εv) − 2 G(w) + G(w − εv)) / ε², ε = 0.1,
  1 + 2k generator passes (here batched into one call);
* ``exact``: vᵀ H v by forward-over-forward mode (jvp of jvp), no ε.

Its expectation over probes is the mean of 2 Σ_{i≠j} H_ij² (off-diagonal Hessian energy).

OroJaR (Wei et al., ICCV 2021; csyxwei/OroJaR). Orthogonal Jacobian regularisation: for w ↦ image
of z + w Q at w = 0, the penalty is the variance over k Rademacher probes v of ‖J v‖² (the squared
norm of the whole output change), averaged over samples. Its expectation over probes is 2 Σ_{i≠j}
(JᵀJ)_ij², which vanishes when the directions' image changes are mutually orthogonal. Estimators:

* ``fd``: the official forward difference (G(w + εv) − G(w)) / ε, ε = 0.1, 1 + k passes;
* ``exact``: J v by forward mode (one jvp per probe), no ε.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import jvp

ESTIMATORS = ("fd", "exact")


def hessian_penalty(
    g: Callable[[torch.Tensor], torch.Tensor],
    w: torch.Tensor,
    probes: torch.Tensor,
    epsilon: float = 0.1,
    estimator: str = "fd",
) -> torch.Tensor:
    """Hessian Penalty of ``g`` at ``w`` (N, K) with ±1 ``probes`` (k, N, K); a differentiable scalar.

    ``g`` maps coefficients of any leading shape (..., N, K) to outputs (..., N, *out).
    """
    probes = probes.to(w.dtype)
    k = probes.shape[0]
    if estimator == "fd":
        x = probes * epsilon
        outs = g(torch.cat([w[None], w[None] + x, w[None] - x]))  # (1 + 2k, N, ...)
        g0, plus, minus = outs[0], outs[1 : 1 + k], outs[1 + k :]
        sdd = (plus - 2 * g0 + minus) / epsilon**2
    elif estimator == "exact":
        wk = w[None].expand(k, *w.shape).clone()

        def first(u: torch.Tensor) -> torch.Tensor:
            return jvp(g, (u,), (probes,))[1]

        sdd = jvp(first, (wk,), (probes,))[1]
    else:
        raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")
    return torch.var(sdd, dim=0, unbiased=True).mean()


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
        raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}")
    dots = fdd.flatten(2).pow(2).sum(-1)  # (k, N)
    return torch.var(dots, dim=0, unbiased=True).mean()
