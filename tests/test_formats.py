"""Parquet, Feather, Excel and AnnData tables: the sample data in each format gives the same
model as the CSV (identical weights for the same seed) and the same predictions, and each
format's own options (--sheet, --layer) and failures give one-line errors.

The files are written here from the sample CSV. The .h5ad files are written with h5py in
AnnData's documented on-disk layout (dense and CSR matrices, categorical obs columns, layers);
when the anndata package is installed, a file written by anndata itself is read too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def _strings(group: object, name: str, values: list[str], nullable: bool = False) -> None:
    """A "string-array" dataset; `nullable`: a "nullable-string-array" group of values and
    mask, as anndata (0.11 and later) writes pandas 3's str columns and index."""
    import h5py

    if nullable:
        node = group.create_group(name)  # type: ignore[attr-defined]
        node.attrs.update({"encoding-type": "nullable-string-array", "encoding-version": "0.1.0"})
        _strings(node, "values", values)
        mask = node.create_dataset("mask", data=np.zeros(len(values), dtype=bool))
        mask.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
        return
    dataset = group.create_dataset(name, data=np.array(values, dtype=object),  # type: ignore[attr-defined]
                                   dtype=h5py.string_dtype())  # fmt: skip
    dataset.attrs.update({"encoding-type": "string-array", "encoding-version": "0.2.0"})


def _dataframe(
    group: object, index: list[str], columns: pd.DataFrame, nullable: bool = False
) -> None:
    """An obs/var "dataframe" group: the index and categorical columns (the codes and their
    categories), with the attributes anndata writes (encoding-type/-version, _index,
    column-order)."""
    attrs = group.attrs  # type: ignore[attr-defined]
    attrs.update({"encoding-type": "dataframe", "encoding-version": "0.2.0", "_index": "_index"})
    import h5py

    order = np.array(list(columns.columns), dtype=object)
    attrs.create("column-order", data=order, shape=order.shape, dtype=h5py.string_dtype())
    _strings(group, "_index", index, nullable)
    for name in columns.columns:
        codes, categories = pd.factorize(columns[name], sort=True)
        node = group.create_group(name)  # type: ignore[attr-defined]
        node.attrs.update(
            {"encoding-type": "categorical", "encoding-version": "0.2.0", "ordered": False}
        )
        code_set = node.create_dataset("codes", data=codes.astype(np.int8))
        code_set.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
        _strings(node, "categories", [str(c) for c in categories], nullable)


def _matrix(parent: object, name: str, X: np.ndarray, encoding: str) -> None:
    """X as AnnData writes it: a dense "array", or a "csr_matrix"/"csc_matrix" group of
    data, indices and indptr (row-major or column-major), with its shape as an attribute."""
    if encoding == "array":
        dataset = parent.create_dataset(name, data=X)  # type: ignore[attr-defined]
        dataset.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
        return
    major = X if encoding == "csr_matrix" else X.T
    rows, cols = np.nonzero(major)
    node = parent.create_group(name)  # type: ignore[attr-defined]
    node.attrs.update({"encoding-type": encoding, "encoding-version": "0.1.0"})
    node.attrs["shape"] = np.array(X.shape)
    node.create_dataset("data", data=major[rows, cols])
    node.create_dataset("indices", data=cols.astype(np.int32))
    lengths = np.bincount(rows, minlength=len(major))
    node.create_dataset("indptr", data=np.r_[0, np.cumsum(lengths)])


def write_h5ad(
    path: Path,
    frame: pd.DataFrame,
    sparse: bool = False,
    layers: dict[str, np.ndarray] | None = None,
    encoding: str | None = None,
    nullable: bool = False,
) -> Path:
    """obs = batch and subtype (categorical), obs_names = sample_id, X = the genes, dense or
    CSR (`sparse`), or any `encoding` ("array", "csr_matrix", "csc_matrix"); `nullable`: the
    strings as anndata writes them under pandas 3."""
    h5py = pytest.importorskip("h5py")
    genes = [c for c in frame.columns if c.startswith("GENE")]
    encoding = encoding or ("csr_matrix" if sparse else "array")
    with h5py.File(path, "w") as f:
        f.attrs.update({"encoding-type": "anndata", "encoding-version": "0.1.0"})
        obs = frame[["batch", "subtype"]]
        _dataframe(f.create_group("obs"), list(frame["sample_id"]), obs, nullable)
        _dataframe(f.create_group("var"), genes, frame[[]], nullable)
        _matrix(f, "X", frame[genes].to_numpy(np.float32), encoding)
        group = f.create_group("layers")
        group.attrs.update({"encoding-type": "dict", "encoding-version": "0.1.0"})
        for name, values in (layers or {}).items():
            _matrix(group, name, values, encoding)
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


