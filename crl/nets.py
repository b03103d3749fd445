"""Networks: MLP encoders (LayerNorm, residual blocks), twin ensembles, tanh-Gaussian policy.

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
