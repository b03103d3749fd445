"""Networks: MLP encoders (LayerNorm, residual blocks), twin ensembles, the Atari CNN image encoder, tanh-Gaussian
policy.

Everything here is a flax.linen module; agents own the parameters and call ``apply``.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "gelu": nn.gelu,
    "swish": nn.swish,
    "tanh": jnp.tanh,
    "elu": nn.elu,
}

# fan_avg = Glorot uniform (the CRL critic and OGBench); fan_in = LeCun uniform (the CRL actor).
INITS = ("fan_avg", "fan_in")


def kernel_init(kind: str, scale: float = 1.0) -> Callable:
    """Returns a variance-scaling uniform initialiser: ``kind`` is 'fan_avg' or 'fan_in'."""
    if kind not in INITS:
        raise ValueError(f"unknown init {kind!r}; expected one of {INITS}")
    return nn.initializers.variance_scaling(scale, kind, "uniform")


class MLP(nn.Module):
    """Dense stack: hidden layers (Dense -> [LayerNorm] -> activation), then a linear output layer.

    With ``residual_depth = k > 0`` the hidden layers after the first are grouped into residual blocks of k
    layers, ``x = x + block(x)`` (the 1000-layer CRL architecture); ``len(hidden) - 1`` must be a multiple of k
    and all hidden widths equal. ``out_dim = 0`` returns the last hidden features.
    Input ``[..., in]`` -> output ``[..., out_dim]``.
    """

    hidden: Sequence[int]
    out_dim: int
    activation: str = "relu"
    layer_norm: bool = False
    residual_depth: int = 0
    init_kind: str = "fan_avg"
    out_init_scale: float = 1.0
    activate_final: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        init = kernel_init(self.init_kind)

        def layer(h, width):
            h = nn.Dense(width, kernel_init=init)(h)
            if self.layer_norm:
                h = nn.LayerNorm()(h)
            return act(h)

        hidden = list(self.hidden)
        if self.residual_depth > 0 and hidden:
            x = layer(x, hidden[0])
            rest = hidden[1:]
            for b in range(0, len(rest), self.residual_depth):
                skip = x
                for width in rest[b : b + self.residual_depth]:
                    x = layer(x, width)
                x = x + skip
        else:
            for width in hidden:
                x = layer(x, width)
        if self.out_dim:
            x = nn.Dense(self.out_dim, kernel_init=kernel_init(self.init_kind, self.out_init_scale))(x)
            if self.activate_final:
                x = act(x)
        return x


def validate_mlp(hidden: Sequence[int], residual_depth: int, what: str) -> None:
    """Raises ValueError if ``hidden``/``residual_depth`` cannot build a residual MLP."""
    if any(h <= 0 for h in hidden):
        raise ValueError(f"{what}: hidden sizes must be positive, got {tuple(hidden)}")
    if residual_depth < 0:
        raise ValueError(f"{what}: residual depth must be >= 0, got {residual_depth}")
    if residual_depth:
        if len(set(hidden)) != 1 or (len(hidden) - 1) % residual_depth or len(hidden) < 1 + residual_depth:
            raise ValueError(
                f"{what}: residual blocks of {residual_depth} need 1 + k*{residual_depth} hidden layers of equal "
                f"width, got {tuple(hidden)}"
            )


class Encoders(nn.Module):
    """The critic's two encoders: phi(s, a) and psi(g), separate parameters, same shape.

    ``__call__(sa [..., s+a], g [..., g]) -> (phi [..., repr], psi [..., repr])``.
    """

    hidden: Sequence[int]
    repr_dim: int
    activation: str = "relu"
    layer_norm: bool = False
    residual_depth: int = 0
    init_kind: str = "fan_avg"

    def setup(self):
        kw = dict(
            hidden=self.hidden,
            out_dim=self.repr_dim,
            activation=self.activation,
            layer_norm=self.layer_norm,
            residual_depth=self.residual_depth,
            init_kind=self.init_kind,
        )
        self.phi = MLP(**kw)
        self.psi = MLP(**kw)

    def __call__(self, sa: jax.Array, g: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self.phi(sa), self.psi(g)

    def encode_sa(self, sa: jax.Array) -> jax.Array:
        return self.phi(sa)

    def encode_g(self, g: jax.Array) -> jax.Array:
        return self.psi(g)


def ensemble(module_cls: type[nn.Module], size: int) -> type[nn.Module]:
    """Wraps a module into an ensemble of ``size`` independent copies (one vmapped parameter set).

    Outputs gain a leading ensemble axis ``[size, ...]``; inputs are shared.
    """
    return nn.vmap(
        module_cls,
        variable_axes={"params": 0},
        split_rngs={"params": True},
        in_axes=None,
        out_axes=0,
        axis_size=size,
        methods=["__call__", "encode_sa", "encode_g"],
    )


CONV_IMPLS = ("auto", "conv", "patches")


def conv_as_matmul(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """The SAME-padded convolution of ``x [N, H, W, C]`` with ``kernel [k, k, C, O]`` at ``stride``, computed as one
    matmul of the input's patches with the flattened kernel. Returns ``[N, ceil(H/s), ceil(W/s), O]``.

    When s divides k the input is first folded into s x s blocks (space-to-depth), so a patch is (k/s)^2 slices of
    blocks instead of k^2 slices of pixels; the kernel's rows are permuted to the blocks' order instead of the
    (larger) patches.
    """
    k, s = kernel.shape[0], stride
    n, h, w, c = x.shape
    out_h, out_w = -(-h // s), -(-w // s)
    pad_h, pad_w = max((out_h - 1) * s + k - h, 0), max((out_w - 1) * s + k - w, 0)
    if k % s:  # plain patches: k^2 strided slices, ordered (row offset, column offset, channel) as the kernel
        x = jnp.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
        rows, cols = s * (out_h - 1) + 1, s * (out_w - 1) + 1
        patches = jnp.concatenate([x[:, i : i + rows : s, j : j + cols : s] for i in range(k) for j in range(k)], -1)
        return patches @ kernel.reshape(k * k * c, -1)
    # pad to whole blocks (the extra rows and columns at the end are never read), fold s x s blocks into channels
    hb, wb = -(-(h + pad_h) // s), -(-(w + pad_w) // s)
    x = jnp.pad(x, ((0, 0), (pad_h // 2, hb * s - h - pad_h // 2), (pad_w // 2, wb * s - w - pad_w // 2), (0, 0)))
    x = x.reshape(n, hb, s, wb, s, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, hb, wb, s * s * c)
    kb = k // s
    patches = jnp.concatenate([x[:, i : i + out_h, j : j + out_w] for i in range(kb) for j in range(kb)], -1)
    # kernel row (i*s + r, j*s + q, c) -> patch entry (i, j, r, q, c)
    kernel = kernel.reshape(kb, s, kb, s, c, -1).transpose(0, 2, 1, 3, 4, 5)
    return patches @ kernel.reshape(k * k * c, -1)


class SameConv(nn.Module):
    """A 2-D convolution with SAME padding and a bias, with ``nn.Conv``'s parameters (``kernel [k, k, in, out]``,
    LeCun-normal init; ``bias [out]``, zeros) and outputs.

    ``impl``: 'conv' (XLA's convolution), 'patches' (``conv_as_matmul``), or 'auto' = patches on CPU, conv
    elsewhere. XLA:CPU runs convolutions inside a while loop, such as the learner's
    ``lax.scan`` over updates, 20-40x slower than outside one; matmuls keep their speed there.
    """

    features: int
    kernel_size: int
    stride: int
    impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, s = self.kernel_size, self.stride
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        impl = self.impl if self.impl != "auto" else "patches" if jax.default_backend() == "cpu" else "conv"
        if impl == "patches":
            y = conv_as_matmul(x, kernel, s)
        elif impl == "conv":
            y = jax.lax.conv_general_dilated(x, kernel, (s, s), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        else:
            raise ValueError(f"unknown conv impl {self.impl!r}; expected one of {CONV_IMPLS}")
        return y + bias


class AtariCNN(nn.Module):
    """The CRL paper's image encoder (the DQN/Atari torso): Conv 32 8x8/4 -> Conv 64 4x4/2 -> Conv 64 3x3/1, ReLU
    after each, SAME padding, flattened; no linear head and no normalisation.

    Input: images flattened to ``[..., H*W*C]`` (uint8 or float, pixel values in [0, 255]); they are reshaped to
    ``image_shape`` and scaled by 1/255 here, so replay buffers can stay uint8. Returns ``[..., cnn_out_dim(shape)]``
    float32 features (4096 for 64x64 images). ``impl``: how the convolutions run (see ``SameConv``).
    """

    image_shape: tuple[int, int, int]
    impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        lead = x.shape[:-1]
        x = x.reshape((-1, *self.image_shape)).astype(jnp.float32) / 255.0
        for i, (features, kernel, stride) in enumerate(((32, 8, 4), (64, 4, 2), (64, 3, 1))):
            x = nn.relu(SameConv(features, kernel, stride, self.impl, name=f"Conv_{i}")(x))
        return x.reshape((*lead, -1))


def cnn_out_dim(image_shape: tuple[int, int, int]) -> int:
    """Width of ``AtariCNN``'s output for images of ``image_shape``: 64 * ceil(H/8) * ceil(W/8) (SAME padding)."""
    h, w, _ = image_shape
    return 64 * math.ceil(math.ceil(h / 4) / 2) * math.ceil(math.ceil(w / 4) / 2)


class ImageActor(nn.Module):
    """A goal-conditioned actor on images: its own ``AtariCNN`` on the state and goal images stacked along the
    channels (2C channels), whose features feed ``head`` (a ``TanhGaussianActor`` or any module mapping features to
    ``(mean, log_std)``).

    Input: ``[..., 2*H*W*C]``, the flat concatenation ``[obs, goal]`` of two flattened images, as every actor
    gets it. Returns what ``head`` returns.
    """

    image_shape: tuple[int, int, int]
    head: nn.Module

    @nn.compact
    def __call__(self, obs_goal: jax.Array) -> tuple[jax.Array, jax.Array]:
        pixels = math.prod(self.image_shape)
        return self.head(stacked_image_features(obs_goal[..., :pixels], obs_goal[..., pixels:], self.image_shape))


def stacked_image_features(state: jax.Array, goal: jax.Array, image_shape: tuple[int, int, int]) -> jax.Array:
    """Features of an ``AtariCNN`` (a submodule named ``cnn`` of the calling module) on the flattened state and
    goal images ``[..., H*W*C]`` stacked along the channels (2C channels)."""
    h, w, c = image_shape
    lead = state.shape[:-1]
    stacked = jnp.concatenate([state.reshape((*lead, h, w, c)), goal.reshape((*lead, h, w, c))], axis=-1)
    return AtariCNN((h, w, 2 * c), name="cnn")(stacked.reshape((*lead, h * w * 2 * c)))


class TanhGaussianActor(nn.Module):
    """pi(a | s, g): MLP trunk, linear heads for the mean and the log-std of a tanh-squashed Gaussian.

    log-std is squashed by tanh into [log_std_min, log_std_max], a floor that keeps the policy from collapsing
    to std ~ 1e-6 (the failure the original code shows with alpha = 0). Returns ``(mean [..., A], log_std [..., A])``
    of the pre-tanh Gaussian.
    """

    hidden: Sequence[int]
    act_dim: int
    activation: str = "relu"
    layer_norm: bool = False
    residual_depth: int = 0
    log_std_min: float = -5.0
    log_std_max: float = 2.0

    @nn.compact
    def __call__(self, obs_goal: jax.Array) -> tuple[jax.Array, jax.Array]:
        h = MLP(
            hidden=self.hidden,
            out_dim=0,
            activation=self.activation,
            layer_norm=self.layer_norm,
            residual_depth=self.residual_depth,
            init_kind="fan_in",
        )(obs_goal)
        mean = nn.Dense(self.act_dim, kernel_init=kernel_init("fan_in"))(h)
        raw = nn.Dense(self.act_dim, kernel_init=kernel_init("fan_in"))(h)
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (jnp.tanh(raw) + 1.0)
        return mean, log_std


# A Python float (not jnp.log at import, which would start the JAX backend when crl is imported); same f32 value.
_LOG_2PI = math.log(2.0 * math.pi)


def _log_one_minus_tanh_sq(u: jax.Array) -> jax.Array:
    """log(1 - tanh(u)^2) in a form that is finite for large |u|."""
    return 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u))


def tanh_gaussian_sample(key: jax.Array, mean: jax.Array, log_std: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Samples a = tanh(mean + std * eps). Returns ``(action [..., A], log_prob [...])``."""
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    u = mean + jnp.exp(log_std) * eps
    log_prob = jnp.sum(-0.5 * eps**2 - log_std - 0.5 * _LOG_2PI - _log_one_minus_tanh_sq(u), axis=-1)
    return jnp.tanh(u), log_prob


def tanh_gaussian_log_prob(mean: jax.Array, log_std: jax.Array, action: jax.Array, clip: float = 0.999) -> jax.Array:
    """log pi(action) for the tanh-squashed Gaussian; actions are clipped to +-clip first. Returns ``[...]``."""
    u = jnp.arctanh(jnp.clip(action, -clip, clip))
    z = (u - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * _LOG_2PI - _log_one_minus_tanh_sq(u), axis=-1)
