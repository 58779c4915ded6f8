"""Weight initialisers; biases always start at zero.

- he_normal:      W ~ N(0, 2 / fan_in)                          (relu family)
- he_uniform:     W ~ U(-sqrt(6 / fan_in), +sqrt(6 / fan_in))
- glorot_normal:  W ~ N(0, 2 / (fan_in + fan_out))              (tanh, sigmoid, identity)
- glorot_uniform: W ~ U(-sqrt(6 / (fan_in + fan_out)), +...)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from mlpcli.errors import choose

Initializer = Callable[[np.random.Generator, int, int], NDArray[np.float64]]


def he_normal(rng: np.random.Generator, fan_in: int, fan_out: int) -> NDArray[np.float64]:
    return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=(fan_in, fan_out))


def he_uniform(rng: np.random.Generator, fan_in: int, fan_out: int) -> NDArray[np.float64]:
    limit = math.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=(fan_in, fan_out))


def glorot_normal(rng: np.random.Generator, fan_in: int, fan_out: int) -> NDArray[np.float64]:
    return rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), size=(fan_in, fan_out))


def glorot_uniform(rng: np.random.Generator, fan_in: int, fan_out: int) -> NDArray[np.float64]:
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out))


INITIALIZERS: dict[str, Initializer] = {
    f.__name__: f for f in (he_normal, he_uniform, glorot_normal, glorot_uniform)
}


def get(name: str) -> Initializer:
    return choose("initializer", name, INITIALIZERS)
