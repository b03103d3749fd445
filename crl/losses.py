"""Critic energies, contrastive losses, C-learning (TD) losses and metrics.

Everything here is a pure JAX function of arrays (jit- and vmap-able). Conventions
(see docs reference §3-§4): B = batch size, d = representation dim, and a logit
matrix ``logits[i, j] = e(phi_i, psi_j)`` of shape [B, B] whose diagonal holds the
positive pairs. Twin / ensemble critics are handled by the caller with ``jax.vmap``
over the ensemble axis, then :func:`reduce_twin`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

ENERGIES = ("dot", "scaled_dot", "l2", "l2sq", "cosine")
CONTRASTIVE_LOSSES = (
    "binary_nce",
    "balanced_nce",
    "infonce_forward",
    "infonce_backward",
    "infonce_symmetric",
    "cpc",
)

CPC_LSE_COEF = 0.01  # the original CRL's CPC loss includes 0.01 * lse^2
_L2_EPS = 1e-12  # floor of the squared distance inside the sqrt of the `l2` energy
_NORM_EPS = 1e-12  # added to the squared norm when normalising for `cosine`
MAX_C_WEIGHT = 20.0  # clip of the C-learning importance weight p / (1 - p)


# ----------------------------------------------------------------------------- energies


def _check_energy(kind: str) -> None:
    if kind not in ENERGIES:
        raise ValueError(f"unknown energy {kind!r}; expected one of {ENERGIES}")


def _normalise(x: jax.Array) -> jax.Array:
    """Per-vector L2 normalisation along the last axis (zero vectors stay ~0)."""
    return x * jax.lax.rsqrt(jnp.sum(x * x, axis=-1, keepdims=True) + _NORM_EPS)


def _temperature(log_temp) -> jax.Array:
    return 1.0 if log_temp is None else jnp.exp(log_temp)


def pairwise_energy(phi: jax.Array, psi: jax.Array, kind: str, log_temp=None) -> jax.Array:
    """All-pairs energy matrix.

    Args:
      phi: [B, d] state-action representations.
      psi: [B', d] goal representations (usually B' = B).
      kind: one of :data:`ENERGIES`.
      log_temp: scalar log-temperature, used by ``cosine`` only (None = temperature 1).

    Returns:
      [B, B'] logits with ``logits[i, j] = e(phi_i, psi_j)``. L2 energies use
      ``|x|^2 + |y|^2 - 2 x.y`` (one matmul), clamped at 0.
    """
    _check_energy(kind)
    if kind == "cosine":
        return _normalise(phi) @ _normalise(psi).T / _temperature(log_temp)
    dots = phi @ psi.T
    if kind == "dot":
        return dots
    if kind == "scaled_dot":
        return dots / jnp.sqrt(phi.shape[-1])
    sq = jnp.sum(phi * phi, -1)[:, None] + jnp.sum(psi * psi, -1)[None, :] - 2.0 * dots
    sq = jnp.maximum(sq, 0.0)
    if kind == "l2sq":
        return -sq
    return -jnp.sqrt(jnp.maximum(sq, _L2_EPS))  # l2


def diag_energy(phi: jax.Array, psi: jax.Array, kind: str, log_temp=None) -> jax.Array:
    """Row-wise energy ``e(phi_i, psi_i)`` without forming the B x B matrix.

    Args: as :func:`pairwise_energy`, with phi and psi both [B, d] (or any matching
    leading shape [..., d]).

    Returns:
      [B] (the leading shape of phi), equal to ``diag(pairwise_energy(phi, psi))``.
    """
    _check_energy(kind)
    if kind == "cosine":
        return jnp.sum(_normalise(phi) * _normalise(psi), -1) / _temperature(log_temp)
    if kind == "dot":
        return jnp.sum(phi * psi, -1)
    if kind == "scaled_dot":
        return jnp.sum(phi * psi, -1) / jnp.sqrt(phi.shape[-1])
    sq = jnp.sum((phi - psi) ** 2, -1)
    if kind == "l2sq":
        return -sq
    return -jnp.sqrt(jnp.maximum(sq, _L2_EPS))  # l2


# ----------------------------------------------------------------------------- contrastive losses


def _bce(logits: jax.Array, labels) -> jax.Array:
    """Elementwise sigmoid binary cross-entropy on logits (stable form)."""
    return -(labels * jax.nn.log_sigmoid(logits) + (1.0 - labels) * jax.nn.log_sigmoid(-logits))


def binary_nce(logits: jax.Array) -> jax.Array:
    """Binary NCE: BCE of ``logits [B, B]`` against the identity, mean over all B^2 entries. Scalar.

    Computed as ``(sum_ij softplus(L_ij) - sum_i L_ii) / B^2``, the same function as the mean of
    :func:`_bce` (BCE(x, y) = softplus(x) - y x) with one softplus per entry instead of two log-sigmoids.
    """
    return (jnp.sum(jax.nn.softplus(logits)) - jnp.trace(logits)) / logits.size


def balanced_nce(logits: jax.Array) -> jax.Array:
    """Balanced binary NCE (Stable CRL): per row, ``BCE(L_ii, 1) + mean_{j != i} BCE(L_ij, 0)``; mean over rows.

    The same terms as :func:`binary_nce`, but each row's positive weighs as much as its B - 1 negatives together
    (weights 1 and 1 / (B - 1)) instead of 1 : (B - 1). Needs B >= 2. Scalar.
    """
    b = logits.shape[0]
    diag = jnp.diagonal(logits)
    pos = jnp.sum(jax.nn.softplus(-diag))  # BCE(x, 1) = softplus(-x)
    neg = jnp.sum(jax.nn.softplus(logits)) - jnp.sum(jax.nn.softplus(diag))  # BCE(x, 0) = softplus(x), off-diagonal
    return (pos + neg / (b - 1)) / b


def infonce_forward(logits: jax.Array) -> jax.Array:
    """Forward InfoNCE (softmax over goals per row): ``mean_i [-L_ii + lse_j L_ij]``. Scalar."""
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.diagonal(logits))


def infonce_backward(logits: jax.Array) -> jax.Array:
    """Backward InfoNCE (softmax over rows per goal): ``mean_j [-L_jj + lse_i L_ij]``. Scalar."""
    return jnp.mean(jax.nn.logsumexp(logits, axis=0) - jnp.diagonal(logits))


def infonce_symmetric(logits: jax.Array) -> jax.Array:
    """Mean of forward and backward InfoNCE. Scalar."""
    return 0.5 * (infonce_forward(logits) + infonce_backward(logits))


def logsumexp_penalty(logits: jax.Array) -> jax.Array:
    """Row-wise logsumexp penalty ``mean_i (lse_j L_ij)^2``. Scalar."""
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) ** 2)


def contrastive_loss(logits: jax.Array, kind: str, lse_coef: float = 0.0) -> jax.Array:
    """Contrastive critic loss of ``logits [B, B]`` plus ``lse_coef * logsumexp_penalty``. Scalar.

    ``kind`` is one of :data:`CONTRASTIVE_LOSSES`; ``cpc`` is the original paper's CPC,
    i.e. ``infonce_forward + 0.01 * logsumexp_penalty`` (``lse_coef`` is added on top).
    """
    if kind == "binary_nce":
        loss = binary_nce(logits)
    elif kind == "balanced_nce":
        loss = balanced_nce(logits)
    elif kind == "infonce_forward":
        loss = infonce_forward(logits)
    elif kind == "infonce_backward":
        loss = infonce_backward(logits)
    elif kind == "infonce_symmetric":
        loss = infonce_symmetric(logits)
    elif kind == "cpc":
        loss = infonce_forward(logits) + CPC_LSE_COEF * logsumexp_penalty(logits)
    else:
        raise ValueError(f"unknown contrastive loss {kind!r}; expected one of {CONTRASTIVE_LOSSES}")
    if not (isinstance(lse_coef, (int, float)) and lse_coef == 0):  # may be a traced value
        loss = loss + lse_coef * logsumexp_penalty(logits)
    return loss


# ----------------------------------------------------------------------------- C-learning (TD)


def c_learning_weight(target_logits: jax.Array) -> jax.Array:
    """Importance weight ``clip(p / (1 - p), 0, 20)`` with ``p = sigmoid(x)``, stop-gradient.

    Computed stably as ``clip(exp(x), 0, 20)`` (p / (1 - p) = exp(x)). Same shape as the input
    (e.g. [B]; for twin targets take the min over twins first, exp is monotone).
    """
    return jax.lax.stop_gradient(jnp.clip(jnp.exp(target_logits), 0.0, MAX_C_WEIGHT))


def _td_pairs(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Positive ``L_ii`` and random-goal ``L_{i, i+1 mod B}`` entries, each [B]."""
    b = logits.shape[0]
    rows = jnp.arange(b)
    return logits[rows, rows], logits[rows, (rows + 1) % b]


def c_learning_loss(logits: jax.Array, w: jax.Array, gamma: float) -> jax.Array:
    """C-learning TD loss (reference §4). Scalar.

    Args:
      logits: [B, B], row i = phi(s_i, a_i), column j = psi(next-state goal of row j).
      w: [B] importance weights from :func:`c_learning_weight` (gradient is stopped here too).
      gamma: discount.

    Returns ``mean_i [(1-g) BCE(L_ii, 1) + g w_i BCE(L_{i,i+1}, 1) + BCE(L_{i,i+1}, 0)]``.
    """
    pos, neg = _td_pairs(logits)
    w = jax.lax.stop_gradient(w)
    loss = (1.0 - gamma) * _bce(pos, 1.0) + gamma * w * _bce(neg, 1.0) + _bce(neg, 0.0)
    return jnp.mean(loss)


def nce_c_learning_loss(logits: jax.Array, w: jax.Array, gamma: float) -> jax.Array:
    """NCE + C-learning hybrid loss (reference §4). Scalar.

    Same inputs as :func:`c_learning_loss`; the caller gives next-state goals to the first
    :func:`num_td_rows` rows and keeps future goals for the rest. Returns
    ``mean_i [(2-g) BCE(L_ii, 1) + g w_i BCE(L_{i,i+1}, 1) + 2 BCE(L_{i,i+1}, 0)]``.
    """
    pos, neg = _td_pairs(logits)
    w = jax.lax.stop_gradient(w)
    loss = (1.0 + (1.0 - gamma)) * _bce(pos, 1.0) + gamma * w * _bce(neg, 1.0) + 2.0 * _bce(neg, 0.0)
    return jnp.mean(loss)


def num_td_rows(batch_size: int, gamma: float) -> int:
    """Rows given next-state goals in the NCE + C-learning hybrid: ``int(B (1-g) / ((1-g) + 1))``."""
    return int(batch_size * (1.0 - gamma) / ((1.0 - gamma) + 1.0))


# ----------------------------------------------------------------------------- metrics and twins


def contrastive_metrics(logits: jax.Array) -> dict[str, jax.Array]:
    """Critic diagnostics of ``logits [B, B]``; a dict of scalars.

    Keys: ``binary_accuracy`` (mean of (L > 0) == I), ``categorical_accuracy`` (row argmax is
    the diagonal), ``logits_pos`` (mean diagonal), ``logits_neg`` (mean off-diagonal),
    ``logsumexp`` (mean of the squared row logsumexp).
    """
    b = logits.shape[0]
    eye = jnp.eye(b, dtype=bool)
    diag = jnp.diagonal(logits)
    return {
        "binary_accuracy": jnp.mean(((logits > 0) == eye).astype(jnp.float32)),
        "categorical_accuracy": jnp.mean((jnp.argmax(logits, axis=1) == jnp.arange(b)).astype(jnp.float32)),
        "logits_pos": jnp.mean(diag),
        "logits_neg": jnp.sum(jnp.where(eye, 0.0, logits)) / max(b * (b - 1), 1),
        "logsumexp": logsumexp_penalty(logits),
    }


def reduce_twin(q: jax.Array, how: str = "min", axis: int = 0) -> jax.Array:
    """Reduce an ensemble / twin axis of ``q`` by ``min`` or ``mean``; returns q without that axis."""
    if how == "min":
        return jnp.min(q, axis=axis)
    if how == "mean":
        return jnp.mean(q, axis=axis)
    raise ValueError(f"unknown twin reduction {how!r}; expected 'min' or 'mean'")
