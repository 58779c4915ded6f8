"""Generate the bundled synthetic sample tables (deterministic: fixed seeds, fixed formatting).

    python sample_data/make_sample_data.py

writes `expression.csv` (3-class subtype classification) and `drug_response.csv` (regression)
next to this script. Only numpy and pandas are used; see README.md for what the columns mean.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent

SUBTYPES = ("luminal", "basal", "her2")
SUBTYPE_SHARES = (0.45, 0.30, 0.25)
#: Genes (1-based numbers) whose log-expression shifts with the subtype, and the shifts in
#: units of each gene's standard deviation: rows luminal, basal, her2.
MARKERS = (7, 13, 21, 34, 42, 55)
MARKER_SHIFTS = np.array(
    [
        [1.5, 1.2, -0.7, -0.8, 0.0, -0.3],
        [-1.0, -0.8, 1.5, 1.4, -0.5, 0.0],
        [-0.3, 0.0, -0.7, -0.3, 1.9, 1.5],
    ]
)
TISSUE_EFFECTS = {"lung": 0.3, "breast": -0.2, "skin": 0.5, "blood": -0.8, "colon": 0.1}


def _gene_names(n: int) -> list[str]:
    return [f"GENE{i:03d}" for i in range(1, n + 1)]


def _log_expression(rng: np.random.Generator, n_samples: int, n_genes: int) -> np.ndarray:
    """Log-scale expression with gene-specific means and 4 co-expression programmes."""
    mu = rng.normal(5.0, 1.2, n_genes)
    sd = rng.uniform(0.35, 0.7, n_genes)
    loadings = np.zeros((4, n_genes))
    for k in range(4):
        genes = rng.choice(n_genes, size=n_genes // 6, replace=False)
        loadings[k, genes] = rng.uniform(0.3, 0.7, genes.size)
    programmes = rng.standard_normal((n_samples, 4)) @ loadings
    noise = rng.standard_normal((n_samples, n_genes))
    return mu + sd * (noise + programmes)


def _blank(rng: np.random.Generator, values: np.ndarray, share: float) -> np.ndarray:
    """Set a random `share` of the cells to NaN, as assay dropouts."""
    values = values.copy()
    values[rng.random(values.shape) < share] = np.nan
    return values


def make_expression(n_samples: int = 600, n_genes: int = 60, seed: int = 20240311) -> pd.DataFrame:
    """Samples x genes with a 3-class `subtype` driven by 6 marker genes plus noise."""
    rng = np.random.default_rng(seed)
    subtype = rng.choice(len(SUBTYPES), size=n_samples, p=SUBTYPE_SHARES)
    log_x = _log_expression(rng, n_samples, n_genes)
    sd = log_x.std(axis=0)
    markers = np.array(MARKERS) - 1
    log_x[:, markers] += MARKER_SHIFTS[subtype] * sd[markers]
    batch = rng.integers(0, 3, n_samples)
    batch_effect = rng.normal(0.0, 0.15, (3, n_genes))
    log_x += batch_effect[batch]
    # 3% of samples carry a wrong label (annotation errors): accuracy cannot reach 100%.
    wrong = rng.random(n_samples) < 0.03
    labels = subtype.copy()
    labels[wrong] = (subtype[wrong] + rng.integers(1, 3, int(wrong.sum()))) % 3
    genes = pd.DataFrame(_blank(rng, np.exp(log_x), 0.02), columns=_gene_names(n_genes))
    frame = pd.DataFrame(
        {
            "sample_id": [f"S{i:04d}" for i in range(1, n_samples + 1)],
            "batch": [f"B{b + 1}" for b in batch],
        }
    )
    frame = pd.concat([frame, genes.round(2)], axis=1)
    frame["subtype"] = [SUBTYPES[k] for k in labels]
    return frame


def make_drug_response(
    n_samples: int = 500, n_genes: int = 28, seed: int = 20240312
) -> pd.DataFrame:
    """Cell lines x genes + tissue; `ic50` (ln µM) is nonlinear in 4 genes, plus the tissue."""
    rng = np.random.default_rng(seed)
    log_x = _log_expression(rng, n_samples, n_genes)
    z = (log_x - log_x.mean(axis=0)) / log_x.std(axis=0)
    tissues = np.array(list(TISSUE_EFFECTS))
    tissue = rng.choice(tissues, size=n_samples)
    effect = np.array([TISSUE_EFFECTS[t] for t in tissue])
    ic50 = (
        2.0
        + 1.4 * np.tanh(1.5 * z[:, 2])
        + 0.7 * z[:, 5]
        - 0.5 * z[:, 5] * z[:, 11]
        + 0.5 * z[:, 17] ** 2
        + effect
        + 0.4 * rng.standard_normal(n_samples)
    )
    genes = pd.DataFrame(_blank(rng, np.exp(log_x), 0.02), columns=_gene_names(n_genes))
    tissue_column = pd.Series(tissue, dtype=object)
    tissue_column[rng.random(n_samples) < 0.01] = np.nan
    target = pd.Series(ic50.round(3))
    target[rng.choice(n_samples, size=5, replace=False)] = np.nan
    frame = pd.DataFrame(
        {"cell_line": [f"CL{i:04d}" for i in range(1, n_samples + 1)], "tissue": tissue_column}
    )
    frame = pd.concat([frame, genes.round(2)], axis=1)
    frame["ic50"] = target
    return frame


def write(frame: pd.DataFrame, path: Path) -> None:
    """Fixed formatting so reruns give byte-identical files."""
    frame.to_csv(path, index=False, na_rep="NA", lineterminator="\n", float_format="%.6g")


def main() -> None:
    write(make_expression(), HERE / "expression.csv")
    write(make_drug_response(), HERE / "drug_response.csv")


if __name__ == "__main__":
    main()
