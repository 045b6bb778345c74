"""The metrics of ``dirfind evaluate``, computed from the reducer's sums (formulas and sources in
docs/interpretation.md): SSIM, spatial concentration, profile shape, attribute response and
dependency, entanglement."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------- image similarity


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004) of image pairs (B, C, H, W) in [0, 1], on their BT.601 luma:
    an 11 x 11 Gaussian window (sigma 1.5) over the valid positions, C1 = 0.01², C2 = 0.03².
    Smaller images use the largest odd window that fits."""
    a, b = _luma(a), _luma(b)
    h, w = a.shape[-2:]
    size = min(window, h, w)
    size -= 1 - size % 2
    x = torch.arange(size, dtype=torch.float64, device=a.device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    along_w, along_h = _band(g, w).to(a.dtype), _band(g, h).to(a.dtype).T

    # the separable Gaussian ('valid') of all five moments at once, as two matrix products
    mu_a, mu_b, aa, bb, ab = along_h @ (torch.stack([a, b, a * a, b * b, a * b]) @ along_w)
    var_a, var_b, cov = aa - mu_a**2, bb - mu_b**2, ab - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.mean((1, 2))


def _luma(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W) BT.601 luma of (B, C, H, W) images (grey images: their one channel)."""
    if x.shape[1] == 1:
        return x[:, 0]
    return 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]


def _band(g: torch.Tensor, n: int) -> torch.Tensor:
    """(n, n - len(g) + 1) matrix whose column j holds the filter ``g`` at rows j .. j + len(g) - 1."""
    size = len(g)
    out = torch.zeros(n, n - size + 1, dtype=g.dtype, device=g.device)
    for j in range(n - size + 1):
        out[j : j + size, j] = g
    return out


# ---------------------------------------------------------------------- locality of a change map


def pool_to(m: np.ndarray, size: int = 64) -> np.ndarray:
    """Area-pool a 2-D map to at most ``size`` x ``size`` (sums preserved up to scale)."""
    h, w = m.shape
    if h <= size and w <= size:
        return m
    t = torch.from_numpy(np.ascontiguousarray(m, np.float64))[None, None]
    return F.adaptive_avg_pool2d(t, (min(h, size), min(w, size)))[0, 0].numpy()


def box_share(m: np.ndarray, share: float = 0.5) -> float:
    """Area fraction of the smallest axis-aligned box holding at least ``share`` of the map's
    total (on the map area-pooled to at most 64 x 64); NaN for an all-zero map."""
    m = np.clip(pool_to(np.asarray(m, np.float64)), 0, None)
    h, w = m.shape
    total = m.sum()
    if total <= 0:
        return float("nan")
    target = share * total * (1 - 1e-12)
    rows = np.vstack([np.zeros((1, w)), np.cumsum(m, 0)])  # rows[y] = sum of rows < y
    best = h * w
    for y0 in range(h):
        for y1 in range(y0 + 1, h + 1):
            if (y1 - y0) * 1 >= best:
                break
            cols = np.concatenate([[0.0], np.cumsum(rows[y1] - rows[y0])])
            if cols[-1] < target:
                continue
            x1 = np.searchsorted(cols, cols[:-1] + target, side="left")
            ok = x1 <= w
            if ok.any():
                width = (x1 - np.arange(w))[ok].min()
                best = min(best, (y1 - y0) * int(width))
    return best / (h * w)


def entropy(m: np.ndarray) -> float:
    """Spatial entropy of the normalised map over log(number of pixels): 1 uniform, 0 one pixel."""
    p = np.clip(np.asarray(m, np.float64).ravel(), 0, None)
    if p.sum() <= 0 or p.size < 2:
        return float("nan")
    p = p / p.sum()
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum() / np.log(p.size))


def own_area(m: np.ndarray) -> np.ndarray:
    """The direction's own change area: pixels at least half the map's maximum."""
    return m >= 0.5 * m.max() if m.max() > 0 else np.zeros(m.shape, bool)


# ---------------------------------------------------------------------- profile along the path


def profile_shape(alphas: Sequence[float], profile: np.ndarray, tol: float = 0.01) -> tuple[bool, float]:
    """(monotone, saturation) of a change profile E(alpha) with E(0) = 0.

    Monotone: E grows with |alpha| on each side (steps may shrink by ``tol`` of the max).
    Saturation per side: 2 E(A/2) / E(A) - 1 with A the largest |alpha| there and E(A/2)
    interpolated; the mean over both sides (0 = linear growth, 1 = all change in the first half).
    """
    a = np.asarray(alphas, np.float64)
    e = np.asarray(profile, np.float64)
    slack = tol * max(float(e.max()), 1e-12)
    mono, sats = True, []
    for side in (a > 0, a < 0):
        if not side.any():
            continue
        order = np.argsort(np.abs(a[side]))
        xs = np.concatenate([[0.0], np.abs(a[side])[order]])
        ys = np.concatenate([[0.0], e[side][order]])
        mono = mono and bool(np.all(np.diff(ys) >= -slack))
        top = ys[-1]
        if top > 0:
            sats.append(2 * float(np.interp(xs[-1] / 2, xs, ys)) / top - 1)
    return mono, float(np.mean(sats)) if sats else float("nan")


# ---------------------------------------------------------------------- from the reducer's sums


def finalise(
    state: dict[str, np.ndarray], alphas: Sequence[float], latent: np.ndarray, mask: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Every metric array of an evaluation (docs: :data:`dirfind.core.evaluation.METRICS`) from
    the reducer's sums; ``latent`` = the evaluated unit directions (K, D), ``mask`` the region."""
    n = float(state["n"])
    a = np.asarray(alphas, np.float64)
    k = len(state["profile"])
    out: dict[str, np.ndarray] = {"alphas": a}
    out["profile"] = state["profile"] / n
    out["effect"] = state["effect"] / n
    maps = state["abs_map"] / n
    out["change_map"] = maps.astype(np.float32)
    out["change_sq_map"] = (state["sq_map"] / n).astype(np.float32)
    shape = [profile_shape(a, p) for p in out["profile"]]
    out["monotone"] = np.array([s[0] for s in shape], np.uint8)
    out["saturation"] = np.array([s[1] for s in shape])
    out["box50"] = np.array([box_share(m) for m in maps])
    out["entropy"] = np.array([entropy(m) for m in maps])
    share, outside = np.zeros(k), np.zeros(k)
    for i, m in enumerate(maps):
        area = own_area(m)
        total = m.sum()
        share[i] = m[~area].sum() / total if total > 0 else np.nan
        outside[i] = m[~area].mean() if (~area).any() else 0.0
    out["outside_share"], out["outside_change"] = share, outside
    out["ssim"] = state["ssim"] / n
    if mask is not None:
        r = state["region_sums"]
        inside, outside_sq = r[:, 1] / mask.sum(), r[:, 3] / (~mask).sum()
        out["inside_outside"] = np.where(outside_sq > 0, inside / np.maximum(outside_sq, 1e-300), np.inf)
        out["inside_share"] = r[:, 0] / np.maximum(r[:, 0] + r[:, 2], 1e-300)
    out.update(attribute_metrics(state, a, n))
    flat = maps.reshape(k, -1)
    out["map_corr"] = _corr(flat)
    unit = latent / np.linalg.norm(latent, axis=1, keepdims=True)
    out["latent_cos"] = np.abs(unit @ unit.T)
    return out


def attribute_metrics(state: dict[str, np.ndarray], a: np.ndarray, n: float) -> dict[str, np.ndarray]:
    """Attribute means, spreads, profiles, within-sample slopes and correlations (InterFaceGAN's
    re-scoring), standardised responses and StyleSpace's attribute dependency."""
    k, s, na = state["y"].shape
    if na == 0:
        return {"attr_cos": np.zeros((k, k))}
    mean0 = state["y0"] / n
    var0 = (state["y0_sq"] - n * mean0**2) / max(n - 1, 1)
    sd = np.sqrt(np.clip(var0, 0, None))
    cov = (state["y0_cross"] - n * np.outer(mean0, mean0)) / max(n - 1, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        attr_corr = np.clip(np.nan_to_num(cov / np.outer(sd, sd)), -1, 1)
    np.fill_diagonal(attr_corr, 1.0)
    sxx = n * float(((a - a.mean()) ** 2).sum())
    slope = state["ay"] / sxx
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.where(state["yy_within"] > 0, state["ay"] / np.sqrt(sxx * state["yy_within"]), 0.0)
        safe_sd = np.where(sd > 0, sd, np.nan)
        response = slope * (a[-1] - a[0]) / safe_sd
        abs_change = state["abs_dy"] / n / safe_sd
    ad_mean, ad_max = dependency(abs_change)
    r = np.nan_to_num(response)
    norms = np.linalg.norm(r, axis=1, keepdims=True)
    unit = np.divide(r, norms, out=np.zeros_like(r), where=norms > 0)
    return {
        "attr_mean": mean0,
        "attr_sd": sd,
        "attr_corr": attr_corr,
        "attr_profile": state["y"] / n,
        "slope": slope,
        "corr": corr,
        "response": response,
        "abs_change": abs_change,
        "ad_mean": ad_mean,
        "ad_max": ad_max,
        "attr_cos": np.abs(unit @ unit.T),
    }


def dependency(abs_change: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """StyleSpace's attribute dependency for every target attribute t: the mean and the max over
    the other attributes i of |change of i| / |change of t| (both in units of their spreads)."""
    k, na = abs_change.shape
    ad_mean, ad_max = np.full((k, na), np.nan), np.full((k, na), np.nan)
    for t in range(na if na > 1 else 0):
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.delete(abs_change, t, axis=1) / abs_change[:, t : t + 1]
        rel = np.where(np.isfinite(rel), rel, np.nan)
        ok = ~np.isnan(rel).all(1)
        ad_mean[ok, t] = np.nanmean(rel[ok], axis=1)
        ad_max[ok, t] = np.nanmax(rel[ok], axis=1)
    return ad_mean, ad_max


def _corr(x: np.ndarray) -> np.ndarray:
    """Pearson correlation of the rows of x (rows without variance correlate 0 with the others)."""
    c = x - x.mean(1, keepdims=True)
    norms = np.linalg.norm(c, axis=1)
    unit = np.divide(c, norms[:, None], out=np.zeros_like(c), where=norms[:, None] > 0)
    out = unit @ unit.T
    np.fill_diagonal(out, 1.0)
    return out