#: openpyxl's workbook round trip costs seconds: in the full suite only.
SLOW_FORMATS = ("xlsx",)


@pytest.mark.parametrize(
    "fmt",
    [pytest.param(f, marks=pytest.mark.slow) if f in SLOW_FORMATS else f for f in FORMATS],
)
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


@pytest.mark.slow
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


@pytest.mark.slow
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


def test_h5ad_with_nullable_strings_gives_the_csv_model(
    tmp_path: Path, csv_run: tuple[Path, pd.DataFrame]
) -> None:
    """anndata (0.11 and later) under pandas 3 writes obs_names, var_names and categories as
    "nullable-string-array" groups (values and mask): read with h5py alone, same weights."""
    data = write_h5ad(tmp_path / "nullable.h5ad", sample_frame(), sparse=True, nullable=True)
    model = tmp_path / "m.npz"
    code, _, stderr = run("train", data, *TRAIN, "--out", model)
    assert code == 0, stderr
    expected, got = weights(csv_run[0]), weights(model)
    for name, array in expected.items():
        np.testing.assert_array_equal(got[name], array, err_msg=name)


def _anndata() -> object:
    """The anndata package, or a skip that says why it is optional here."""
    return pytest.importorskip(
        "anndata",
        reason="the anndata package is not installed; the anndata extra installs it "
        "(0.12.0-0.12.6, the releases whose metadata accept pandas 3). The h5ad tests above "
        "need only h5py: they write AnnData's on-disk layout themselves",
    )


@pytest.mark.slow  # the anndata package's import and its writer: ~1.3 s a case
@pytest.mark.parametrize("nullable", [False, True], ids=["strings", "nullable-strings"])
def test_h5ad_written_by_anndata_and_ours_read_by_anndata(tmp_path: Path, nullable: bool) -> None:
    """Interop with the anndata package: a file it writes (CSR layer too) trains the model our
    own file trains, and it reads our file back with the same X, layer, obs and names."""
    anndata: Any = _anndata()
    frame = sample_frame()
    genes = [c for c in frame.columns if c.startswith("GENE")]
    values = frame[genes].to_numpy(np.float32)
    # anndata 0.12.6 cannot write pandas 3's default (Arrow) strings: give it object strings,
    # or Python-backed nullable ones, which it writes as "nullable-string-array" when asked.
    text = "string[python]" if nullable else object
    obs = pd.DataFrame(
        {name: pd.Categorical(frame[name].astype(text)) for name in ("batch", "subtype")},
        index=pd.Index(frame["sample_id"], dtype=text),
    )
    var = pd.DataFrame(index=pd.Index(genes, dtype=text))
    adata = anndata.AnnData(X=values, obs=obs, var=var)
    adata.layers["counts"] = scipy_sparse().csr_matrix(np.round(np.abs(values) * 10))
    settings = anndata.settings
    before = getattr(settings, "allow_write_nullable_strings", None)
    if before is not None:
        settings.allow_write_nullable_strings = nullable
    try:
        adata.write_h5ad(tmp_path / "a.h5ad")
    finally:
        if before is not None:
            settings.allow_write_nullable_strings = before
    counts = adata.layers["counts"].toarray()
    ours = write_h5ad(
        tmp_path / "ours.h5ad", frame, sparse=True, layers={"counts": counts}, nullable=nullable
    )
    for data in (tmp_path / "a.h5ad", ours):
        code, _, stderr = run("train", data, *TRAIN, "--out", tmp_path / f"{data.stem}.npz")
        assert code == 0, stderr
        code, _, stderr = run(
            "train", data, "--layer", "counts", *TRAIN, "--out", tmp_path / f"{data.stem}-c.npz"
        )
        assert code == 0, stderr
    for suffix in ("", "-c"):
        a, b = weights(tmp_path / f"a{suffix}.npz"), weights(tmp_path / f"ours{suffix}.npz")
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    back = anndata.read_h5ad(ours)
    np.testing.assert_array_equal(back.X.toarray(), values)
    np.testing.assert_array_equal(back.layers["counts"].toarray(), counts)
    assert list(back.obs_names) == list(frame["sample_id"])
    assert list(back.var_names) == genes
    for name in ("batch", "subtype"):
        assert back.obs[name].astype(str).tolist() == frame[name].tolist()


