"""Hand-computed checks of crl.losses (plain Python loops with math.log / math.exp)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crl import losses

TOL = dict(rtol=1e-5, atol=1e-5)

PHI = [[0.5, -1.0], [2.0, 0.25], [-0.3, 0.7]]
PSI = [[1.0, 0.5], [-0.5, 1.5], [0.2, -0.4]]
LOGITS3 = [[2.0, -1.0, 0.5], [0.3, 1.5, -2.0], [-0.7, 0.4, 0.1]]
LOGITS4 = [[1.0, -0.5, 0.25, 2.0], [0.0, 0.5, -1.5, 0.75], [-2.0, 1.25, 3.0, -0.25], [0.5, -1.0, 0.1, -0.3]]


# ----------------------------------------------------------------------------- plain-Python references


def _dot(x, y):
    return sum(a * b for a, b in zip(x, y))


def _norm(x):
    return math.sqrt(_dot(x, x))


def ref_energy(x, y, kind, log_temp=0.0):
    if kind == "dot":
        return _dot(x, y)
    if kind == "scaled_dot":
        return _dot(x, y) / math.sqrt(len(x))
    sq = sum((a - b) ** 2 for a, b in zip(x, y))
    if kind == "l2":
        return -math.sqrt(sq)
    if kind == "l2sq":
        return -sq
    if kind == "cosine":
        return _dot(x, y) / (_norm(x) * _norm(y)) / math.exp(log_temp)
    raise AssertionError(kind)


def log_sig(x):
    return -math.log(1.0 + math.exp(-x))


def bce(x, y):
    return -(y * log_sig(x) + (1 - y) * log_sig(-x))


def lse(xs):
    return math.log(sum(math.exp(v) for v in xs))


def rows(m):
    return [list(r) for r in m]


def cols(m):
    return [[m[i][j] for i in range(len(m))] for j in range(len(m[0]))]


def ref_binary_nce(m):
    b = len(m)
    return sum(bce(m[i][j], 1.0 if i == j else 0.0) for i in range(b) for j in range(b)) / b**2


def ref_balanced_nce(m):
    b = len(m)
    per_row = [bce(m[i][i], 1.0) + sum(bce(m[i][j], 0.0) for j in range(b) if j != i) / (b - 1) for i in range(b)]
    return sum(per_row) / b


def ref_forward(m):
    return sum(-m[i][i] + lse(rows(m)[i]) for i in range(len(m))) / len(m)


def ref_backward(m):
    return sum(-m[j][j] + lse(cols(m)[j]) for j in range(len(m))) / len(m)


def ref_penalty(m):
    return sum(lse(r) ** 2 for r in rows(m)) / len(m)


def ref_c_learning(m, w, gamma, hybrid=False):
    b = len(m)
    total = 0.0
    for i in range(b):
        pos, neg = m[i][i], m[i][(i + 1) % b]
        if hybrid:
            total += (1 + (1 - gamma)) * bce(pos, 1) + gamma * w[i] * bce(neg, 1) + 2 * bce(neg, 0)
        else:
            total += (1 - gamma) * bce(pos, 1) + gamma * w[i] * bce(neg, 1) + bce(neg, 0)
    return total / b


def arr(x):
    return jnp.asarray(x, dtype=jnp.float32)


# ----------------------------------------------------------------------------- energies


@pytest.mark.parametrize("kind", losses.ENERGIES)
def test_pairwise_energy_matches_loops(kind):
    out = np.asarray(losses.pairwise_energy(arr(PHI), arr(PSI), kind, log_temp=arr(0.0)))
    expected = [[ref_energy(PHI[i], PSI[j], kind) for j in range(3)] for i in range(3)]
    assert out.shape == (3, 3)
    np.testing.assert_allclose(out, expected, **TOL)


def test_pairwise_energy_non_square():
    out = losses.pairwise_energy(arr(PHI), arr(PSI[:2]), "l2sq")
    expected = [[ref_energy(PHI[i], PSI[j], "l2sq") for j in range(2)] for i in range(3)]
    np.testing.assert_allclose(np.asarray(out), expected, **TOL)


@pytest.mark.parametrize("kind", losses.ENERGIES)
def test_diag_energy_matches_loops_and_pairwise(kind):
    out = np.asarray(losses.diag_energy(arr(PHI), arr(PSI), kind, log_temp=arr(0.0)))
    expected = [ref_energy(PHI[i], PSI[i], kind) for i in range(3)]
    assert out.shape == (3,)
    np.testing.assert_allclose(out, expected, **TOL)
    full = np.asarray(losses.pairwise_energy(arr(PHI), arr(PSI), kind, log_temp=arr(0.0)))
    np.testing.assert_allclose(out, np.diagonal(full), **TOL)


def test_scaled_dot_uses_sqrt_d():
    phi = arr([[1.0, 2.0, 3.0, 4.0]])
    psi = arr([[1.0, 1.0, 1.0, 1.0]])
    np.testing.assert_allclose(np.asarray(losses.pairwise_energy(phi, psi, "scaled_dot")), [[10.0 / 2.0]], **TOL)


@pytest.mark.parametrize("fn", [losses.pairwise_energy, losses.diag_energy])
def test_l2_zero_distance_value_and_finite_grad(fn):
    x = arr([[0.3, -0.2], [1.0, 2.0]])

    def f(phi):
        return jnp.sum(fn(phi, x, "l2"))

    value = f(x)
    grad = jax.grad(f)(x)
    assert np.all(np.isfinite(np.asarray(grad)))
    if fn is losses.diag_energy:
        np.testing.assert_allclose(float(value), -2e-6, atol=1e-7)  # two rows of -sqrt(1e-12)
    # d(l2sq) at zero distance is exactly zero and finite as well
    g2 = jax.grad(lambda p: jnp.sum(fn(p, x, "l2sq")))(x)
    assert np.all(np.isfinite(np.asarray(g2)))


def test_l2sq_clamped_nonnegative_distance():
    # large nearly identical vectors: |x|^2 + |y|^2 - 2xy may round below 0 in float32
    x = arr([[1000.0, 1000.0001], [3e3, -3e3]])
    out = np.asarray(losses.pairwise_energy(x, x, "l2sq"))
    assert np.all(np.diagonal(out) <= 0.0)
    assert np.all(np.isfinite(np.asarray(losses.pairwise_energy(x, x, "l2"))))


def test_cosine_per_vector_scale_invariance_and_temperature():
    phi, psi = arr(PHI), arr(PSI)
    base = np.asarray(losses.pairwise_energy(phi, psi, "cosine", log_temp=arr(0.0)))
    # rescale each vector by a different factor: per-pair cosine must not change
    scaled = np.asarray(
        losses.pairwise_energy(phi * arr([[3.0], [0.1], [7.0]]), psi * arr([[0.5], [20.0], [2.0]]), "cosine", arr(0.0))
    )
    np.testing.assert_allclose(scaled, base, **TOL)
    assert np.all(np.abs(base) <= 1.0 + 1e-6)
    # temperature: logits divided by exp(log_temp)
    hot = np.asarray(losses.pairwise_energy(phi, psi, "cosine", log_temp=arr(math.log(0.1))))
    np.testing.assert_allclose(hot, base / 0.1, **TOL)
    diag_hot = np.asarray(losses.diag_energy(phi, psi, "cosine", log_temp=arr(math.log(0.1))))
    np.testing.assert_allclose(diag_hot, np.diagonal(base) / 0.1, **TOL)
    # None means temperature 1
    np.testing.assert_allclose(np.asarray(losses.pairwise_energy(phi, psi, "cosine")), base, **TOL)
    # temperature gets a gradient
    g = jax.grad(lambda t: jnp.sum(losses.pairwise_energy(phi, psi, "cosine", t)))(arr(0.0))
    np.testing.assert_allclose(float(g), -float(base.sum()), **TOL)


def test_cosine_zero_vector_is_finite():
    phi = arr([[0.0, 0.0], [1.0, 0.0]])
    out = losses.pairwise_energy(phi, phi, "cosine", arr(0.0))
    assert np.all(np.isfinite(np.asarray(out)))


def test_energies_jit():
    f = jax.jit(losses.pairwise_energy, static_argnames="kind")
    np.testing.assert_allclose(
        np.asarray(f(arr(PHI), arr(PSI), kind="l2")), np.asarray(losses.pairwise_energy(arr(PHI), arr(PSI), "l2")), **TOL
    )


def test_unknown_energy():
    with pytest.raises(ValueError):
        losses.pairwise_energy(arr(PHI), arr(PSI), "l1")
    with pytest.raises(ValueError):
        losses.diag_energy(arr(PHI), arr(PSI), "l1")


# ----------------------------------------------------------------------------- contrastive losses


@pytest.mark.parametrize("m", [LOGITS3, LOGITS4])
def test_binary_nce(m):
    np.testing.assert_allclose(float(losses.binary_nce(arr(m))), ref_binary_nce(m), **TOL)


def test_binary_nce_is_mean_over_b_squared():
    # all-zero logits: every entry has BCE = log 2, so the mean is log 2 (sum would be 16 log 2, per-row 4 log 2)
    np.testing.assert_allclose(float(losses.binary_nce(jnp.zeros((4, 4)))), math.log(2.0), **TOL)


def test_binary_nce_stable_for_large_logits():
    m = arr([[100.0, -100.0], [-100.0, 100.0]])
    assert float(losses.binary_nce(m)) < 1e-6
    bad = arr([[-100.0, 100.0], [100.0, -100.0]])
    np.testing.assert_allclose(float(losses.binary_nce(bad)), 100.0, rtol=1e-4)


@pytest.mark.parametrize("m", [LOGITS3, LOGITS4])
def test_balanced_nce(m):
    np.testing.assert_allclose(float(losses.balanced_nce(arr(m))), ref_balanced_nce(m), **TOL)


def test_balanced_nce_weighs_positive_as_all_negatives():
    # all-zero logits: per row BCE(0, 1) + mean of B-1 BCE(0, 0) = 2 log 2, whatever B (binary NCE gives log 2)
    for b in (2, 4, 16):
        np.testing.assert_allclose(float(losses.balanced_nce(jnp.zeros((b, b)))), 2 * math.log(2.0), **TOL)
    # a wrong negative costs 1/(B-1) of a wrong positive: 4x4, one off-diagonal entry at +100 vs one diagonal at -100
    neg_wrong = jnp.zeros((4, 4)).at[0, 1].set(100.0)
    pos_wrong = jnp.zeros((4, 4)).at[0, 0].set(-100.0)
    base = 2 * math.log(2.0)
    np.testing.assert_allclose(float(losses.balanced_nce(neg_wrong)) - base, (100.0 - math.log(2.0)) / 3 / 4, rtol=1e-4)
    np.testing.assert_allclose(float(losses.balanced_nce(pos_wrong)) - base, (100.0 - math.log(2.0)) / 4, rtol=1e-4)


@pytest.mark.parametrize("m", [LOGITS3, LOGITS4])
def test_infonce(m):
    np.testing.assert_allclose(float(losses.infonce_forward(arr(m))), ref_forward(m), **TOL)
    np.testing.assert_allclose(float(losses.infonce_backward(arr(m))), ref_backward(m), **TOL)
    np.testing.assert_allclose(
        float(losses.infonce_symmetric(arr(m))), 0.5 * (ref_forward(m) + ref_backward(m)), **TOL
    )


def test_forward_and_backward_differ_on_asymmetric_matrix():
    assert abs(ref_forward(LOGITS4) - ref_backward(LOGITS4)) > 1e-2  # the test data can tell them apart
    assert abs(float(losses.infonce_forward(arr(LOGITS4))) - float(losses.infonce_backward(arr(LOGITS4)))) > 1e-2


@pytest.mark.parametrize("m", [LOGITS3, LOGITS4])
def test_logsumexp_penalty_rowwise(m):
    np.testing.assert_allclose(float(losses.logsumexp_penalty(arr(m))), ref_penalty(m), **TOL)
    col_penalty = sum(lse(c) ** 2 for c in cols(m)) / len(m)
    assert abs(ref_penalty(m) - col_penalty) > 1e-3


def test_contrastive_loss_dispatch():
    m = LOGITS4
    refs = {
        "binary_nce": ref_binary_nce(m),
        "balanced_nce": ref_balanced_nce(m),
        "infonce_forward": ref_forward(m),
        "infonce_backward": ref_backward(m),
        "infonce_symmetric": 0.5 * (ref_forward(m) + ref_backward(m)),
        "cpc": ref_forward(m) + 0.01 * ref_penalty(m),
    }
    assert set(refs) == set(losses.CONTRASTIVE_LOSSES)
    for kind, ref in refs.items():
        np.testing.assert_allclose(float(losses.contrastive_loss(arr(m), kind)), ref, **TOL)
        np.testing.assert_allclose(
            float(losses.contrastive_loss(arr(m), kind, lse_coef=0.1)), ref + 0.1 * ref_penalty(m), **TOL
        )


def test_cpc_includes_lse_term():
    m = LOGITS3
    cpc = float(losses.contrastive_loss(arr(m), "cpc"))
    fwd = float(losses.contrastive_loss(arr(m), "infonce_forward"))
    np.testing.assert_allclose(cpc - fwd, 0.01 * ref_penalty(m), **TOL)
    assert 0.01 * ref_penalty(m) > 1e-3


def test_contrastive_loss_traced_lse_coef():
    f = jax.jit(losses.contrastive_loss, static_argnames="kind")
    out = f(arr(LOGITS3), kind="infonce_forward", lse_coef=arr(0.1))
    np.testing.assert_allclose(float(out), ref_forward(LOGITS3) + 0.1 * ref_penalty(LOGITS3), **TOL)


def test_unknown_loss():
    with pytest.raises(ValueError):
        losses.contrastive_loss(arr(LOGITS3), "flatnce")


# ----------------------------------------------------------------------------- C-learning


@pytest.mark.parametrize("m,w", [(LOGITS3, [0.5, 2.0, 20.0]), (LOGITS4, [1.0, 0.0, 3.5, 0.25])])
@pytest.mark.parametrize("gamma", [0.99, 0.5])
def test_c_learning_losses_match_loops(m, w, gamma):
    np.testing.assert_allclose(float(losses.c_learning_loss(arr(m), arr(w), gamma)), ref_c_learning(m, w, gamma), **TOL)
    np.testing.assert_allclose(
        float(losses.nce_c_learning_loss(arr(m), arr(w), gamma)), ref_c_learning(m, w, gamma, hybrid=True), **TOL
    )


def test_c_learning_uses_wraparound_pair():
    # only L[B-1, 0] changes: the loss must change (row B-1's random goal is column 0)
    m = np.array(LOGITS4, dtype=np.float32)
    m2 = m.copy()
    m2[3, 0] += 2.0
    w = arr([1.0, 1.0, 1.0, 1.0])
    for fn in (losses.c_learning_loss, losses.nce_c_learning_loss):
        a, b = float(fn(arr(m), w, 0.9)), float(fn(arr(m2), w, 0.9))
        gamma, neg_a, neg_b = 0.9, m[3, 0], m2[3, 0]
        k = 2.0 if fn is losses.nce_c_learning_loss else 1.0
        row_a = gamma * bce(neg_a, 1) + k * bce(neg_a, 0)
        row_b = gamma * bce(neg_b, 1) + k * bce(neg_b, 0)
        np.testing.assert_allclose(b - a, (row_b - row_a) / 4, **TOL)
    # entries that are neither diagonal nor (i, i+1 mod B) have no effect
    m3 = m.copy()
    m3[0, 2] += 5.0
    m3[3, 1] -= 5.0
    np.testing.assert_allclose(
        float(losses.c_learning_loss(arr(m3), w, 0.9)), float(losses.c_learning_loss(arr(m), w, 0.9)), **TOL
    )


def test_c_learning_weight_clip_and_stop_gradient():
    x = arr([-3.0, 0.0, 1.0, math.log(20.0) + 0.5, 50.0])
    w = np.asarray(losses.c_learning_weight(x))
    p = [1 / (1 + math.exp(-v)) for v in [-3.0, 0.0, 1.0]]
    np.testing.assert_allclose(w[:3], [q / (1 - q) for q in p], **TOL)
    np.testing.assert_allclose(w[3:], [20.0, 20.0], **TOL)
    g = jax.grad(lambda t: jnp.sum(losses.c_learning_weight(t)))(x)
    np.testing.assert_array_equal(np.asarray(g), 0.0)


def test_no_gradient_through_w():
    m, w = arr(LOGITS3), arr([0.5, 2.0, 3.0])
    for fn in (losses.c_learning_loss, losses.nce_c_learning_loss):
        gw = jax.grad(lambda w_: fn(m, w_, 0.9))(w)
        np.testing.assert_array_equal(np.asarray(gw), 0.0)
        gm = jax.grad(lambda m_: fn(m_, w, 0.9))(m)
        assert np.any(np.asarray(gm) != 0.0)


def test_num_td_rows():
    assert losses.num_td_rows(256, 0.99) == 2
    assert losses.num_td_rows(256, 0.5) == int(256 * 0.5 / 1.5)  # 85
    assert losses.num_td_rows(4, 0.99) == 0


# ----------------------------------------------------------------------------- metrics and twins


def test_contrastive_metrics():
    m = [[2.0, -1.0, 0.5], [0.3, 1.5, -2.0], [-0.7, 0.4, 0.1]]
    out = {k: float(v) for k, v in losses.contrastive_metrics(arr(m)).items()}
    # (L > 0) == I: row0 [T,T,F] row1 [F,T,T] row2 [T,F,T] -> 6/9
    np.testing.assert_allclose(out["binary_accuracy"], 6 / 9, **TOL)
    # row argmax: 0, 1, 1 -> 2/3
    np.testing.assert_allclose(out["categorical_accuracy"], 2 / 3, **TOL)
    np.testing.assert_allclose(out["logits_pos"], (2.0 + 1.5 + 0.1) / 3, **TOL)
    np.testing.assert_allclose(out["logits_neg"], (-1.0 + 0.5 + 0.3 - 2.0 - 0.7 + 0.4) / 6, **TOL)
    np.testing.assert_allclose(out["logsumexp"], ref_penalty(m), **TOL)


def test_reduce_twin():
    q = arr([[1.0, 5.0, -2.0], [3.0, 4.0, 0.0]])  # [E=2, B=3]
    np.testing.assert_allclose(np.asarray(losses.reduce_twin(q, "min")), [1.0, 4.0, -2.0])
    np.testing.assert_allclose(np.asarray(losses.reduce_twin(q, "mean")), [2.0, 4.5, -1.0])
    np.testing.assert_allclose(np.asarray(losses.reduce_twin(q.T, "min", axis=-1)), [1.0, 4.0, -2.0])
    with pytest.raises(ValueError):
        losses.reduce_twin(q, "max")
