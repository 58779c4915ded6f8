"""scikit-learn estimators on mlpcli's core: `MLPClassifier`, `MLPRegressor` and `load`.

`fit` runs exactly what `mlpcli train` runs (`pipeline.train_frame`: column selection, the
validation split, preprocessing of mixed-type columns fitted on the training rows, the network,
the loop with early stopping), so a fitted estimator holds the contents of a model file: `save`
writes the `.npz` that `mlpcli predict` reads, and `load` turns any model file, also one written
by `mlpcli train`, back into a fitted estimator.

Parameters use scikit-learn's names where it has them; `options` takes any other `train` option.
Unlike the command line, the estimators compute in float64 by default (`dtype`), as
scikit-learn's MLP does: BLAS rounds a float32 row differently depending on its position in a
block, so float32 predictions change in the 8th digit when rows are reordered.

NumPy arrays and pandas DataFrames are both accepted. A DataFrame keeps its column names and
types (text columns are one-hot encoded, missing values imputed), and at predict time its columns
are matched by name in any order, extra columns ignored, as `mlpcli predict` does (scikit-learn
asks for the same columns in the same order; its check of that is not among `check_estimator`'s).
scikit-learn (the `sklearn` extra) is imported when this module is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from mlpcli.errors import MlpcliError, install_hint

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.utils.multiclass import check_classification_targets, type_of_target
    from sklearn.utils.validation import (
        _check_sample_weight,
        check_array,
        check_consistent_length,
        check_is_fitted,
        column_or_1d,
        validate_data,
    )
except ImportError as exc:  # pragma: no cover - exercised without the extra only
    raise ImportError(
        f"mlpcli.sklearn needs scikit-learn, which is not installed: {install_hint('sklearn')}."
    ) from exc

if TYPE_CHECKING:
    import pandas as pd

    from mlpcli.config import Settings
    from mlpcli.trained import TrainedModel

__all__ = ["MLPClassifier", "MLPRegressor", "load"]

#: Estimator parameter (scikit-learn's vocabulary) -> the `mlpcli train` option it sets.
PARAMETERS: dict[str, str] = {
    "hidden_layer_sizes": "hidden",
    "activation": "activation",
    "optimizer": "optimizer",
    "learning_rate": "lr",
    "batch_size": "batch_size",
    "max_iter": "epochs",
    "n_iter_no_change": "patience",
    "validation_fraction": "valid_fraction",
    "weight_decay": "weight_decay",
    "dropout": "dropout",
    "batchnorm": "batchnorm",
    "scale": "scale",
    "impute": "impute",
    "dtype": "dtype",
    "class_weight": "class_weight",
    "random_state": "seed",
}

#: `train` options that `options=` may set besides these parameters: every preprocessing, model
#: and training option, and `categorical`. Column selection and reading belong to X and y.
_DATA_OPTIONS = ("categorical",)

#: Checks of `sklearn.utils.estimator_checks` that cannot pass by design, with the reason; the
#: test suite passes this to `parametrize_with_checks(expected_failed_checks=...)`, the
#: mechanism scikit-learn documents for third-party estimators since 1.6.
EXPECTED_FAILED_CHECKS: dict[str, str] = {
    "check_sample_weight_equivalence_on_dense_data": (
        "a weight of 2 is not the same as a repeated row: the validation split, the shuffled "
        "mini-batches and early stopping see the rows, not their weights"
    ),
    "check_class_weight_classifiers": (
        "early stopping keeps the epoch with the best unweighted validation loss, as mlpcli "
        "train --class-weight does, and that undoes the check's extreme weights (1000 : 0.0001) "
        "within 20 epochs; with validation_fraction=0 the check's condition holds"
    ),
}

#: Metadata key that records what the estimator needs beyond the model file's own contents.
ESTIMATOR_KEY = "estimator"


@contextlib.contextmanager
def _as_value_errors() -> Iterator[None]:
    """mlpcli's errors are ValueErrors in the Python API, as scikit-learn's conventions ask."""
    try:
        yield
    except MlpcliError as exc:
        raise ValueError(str(exc)) from exc


def _jsonable(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _names(prefix: str, n: int, taken: set[str]) -> list[str]:
    """`prefix`, or `prefix0`...: target names that no feature column uses."""
    while prefix in taken or any(f"{prefix}{j}" in taken for j in range(n)):
        prefix = f"_{prefix}"
    return [prefix] if n == 1 else [f"{prefix}{j}" for j in range(n)]


class _MLPEstimator(BaseEstimator):
    """What both estimators share: settings from parameters, input handling, the fitted model."""

    _y_numeric: ClassVar[bool] = False

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (64, 32),
        activation: str = "relu",
        optimizer: str = "adam",
        learning_rate: float | None = None,
        batch_size: int | str = "auto",
        max_iter: int = 200,
        n_iter_no_change: int | None = 20,
        validation_fraction: float = 0.2,
        weight_decay: float | None = None,
        dropout: float = 0.0,
        batchnorm: bool = False,
        scale: str = "standard",
        impute: str = "median",
        dtype: str = "float64",
        random_state: int | None = 0,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.n_iter_no_change = n_iter_no_change
        self.validation_fraction = validation_fraction
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.batchnorm = batchnorm
        self.scale = scale
        self.impute = impute
        self.dtype = dtype
        self.random_state = random_state
        self.options = options

    # -- settings

    def _settings(self, task: str, targets: list[str], features: list[str]) -> Settings:
        """The `train` settings these parameters stand for (validated there, with its messages)."""
        from mlpcli import config

        options = dict(self.options or {})
        allowed = {
            name
            for name, (section, _) in config.all_fields().items()
            if section != "data" or name in _DATA_OPTIONS
        }
        for key in options:
            name = config.normalise_key(key)
            if name in PARAMETERS.values():
                param = next(p for p, o in PARAMETERS.items() if o == name)
                raise ValueError(f"options={{{key!r}: ...}}: set it with {param}= instead.")
            if name in config.all_fields() and name not in allowed:
                raise ValueError(
                    f"options={{{key!r}: ...}}: the estimator takes the data from X and y; "
                    f"'{key}' is a reading or column option of mlpcli train."
                )
        params = self.get_params(deep=False)
        values: dict[str, Any] = {
            option: params[name] for name, option in PARAMETERS.items() if name in params
        }
        values["seed"] = 0 if self.random_state is None else self.random_state
        # `None` means "not given" to the option resolver, but "no early stopping" here.
        values["patience"] = "none" if self.n_iter_no_change is None else self.n_iter_no_change
        values["hidden"] = list(self.hidden_layer_sizes)
        values.update(target=targets, features=features, task=task, id=[])
        with _as_value_errors():
            return config.resolve(values, base=config.resolve(options))

    # -- input

    def _frame(self, X: Any, reset: bool) -> pd.DataFrame:
        """X as a DataFrame of raw feature columns: a DataFrame keeps its names and types (and
        is matched by name at predict time); an array gets the fitted column names by position."""
        import pandas as pd

        if isinstance(X, pd.DataFrame):
            if reset:
                validate_data(self, X, skip_check_array=True, reset=True)
                if X.shape[0] == 0 or X.shape[1] == 0:
                    raise ValueError(f"Found array with shape {X.shape}; fit needs data.")
            frame = X.copy(deep=False)
            frame.columns = [str(c) for c in X.columns]
            if reset:
                self.columns_ = list(frame.columns)
            return frame
        array = validate_data(self, X, reset=reset, dtype="numeric", ensure_all_finite="allow-nan")
        if reset:
            self.columns_ = [f"x{j}" for j in range(array.shape[1])]
        return pd.DataFrame(array, columns=self.columns_, copy=False)

    def _fit_frame(
        self, X: Any, Y: NDArray[Any], task: str, sample_weight: Any, prefix: str = "y"
    ) -> None:
        """Train on X and the target matrix Y (n, t) through `pipeline.train_frame`."""
        from mlpcli import pipeline

        frame = self._frame(X, reset=True)
        check_consistent_length(frame, Y)
        if len(frame) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 samples; got 1 sample.")
        targets = _names(prefix, Y.shape[1], set(frame.columns))
        features = list(frame.columns)
        frame = frame.assign(**{t: Y[:, j] for j, t in enumerate(targets)})
        weights = None
        if sample_weight is not None:
            weights = _check_sample_weight(sample_weight, frame, dtype=np.float64)
        settings = self._settings(task, targets, features)
        with _as_value_errors():
            outcome = pipeline.train_frame(
                frame, settings, weights, command=[f"mlpcli.sklearn.{type(self).__name__}.fit"]
            )
        self._set_contents(outcome.metadata, outcome.arrays)

    # -- the fitted model

    def _estimator_meta(self) -> dict[str, Any]:
        return {"class": type(self).__name__, "columns": self.columns_}

    def _set_contents(self, metadata: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        from mlpcli import trained

        metadata = {**metadata, ESTIMATOR_KEY: {**metadata.get(ESTIMATOR_KEY, {})}}
        metadata[ESTIMATOR_KEY].update(self._estimator_meta())
        with _as_value_errors():
            self.model_: TrainedModel = trained.trained_from_contents(metadata, arrays)
        self.metadata_ = metadata
        self.arrays_ = arrays
        training = metadata["training"]
        self.n_iter_ = int(training["epochs_run"])
        self.best_epoch_ = int(training["best_epoch"])
        self.loss_curve_ = [float(r["train_loss"]) for r in training["history"]]

    def _outputs(self, X: Any) -> NDArray[np.floating]:
        """Network outputs for X, bit for bit those `mlpcli predict` computes."""
        import pandas as pd

        from mlpcli import predicting

        check_is_fitted(self, "model_")
        frame = self._frame(X, reset=False)
        with _as_value_errors():
            if isinstance(X, pd.DataFrame):
                predicting.check_columns(self.model_, frame.columns, "X")
            return self.model_.predict_outputs(frame)

    def save(self, path: str | Path) -> None:
        """Write the fitted model as the `.npz` model file `mlpcli predict` and `inspect` read."""
        from mlpcli import modelfile

        check_is_fitted(self, "model_")
        with _as_value_errors():
            modelfile.save(path, self.arrays_, self.metadata_, option="path")

    def __getstate__(self) -> dict[str, Any]:
        # The model file's arrays and metadata are the whole state: no network object pickled.
        state = dict(super().__getstate__())  # object.__getstate__ returns __dict__ itself
        state.pop("model_", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if "arrays_" in state:
            self._set_contents(state["metadata_"], state["arrays_"])

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # imputed with the training rows' statistics
        tags.non_deterministic = False  # the same random_state gives the same model
        return tags


class MLPClassifier(ClassifierMixin, _MLPEstimator):
    """A multilayer perceptron classifier trained as `mlpcli train` trains it.

    Binary and multiclass targets (any label type), and multilabel targets as a 0/1 indicator
    matrix. `class_weight` is "balanced" or a mapping label -> weight; `options` takes any other
    `mlpcli train` option by name, e.g. `{"schedule": "cosine", "categorical": ["batch"]}`.
    """

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (64, 32),
        activation: str = "relu",
        optimizer: str = "adam",
        learning_rate: float | None = None,
        batch_size: int | str = "auto",
        max_iter: int = 200,
        n_iter_no_change: int | None = 20,
        validation_fraction: float = 0.2,
        weight_decay: float | None = None,
        dropout: float = 0.0,
        batchnorm: bool = False,
        scale: str = "standard",
        impute: str = "median",
        dtype: str = "float64",
        class_weight: str | Mapping[Any, float] | None = None,
        random_state: int | None = 0,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            optimizer=optimizer,
            learning_rate=learning_rate,
            batch_size=batch_size,
            max_iter=max_iter,
            n_iter_no_change=n_iter_no_change,
            validation_fraction=validation_fraction,
            weight_decay=weight_decay,
            dropout=dropout,
            batchnorm=batchnorm,
            scale=scale,
            impute=impute,
            dtype=dtype,
            random_state=random_state,
            options=options,
        )
        self.class_weight = class_weight

    def _settings(self, task: str, targets: list[str], features: list[str]) -> Settings:
        settings = super()._settings(task, targets, features)
        weight = self.class_weight
        if isinstance(weight, Mapping):
            from mlpcli.cells import level_string

            # Keys are class labels of any type; the model file names classes by their strings.
            weight = {level_string(k): float(v) for k, v in weight.items()}
            with _as_value_errors():
                return settings.replace(class_weight=weight)
        return settings

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPClassifier:
        """Fit on X (array or DataFrame) and class labels y, or a 0/1 matrix (multilabel)."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        y = check_array(y, ensure_2d=False, dtype=None, input_name="y")
        check_classification_targets(y)
        kind = type_of_target(y)
        if kind == "multilabel-indicator":
            self.classes_ = np.arange(y.shape[1])
            self._kind = "multilabel"
            Y = y.astype(np.intp)
        else:
            if kind not in ("binary", "multiclass"):
                raise ValueError(f"{type(self).__name__} does not support {kind} targets.")
            y = column_or_1d(y, warn=True)
            self.classes_ = np.unique(y)
            if len(self.classes_) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs at least 2 classes; y has 1 class "
                    f"({self.classes_[0]!r})."
                )
            self._kind = "binary" if len(self.classes_) == 2 else "multiclass"
            Y = y.reshape(-1, 1)
        self._fit_frame(X, Y, self._kind, sample_weight)
        return self

    def _estimator_meta(self) -> dict[str, Any]:
        return {
            **super()._estimator_meta(),
            "classes": [_jsonable(c) for c in self.classes_],
            "y_dtype": str(np.asarray(self.classes_).dtype),
        }

    def _set_contents(self, metadata: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        super()._set_contents(metadata, arrays)
        from mlpcli.cells import level_string

        encoder = self.model_.encoder
        if encoder.task == "multilabel":
            self._columns_of_classes = np.arange(len(encoder.labels))
            return
        position = {label: j for j, label in enumerate(encoder.labels)}
        try:  # predict_proba's columns follow classes_, whatever order the model file keeps
            self._columns_of_classes = np.array([position[level_string(c)] for c in self.classes_])
        except KeyError as exc:
            raise ValueError(f"class {exc} is not one of the model's labels") from None
        self._class_of_label = dict(
            zip(encoder.labels, self.classes_[np.argsort(self._columns_of_classes)], strict=True)
        )

    def predict_proba(self, X: Any) -> NDArray[np.floating]:
        """Class probabilities, columns in the order of `classes_` (multilabel: per label)."""
        from mlpcli import task

        P = self._outputs(X)
        proba = task.get(self.model_.task).probabilities(P)[:, self._columns_of_classes]
        return proba.astype(np.float64)

    def predict(self, X: Any) -> NDArray[Any]:
        """Labels by the model's decision rule (argmax; probability >= 0.5 for binary and
        multilabel), as `mlpcli predict` decides them."""
        P = self._outputs(X)
        decided = self.model_.encoder.decode(P)
        if self.model_.task == "multilabel":
            return np.asarray(decided).astype(np.intp)
        return np.array(
            [self._class_of_label[label] for label in decided], dtype=self.classes_.dtype
        )

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _MLPEstimator):
    """A multilayer perceptron regressor trained as `mlpcli train` trains it; one target or
    several (multi-output), standardised internally and predicted in the original units.
    `options` takes any other `mlpcli train` option by name."""

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """Fit on X (array or DataFrame) and numeric targets y, (n,) or (n, t)."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        y = check_array(y, ensure_2d=False, dtype="numeric", input_name="y")
        self._y_2d = y.ndim == 2
        Y = y.reshape(len(y), -1).astype(np.float64)
        self._fit_frame(X, Y, "regression", sample_weight)
        return self

    def _estimator_meta(self) -> dict[str, Any]:
        return {**super()._estimator_meta(), "y_2d": self._y_2d}

    def predict(self, X: Any) -> NDArray[np.float64]:
        """Predictions in the target's units: (n,) for a 1-D y, else (n, t)."""
        P = self._outputs(X)
        values = np.asarray(self.model_.encoder.decode(P), dtype=np.float64)
        return values if self._y_2d else values.ravel()

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