def scipy_sparse() -> Any:
    return pytest.importorskip("scipy.sparse")


# --- streaming: Excel in chunks of rows, h5ad in row blocks -----------------------------------


def excel_parses(monkeypatch: pytest.MonkeyPatch, chunk_rows: int) -> list[int]:
    """Set the Excel chunk size; the list fills with the data rows of each chunk parsed."""
    from mlpcli.data import excel

    parsed: list[int] = []
    parse = excel.ExcelReader._parse

    def spy(self: object, header: list, rows: list, *args: object) -> object:
        parsed.append(len(rows))
        return parse(self, header, rows, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(excel, "EXCEL_CHUNK_ROWS", chunk_rows)
    monkeypatch.setattr(excel.ExcelReader, "_parse", spy)
    return parsed


@pytest.mark.slow  # openpyxl writes and reads whole workbooks: 2-3 s
def test_excel_read_in_chunks_gives_the_csv_model(
    tmp_path: Path, csv_run: tuple[Path, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = write("xlsx", tmp_path / "data.xlsx")
    parsed = excel_parses(monkeypatch, 64)
    model = tmp_path / "m.npz"
    code, _, stderr = run("train", data, "--id", "sample_id", *TRAIN, "--out", model)
    assert code == 0, stderr
    assert parsed == [64] * 9 + [600 - 9 * 64]  # 600 rows, never more than 64 at once
    expected, got = weights(csv_run[0]), weights(model)
    for name, array in expected.items():
        np.testing.assert_array_equal(got[name], array, err_msg=name)
    parsed.clear()
    code, _, stderr = run("predict", model, data, "--out", tmp_path / "p.csv")
    assert code == 0, stderr
    assert parsed == [600]  # predict streams through data.TableChunks: chunks of 1,024 rows
    predictions = pd.read_csv(tmp_path / "p.csv", dtype={"sample_id": "str"})
    pd.testing.assert_frame_equal(predictions, csv_run[1])


def grades_xlsx(path: Path) -> Path:
    """The grades table of test_cli_realdata as a sheet: grades are numbers, 12 cells (from
    data row 388) the text 'other', an ID '007'-style text, an empty row at the end."""
    import openpyxl
    from test_cli_realdata import grades_csv

    frame = pd.read_csv(grades_csv(path.with_suffix(".csv")), dtype=str)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["student", *frame.columns])
    for i, row in enumerate(frame.itertuples(index=False)):
        grade = row.grade if row.grade == "other" else int(row.grade)
        sheet.append([f"{i:03d}", grade, float(row.x1), float(row.x2), row.status])
    sheet.append([None])
    book.save(path)
    return path


def test_excel_column_typed_across_chunks_as_pandas_types_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'other' first appears in the 7th chunk of 64 rows: the column is read again whole, so
    the table is pandas' (categorical grade, same warning as the CSV) at every chunk size."""
    from test_cli_realdata import grades_warning, model_columns, warnings_in

    from mlpcli.data import read_table
    from mlpcli.data.format_base import ReadOptions, tidy
    from mlpcli.data.read import DEFAULT_NA_VALUES

    pytest.importorskip("openpyxl")
    data = grades_xlsx(tmp_path / "grades.xlsx")
    options = ReadOptions(na_values=DEFAULT_NA_VALUES, text_columns=("student",))
    expected = tidy(
        pd.read_excel(data, na_values=list(DEFAULT_NA_VALUES), keep_default_na=False,
                      dtype={"student": "str"}),
        options,
    )  # fmt: skip
    parsed = excel_parses(monkeypatch, 64)
    got = read_table(data, text_columns=["student"], checksum=False).frame
    assert parsed[:7] == [64] * 6 + [400 - 6 * 64]  # then the grade column on its own
    assert parsed[7:] == [400]
    assert got["grade"].tolist() == expected["grade"].tolist()
    assert [type(v) for v in got["grade"]] == [type(v) for v in expected["grade"]]
    assert got["student"].tolist()[:2] == ["000", "001"]
    model = tmp_path / "m.npz"
    code, _, stderr = run(
        "train", data, "--target", "status", "--id", "student", "--epochs", "2", "--hidden",
        "4", "-q", "--out", model,
    )  # fmt: skip
    assert code == 0, stderr
    assert warnings_in(stderr) == [grades_warning(data)]
    assert model_columns(model) == [
        *("grade=10", "grade=11", "grade=12", "grade=9", "grade=other"),
        *("x1", "x2"),
    ]


@pytest.mark.slow  # openpyxl writes and reads whole workbooks: 2-3 s
def test_excel_table_chunks_stream_the_sheet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlpcli.data import TableChunks, read_table

    pytest.importorskip("openpyxl")
    data = tmp_path / "book.xlsx"
    with pd.ExcelWriter(data) as writer:
        pd.DataFrame({"note": ["read me first"]}).to_excel(writer, sheet_name="README")
        sample_frame().to_excel(writer, sheet_name="samples", index=False)
    parsed = excel_parses(monkeypatch, 10_000)
    with TableChunks(data, 250, sheet="samples", text_columns=["sample_id"]) as chunks:
        parts = list(chunks)
    assert [len(part) for part in parts] == parsed == [250, 250, 100]
    whole = read_table(data, sheet="samples", text_columns=["sample_id"]).frame
    pd.testing.assert_frame_equal(pd.concat(parts), whole)


ENCODINGS = ("array", "csr_matrix", "csc_matrix")


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_h5ad_read_in_row_blocks_gives_the_csv_model(
    tmp_path: Path,
    csv_run: tuple[Path, pd.DataFrame],
    monkeypatch: pytest.MonkeyPatch,
    encoding: str,
) -> None:
    """X is a decoy; `--layer norm` holds the genes. Read 64 rows at a time (CSC: 2,000 stored
    entries at a time), the model is the CSV's, and no slice of a sparse matrix's data is the
    whole array."""
    from mlpcli.data import h5ad

    frame = sample_frame()
    genes = [c for c in frame.columns if c.startswith("GENE")]
    values = frame[genes].to_numpy(np.float32)
    values[values < 0.2] = 0  # sparse-like: many stored zeros dropped from CSR/CSC
    frame[genes] = values
    csv = tmp_path / "sparse.csv"
    frame.to_csv(csv, index=False)
    decoy = frame.assign(**dict.fromkeys(genes, 1.0))
    data = write_h5ad(tmp_path / "x.h5ad", decoy, layers={"norm": values}, encoding=encoding)
    slices: list[tuple[int, int]] = []
    entries = h5ad._Sparse._entries

    def spy(self: h5ad._Sparse, lo: int, hi: int) -> object:
        slices.append((int(lo), int(hi)))
        return entries(self, lo, hi)

    monkeypatch.setattr(h5ad._Sparse, "_entries", spy)
    monkeypatch.setattr(h5ad, "H5AD_BLOCK_ROWS", 64)
    monkeypatch.setattr(h5ad, "CSC_BLOCK_ENTRIES", 2_000)
    m_csv, m_h5ad = tmp_path / "csv.npz", tmp_path / "h5ad.npz"
    code, _, stderr = run("train", csv, "--id", "sample_id", *TRAIN, "--out", m_csv)
    assert code == 0, stderr
    code, _, stderr = run("train", data, "--layer", "norm", *TRAIN, "--out", m_h5ad)
    assert code == 0, stderr
    expected, got = weights(m_csv), weights(m_h5ad)
    for name, array in expected.items():
        np.testing.assert_array_equal(got[name], array, err_msg=name)
    nnz = int(np.count_nonzero(values))
    if encoding == "array":
        assert slices == []
    else:
        assert len(slices) >= 10 and max(hi - lo for lo, hi in slices) < nnz / 4
    code, stdout, stderr = run("predict", m_h5ad, data)
    assert code == 0, stderr
    code, csv_out, stderr = run("predict", m_csv, csv)
    assert code == 0, stderr
    assert stdout.splitlines()[1:] == csv_out.splitlines()[1:]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_h5ad_table_chunks_are_row_blocks(tmp_path: Path, encoding: str) -> None:
    """data.TableChunks (predict's and out-of-core's reader) yields the h5ad in row blocks of
    the wanted genes only, obs columns beside them, the index going on."""
    from mlpcli.data import TableChunks, read_table

    data = write_h5ad(tmp_path / "x.h5ad", sample_frame(), encoding=encoding)
    wanted = ["subtype", "GENE003", "GENE010"]
    with TableChunks(data, 250, usecols=wanted) as chunks:
        parts = list(chunks)
        assert chunks.id_column == "obs_names"
    assert [len(part) for part in parts] == [250, 250, 100]
    assert list(parts[0].columns) == ["obs_names", *wanted]
    assert parts[2].index[0] == 500
    whole = read_table(data).frame
    pd.testing.assert_frame_equal(pd.concat(parts), whole[["obs_names", *wanted]])
