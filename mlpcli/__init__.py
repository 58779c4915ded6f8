"""mlpcli: train multilayer perceptrons on tabular data, with a pure NumPy core."""

__version__ = "0.1.0"
