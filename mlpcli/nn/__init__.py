"""The NumPy network core: activations, losses, initialisers, layers and the MLP."""

from mlpcli.nn.network import MLP

__all__ = ["MLP"]