def load(path: str | Path) -> MLPClassifier | MLPRegressor:
    """A fitted estimator from any mlpcli model file (from `mlpcli train` or `save`)."""
    from mlpcli import config, modelfile

    with _as_value_errors():
        meta, arrays = modelfile.load(path)
    recorded = meta.get(ESTIMATOR_KEY, {})
    settings = config.Settings.from_dict(meta.get("settings", {}))
    estimator: MLPClassifier | MLPRegressor
    estimator = MLPRegressor() if meta["task"] == "regression" else MLPClassifier()
    estimator.set_params(**_parameters(settings, estimator))
    features = list(meta.get("feature_columns", []))
    estimator.columns_ = list(recorded.get("columns", features))
    estimator.n_features_in_ = len(estimator.columns_)
    if "columns" not in recorded or recorded["columns"] != [f"x{j}" for j in range(len(features))]:
        estimator.feature_names_in_ = np.asarray(estimator.columns_, dtype=object)
    target = meta["target"]
    if isinstance(estimator, MLPClassifier):
        if meta["task"] == "multilabel":
            estimator.classes_ = np.arange(len(target["labels"]))
        else:
            classes = recorded.get("classes", target["labels"])
            estimator.classes_ = np.asarray(classes, dtype=recorded.get("y_dtype"))
        estimator._kind = meta["task"]
    else:
        estimator._y_2d = bool(recorded.get("y_2d", len(target["targets"]) > 1))
    estimator._set_contents(meta, arrays)
    return estimator


def _parameters(settings: Settings, estimator: _MLPEstimator) -> dict[str, Any]:
    """The estimator parameters (and `options`) that reproduce a model file's settings."""
    flat = {
        **settings.preprocess.__dict__,
        **settings.model.__dict__,
        **settings.train.__dict__,
        "valid_fraction": settings.data.valid_fraction,
    }
    names = estimator.get_params(deep=False)
    params: dict[str, Any] = {p: flat[o] for p, o in PARAMETERS.items() if p in names}
    params["hidden_layer_sizes"] = tuple(settings.model.hidden)
    activation = settings.model.activation
    params["activation"] = activation[0] if len(set(activation)) == 1 else ",".join(activation)
    defaults = type(settings)()
    default_flat = {
        **defaults.preprocess.__dict__,
        **defaults.model.__dict__,
        **defaults.train.__dict__,
    }
    options = {
        k: v
        for k, v in flat.items()
        if k in default_flat and k not in PARAMETERS.values() and v != default_flat[k]
    }
    if settings.data.categorical:
        options["categorical"] = list(settings.data.categorical)
    params["options"] = options or None
    return params
