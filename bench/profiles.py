"""The profiles behind issue 16's targets: where a command's time goes, function by function.

Each profile runs in a fresh process, as a user's shell runs mlpcli (.pyc files kept), under
cProfile: a setup (imports, data, a warm cache) untimed, then the profiled code. It returns
{"total": seconds under the profiler, "rows": [[own seconds, share, "module:line(function)"],
...]} with the costliest functions by own time, which `targets.py` prints under a target that
is not met. cProfile slows Python-level code more than NumPy's and BLAS's C code, so the shares
are a guide to where the time goes, not a second measurement of it.

    python bench/profiles.py read /tmp/mlpcli-bench/train_1M.csv      # one profile alone
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from startup import USER_ENV

HERE = Path(__file__).resolve().parent

#: The profiler: argv = [setup, profiled, top, *args]; the code sees the args as `ARGS`.
_RUNNER = """
import cProfile, json, pstats, sys
setup, profiled, top = sys.argv[1], sys.argv[2], int(sys.argv[3])
namespace = {"ARGS": sys.argv[4:]}
exec(setup, namespace)
profile = cProfile.Profile()
profile.enable()
try:
    exec(profiled, namespace)
except SystemExit:
    pass
profile.disable()
stats = pstats.Stats(profile)
rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]
def name(path, line, func):
    for cut in ("site-packages/", "/mlpcli/", "/bench/", "/lib/python3."):
        if cut in path:
            head = {"/mlpcli/": "mlpcli/", "/bench/": "bench/"}.get(cut, "")
            path = head + path.split(cut)[-1].split("/", cut == "/lib/python3.")[-1]
            break
    return f"{path}:{line}({func})" if line else func
imports = sum(ct for (path, line, func), (cc, nc, tt, ct, callers) in stats.stats.items()
              if func == "_find_and_load")
print(json.dumps({"total": stats.total_tt, "imports": imports, "rows": [
    [tt, tt / stats.total_tt, name(*key)] for key, (cc, nc, tt, ct, callers) in rows]}))
"""


def cprofile(setup: str, profiled: str, args: list[str], top: int = 8) -> dict[str, Any]:
    """The `top` costliest functions of `profiled` (own time), after `setup` ran untimed."""
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, setup, profiled, str(top), *args],
        capture_output=True,
        text=True,
        env=USER_ENV,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"failed": f"exit {proc.returncode}: {tail}"}
    return dict(json.loads(lines[-1]))


# --------------------------------------------------------------------------- the profiles
#: The reading profiles do what bench/iobench.py's timed reads do: the same imports before
#: the clock, then `read_table` (with its own lazy imports) and a pass over every value.
_READ_SETUP = "from mlpcli.data import cache, read_table\ncache.use(ARGS[1] or None)"
_READ = "frame = read_table(ARGS[0], text_columns=['sample']).frame\n"
_READ += "frame.iloc[:, 1:-1].to_numpy().sum(dtype='float64')"


def read(csv: Path) -> dict[str, Any]:
    """`read_table` as `train` reads by default (no cache)."""
    return cprofile(_READ_SETUP, _READ, [str(csv), ""])


def cache_hit(csv: Path) -> dict[str, Any]:
    """`read_table` from a table cache entry that an earlier process wrote."""
    with tempfile.TemporaryDirectory(prefix="mlpcli-bench-profile-") as root:
        cprofile(_READ_SETUP, _READ, [str(csv), root])  # parses and writes the entry
        return cprofile(_READ_SETUP, _READ, [str(csv), root])


def predict(model: Path, csv: Path, out: Path, cache: Path | None = None) -> dict[str, Any]:
    """`mlpcli predict MODEL CSV --out OUT` through the command line's main(), imports done."""
    setup = "import sys\nfrom mlpcli.cli import main\nimport mlpcli.predicting, mlpcli.trained"
    profiled = "sys.argv = ['mlpcli', 'predict', *ARGS]\nmain()"
    where = ["--cache", str(cache)] if cache else ["--no-cache"]
    return cprofile(setup, profiled, [str(model), str(csv), "--out", str(out), "-q", *where])


_RECIPE_SETUP = """
import sys
from threadpoolctl import threadpool_limits
threadpool_limits(limits=int(ARGS[5]))  # as bench/recipe.py's workers
sys.path.insert(0, ARGS[0])
from recipe import TABLES, fit_mlpcli, make_table
import mlpcli.nn.recipe, mlpcli.preprocessing, mlpcli.training, pandas
table = TABLES[ARGS[1]]
X, y = make_table(table)
"""
_RECIPE_FIT = "fit_mlpcli(X, y, table.task, 0, int(ARGS[2]), int(ARGS[3]), ARGS[4])"


def recipe(
    table: str, epochs: int, members: int = 1, batches: str = "shared", threads: int = 2
) -> dict[str, Any]:
    """One fit of the recipe (bench/recipe.py's mlpcli side) on a generated table."""
    args = [str(HERE), table, str(epochs), str(members), batches, str(threads)]
    return cprofile(_RECIPE_SETUP, _RECIPE_FIT, args, top=10)


PROFILES: dict[str, Callable[..., dict[str, Any]]] = {
    "read": read,
    "cache_hit": cache_hit,
    "predict": predict,
    "recipe": recipe,
}


if __name__ == "__main__":
    found = PROFILES[sys.argv[1]](*sys.argv[2:])
    for own, share, function in found.get("rows", []):
        print(f"{own:8.3f} s {share:5.0%}  {function}")
    print(found.get("failed") or f"{found['total']:.3f} s under the profiler")
