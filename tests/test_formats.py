"""Parquet, Feather, Excel and AnnData tables: the sample data in each format gives the same
model as the CSV (identical weights for the same seed) and the same predictions, and each
format's own options (--sheet, --layer) and failures give one-line errors.

The files are written here from the sample CSV. The .h5ad files are written with h5py in
AnnData's documented on-disk layout (dense and CSR matrices, categorical obs columns, layers);
when the anndata package is installed, a file written by anndata itself is read too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import EXPRESSION
from typer.testing import CliRunner

from mlpcli.cli import app

pytestmark = pytest.mark.usefixtures("plain_terminal")

TRAIN = ("--target", "subtype", "--epochs", "3", "--hidden", "8", "--seed", "3", "-q")


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def sample_frame() -> pd.DataFrame:
    return pd.read_csv(EXPRESSION, dtype={"sample_id": "str"})


def _strings(group: object, name: str, values: list[str]) -> None:
    import h5py

    dataset = group.create_dataset(name, data=np.array(values, dtype=object),  # type: ignore[attr-defined]
                                   dtype=h5py.string_dtype())  # fmt: skip
    dataset.attrs.update({"encoding-type": "string-array", "encoding-version": "0.2.0"})


def _dataframe(group: object, index: list[str], columns: pd.DataFrame) -> None:
    attrs = group.attrs  # type: ignore[attr-defined]
    attrs.update({"encoding-type": "dataframe", "encoding-version": "0.2.0", "_index": "_index"})
    import h5py

    order = np.array(list(columns.columns), dtype=object)
    attrs.create("column-order", data=order, shape=order.shape, dtype=h5py.string_dtype())
    _strings(group, "_index", index)
    for name in columns.columns:
        codes, categories = pd.factorize(columns[name], sort=True)
        node = group.create_group(name)  # type: ignore[attr-defined]
        node.attrs.update(
            {"encoding-type": "categorical", "encoding-version": "0.2.0", "ordered": False}
        )
        node.create_dataset("codes", data=codes.astype(np.int8))
        _strings(node, "categories", [str(c) for c in categories])


def _matrix(parent: object, name: str, X: np.ndarray, sparse: bool) -> None:
    if not sparse:
        dataset = parent.create_dataset(name, data=X)  # type: ignore[attr-defined]
        dataset.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
        return
    rows, cols = np.nonzero(X)
    node = parent.create_group(name)  # type: ignore[attr-defined]
    node.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0"})
    node.attrs["shape"] = np.array(X.shape)
    node.create_dataset("data", data=X[rows, cols])
    node.create_dataset("indices", data=cols.astype(np.int32))
    node.create_dataset("indptr", data=np.r_[0, np.cumsum(np.bincount(rows, minlength=len(X)))])


def write_h5ad(
    path: Path,
    frame: pd.DataFrame,
    sparse: bool = False,
    layers: dict[str, np.ndarray] | None = None,
) -> Path:
    """obs = batch and subtype (categorical), obs_names = sample_id, X = the genes."""
    h5py = pytest.importorskip("h5py")
    genes = [c for c in frame.columns if c.startswith("GENE")]
    with h5py.File(path, "w") as f:
        f.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
        _dataframe(f.create_group("obs"), list(frame["sample_id"]), frame[["batch", "subtype"]])
        _dataframe(f.create_group("var"), genes, frame[[]])
        _matrix(f, "X", frame[genes].to_numpy(np.float32), sparse)
        group = f.create_group("layers")
        group.attrs.update({"encoding-type": "dict", "encoding-version": "0.1.0"})
        for name, values in (layers or {}).items():
            _matrix(group, name, values, sparse)
    return path


def write(fmt: str, path: Path) -> Path:
    frame = sample_frame()
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
        frame.to_parquet(path)
    elif fmt == "feather":
        pytest.importorskip("pyarrow")
        frame.to_feather(path)
    elif fmt == "xlsx":
        pytest.importorskip("openpyxl")
        frame.to_excel(path, index=False, sheet_name="samples")
    elif fmt in ("h5ad", "h5ad-sparse"):
        write_h5ad(path, frame, sparse=fmt == "h5ad-sparse")
    return path


FORMATS = {
    "parquet": "data.parquet",
    "feather": "data.feather",
    "xlsx": "data.xlsx",
    "h5ad": "data.h5ad",
    "h5ad-sparse": "sparse.h5ad",
}


def weights(model: Path) -> dict[str, np.ndarray]:
    with np.load(model) as archive:
        return {k: archive[k] for k in archive.files if k.startswith("net.")}


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("csv")
    model = folder / "m.npz"
    code, _, stderr = run("train", EXPRESSION, "--id", "sample_id", *TRAIN, "--out", model)
    assert code == 0, stderr
    code, _, stderr = run("predict", model, EXPRESSION, "--out", folder / "p.csv")
    assert code == 0, stderr
    return model, pd.read_csv(folder / "p.csv", dtype={"sample_id": "str"})


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_each_format_gives_the_csv_model_and_predictions(
    tmp_path: Path, csv_run: tuple[Path, pd.DataFrame], fmt: str
) -> None:
    csv_model, csv_predictions = csv_run
    data = write(fmt, tmp_path / FORMATS[fmt])
    model = tmp_path / "m.npz"
    ids = () if fmt.startswith("h5ad") else ("--id", "sample_id")  # h5ad: obs_names is the ID
    code, _, stderr = run("train", data, *ids, *TRAIN, "--out", model)
    assert code == 0, stderr
    expected, got = weights(csv_model), weights(model)
    assert sorted(got) == sorted(expected)
    for name, array in expected.items():
        np.testing.assert_array_equal(got[name], array, err_msg=name)
    code, _, stderr = run("predict", model, data, "--out", tmp_path / "p.csv")
    assert code == 0, stderr
    predictions = pd.read_csv(tmp_path / "p.csv", dtype={"sample_id": "str", "obs_names": "str"})
    id_column = "obs_names" if fmt.startswith("h5ad") else "sample_id"
    assert list(predictions.columns) == [id_column, *csv_predictions.columns[1:]]
    assert predictions[id_column].tolist() == csv_predictions["sample_id"].tolist()
    pd.testing.assert_frame_equal(predictions.iloc[:, 1:], csv_predictions.iloc[:, 1:])
    code, stdout, stderr = run("evaluate", model, data, "--json")
    assert code == 0, stderr
    assert '"accuracy"' in stdout


def test_excel_sheet_option_and_missing_sheet(tmp_path: Path) -> None:
    pytest.importorskip("openpyxl")
    data = tmp_path / "book.xlsx"
    frame = sample_frame()
    with pd.ExcelWriter(data) as writer:
        pd.DataFrame({"note": ["read me first"]}).to_excel(writer, sheet_name="README")
        frame.to_excel(writer, sheet_name="samples", index=False)
    model = tmp_path / "m.npz"
    code, _, stderr = run(
        "train", data, "--sheet", "samples", "--id", "sample_id", *TRAIN, "--out", model
    )
    assert code == 0, stderr
    code, _, stderr = run("train", data, "--sheet", "Samples", *TRAIN, "--out", model)
    assert code == 3
    assert stderr.strip() == (
        f"Error: '{data}' has no sheet 'Samples'; --sheet takes one of: README, samples."
    )


def test_h5ad_layer_option(tmp_path: Path) -> None:
    frame = sample_frame()
    genes = [c for c in frame.columns if c.startswith("GENE")]
    counts = np.round(np.abs(frame[genes].to_numpy(np.float32)) * 10).astype(np.float32)
    data = write_h5ad(tmp_path / "layers.h5ad", frame, sparse=True, layers={"counts": counts})
    model = tmp_path / "m.npz"
    code, _, stderr = run("train", data, "--layer", "counts", "--log1p", *TRAIN, "--out", model)
    assert code == 0, stderr
    code, stdout, stderr = run("predict", model, data, "--no-proba")
    assert code == 0, stderr
    assert stdout.splitlines()[0] == "obs_names,prediction"
    code, _, stderr = run("train", data, "--layer", "spliced", *TRAIN, "--out", model)
    assert code == 3
    assert stderr.strip() == (
        f"Error: '{data}' has no layer 'spliced'; --layer takes one of: counts."
    )


def test_sheet_on_a_csv_is_a_usage_error(tmp_path: Path) -> None:
    code, _, stderr = run("train", EXPRESSION, "--sheet", "x", *TRAIN, "--out", tmp_path / "m")
    assert code == 2
    assert stderr.strip() == (
        f"Error: --sheet applies to Excel files, not to the text table '{EXPRESSION}'."
    )


def test_missing_extra_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    data = write("parquet", tmp_path / "data.parquet")
    real_import = builtins.__import__

    def no_pyarrow(name: str, *args: object, **kwargs: object) -> object:
        if name.split(".")[0] == "pyarrow":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    monkeypatch.setattr("importlib.import_module", lambda name: no_pyarrow(name))
    code, _, stderr = run("train", data, *TRAIN, "--out", tmp_path / "m.npz")
    assert code == 3
    assert stderr.strip() == (
        f"Error: Reading '{data}' (Parquet) needs the parquet extra: pip install \".[parquet]\" "
        "in the mlpcli checkout, or pip install pyarrow."
    )


def test_zipped_excel_workbook_is_named(tmp_path: Path) -> None:
    source = write("xlsx", tmp_path / "data.xlsx")
    renamed = source.rename(tmp_path / "export.zip")
    code, _, stderr = run("train", renamed, *TRAIN, "--out", tmp_path / "m.npz")
    assert code == 3
    assert stderr.strip() == (
        f"Error: '{renamed}' is an Excel workbook, not a zipped table; name it .xlsx to read it "
        '(the excel extra: pip install ".[excel]" in the mlpcli checkout, or pip install '
        "openpyxl), or save the sheet as CSV."
    )


def test_h5ad_written_by_anndata(tmp_path: Path) -> None:
    anndata = pytest.importorskip("anndata")
    frame = sample_frame()
    genes = [c for c in frame.columns if c.startswith("GENE")]
    obs = frame[["batch", "subtype"]].astype("category").set_axis(frame["sample_id"])
    adata = anndata.AnnData(X=frame[genes].to_numpy(np.float32), obs=obs)
    adata.var_names = genes
    adata.write_h5ad(tmp_path / "a.h5ad")
    ours = write_h5ad(tmp_path / "ours.h5ad", frame)
    for data in (tmp_path / "a.h5ad", ours):
        code, _, stderr = run("train", data, *TRAIN, "--out", tmp_path / f"{data.stem}.npz")
        assert code == 0, stderr
    a, b = weights(tmp_path / "a.npz"), weights(tmp_path / "ours.npz")
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
