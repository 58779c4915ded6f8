"""Start-up of the command line (issue 16): `mlpcli --help`, `train --help` and `inspect MODEL`
against the floors, in fresh processes: `python -c pass` (the interpreter's own), and the
imports a Typer command line cannot avoid (`import click`, `import typer`; `import numpy`).

`--help` is drawn from the help document kept by the first run (mlpcli/cli/helpcache.py); the
row "train --help, help not kept" times that first run (the kept file moved away for it, and
nothing written, so the other rows still find it). `inspect MODEL` prints the text kept by its
first run (mlpcli/cli/inspectcache.py, in the cache folder: a temporary one here); the row
"inspect MODEL, text not kept" times that first run (a cache folder that cannot exist, so
nothing is read or written). Each round runs every command once,
interleaved, so a change in the machine's load hits all of them alike; figures are medians
(and min) over the rounds, with the load average beside them.
Run alone: `python bench/startup.py [--repeats N]`.
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _mlpcli() -> list[str]:
    found = shutil.which("mlpcli", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "mlpcli"]


def _tiny_model(folder: Path) -> Path:
    model = folder / "model.npz"
    data = ROOT / "sample_data" / "expression.csv"
    subprocess.run(
        [
            *(*_mlpcli(), "train", str(data), "--target", "subtype", "--id", "sample_id"),
            *("--epochs", "2", "--out", str(model), "--quiet"),
        ],
        check=True,
        capture_output=True,
    )
    return model


#: The environment of a user's shell: Python writes and reuses .pyc files. With
#: PYTHONDONTWRITEBYTECODE set (as in some sandboxes) every run compiles mlpcli's sources
#: again, which cost 0.2 s of CPU per start-up here and is no part of mlpcli's start-up.
USER_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


#: The first `--help`: nothing kept (`_help_not_kept`), and nothing written for the next one.
FIRST_HELP_ENV = {**USER_ENV, "PYTHONDONTWRITEBYTECODE": "1"}


@functools.cache
def _kept_help() -> tuple[Path, str]:
    """Where the installed mlpcli keeps its help documents, and their names' prefix."""
    code = "from mlpcli.cli import helpcache as h; print(h.FOLDER); print(h.PREFIX)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    folder, prefix = done.stdout.split()
    return Path(folder), prefix


@contextmanager
def _help_not_kept() -> Iterator[None]:
    """The kept help documents moved away for one run, then put back."""
    folder, prefix = _kept_help()
    kept = sorted(folder.glob(f"{prefix}*.json"))
    with tempfile.TemporaryDirectory() as away:
        for path in kept:
            shutil.move(path, Path(away) / path.name)
        try:
            yield
        finally:
            for path in kept:
                shutil.move(Path(away) / path.name, path)


def _seconds(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one fresh process. On a shared machine the
    CPU time is the steadier figure: the wall time also counts waiting for a core."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env or USER_ENV
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


#: The imports every Typer command line pays (click, typer) and the one inspect pays (numpy).
FLOOR_IMPORTS = ("click", "typer", "numpy")


def _importable() -> list[str]:
    """The floor modules installed here (Typer >= 0.20 vendors Click: no `click` package)."""
    import importlib.util

    return [m for m in FLOOR_IMPORTS if importlib.util.find_spec(m) is not None]


FIRST_HELP = "mlpcli train --help, help not kept"
FIRST_INSPECT = "mlpcli inspect MODEL, text not kept"


def measure(repeats: int = 9, log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Median and min seconds of each command over `repeats` interleaved rounds."""
    with tempfile.TemporaryDirectory() as tmp:
        model = _tiny_model(Path(tmp))
        kept_env = {**USER_ENV, "MLPCLI_CACHE_DIR": str(Path(tmp) / "cache")}
        envs = {
            FIRST_HELP: FIRST_HELP_ENV,
            # Under a file: the kept text can be neither read nor written.
            FIRST_INSPECT: {**USER_ENV, "MLPCLI_CACHE_DIR": str(model / "cache")},
        }
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            **{f"import {m}": [sys.executable, "-c", f"import {m}"] for m in _importable()},
            "mlpcli --help": [*_mlpcli(), "--help"],
            "mlpcli train --help": [*_mlpcli(), "train", "--help"],
            FIRST_HELP: [*_mlpcli(), "train", "--help"],
            "mlpcli inspect MODEL": [*_mlpcli(), "inspect", str(model)],
            FIRST_INSPECT: [*_mlpcli(), "inspect", str(model)],
        }

        def around(name: str) -> AbstractContextManager[None]:
            return _help_not_kept() if name == FIRST_HELP else nullcontext()

        for argv in commands.values():  # warm the file cache, the .pyc files, the kept texts
            _seconds(argv, kept_env)
        load_before = os.getloadavg()[0]
        times: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for round_ in range(repeats):
            for name, argv in commands.items():
                with around(name):
                    wall, used = _seconds(argv, envs.get(name, kept_env))
                times[name].append(wall)
                cpu[name].append(used)
            log(f"start-up round {round_ + 1}/{repeats}")
        load_after = os.getloadavg()[0]
    return {
        "repeats": repeats,
        "load": (round(load_before, 1), round(load_after, 1)),
        "median": {name: statistics.median(t) for name, t in times.items()},
        "min": {name: min(t) for name, t in times.items()},
        "cpu": {name: statistics.median(t) for name, t in cpu.items()},
    }


def run_all(repeats: int, log: Callable[[str], None]) -> dict[str, Any]:
    """The figures for bench/targets.py's `startup` row and a section of RESULTS.md."""
    found = measure(repeats, log)
    lines = [
        "## Start-up (fresh processes)",
        "",
        f"{found['repeats']} interleaved rounds; load average {found['load'][0]} before, "
        f"{found['load'][1]} after.",
        "",
        "| command | wall, median | wall, min | CPU (user + sys), median |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, median in found["median"].items():
        lines.append(
            f"| `{name}` | {median:.3f} s | {found['min'][name]:.3f} s "
            f"| {found['cpu'][name]:.3f} s |"
        )
    return {"figures": {"startup": found}, "sections": [[*lines, ""]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    found = measure(args.repeats, lambda s: print(s, file=sys.stderr))
    print(f"load average {found['load'][0]} -> {found['load'][1]}, {found['repeats']} rounds")
    for name, median in found["median"].items():
        print(
            f"{name:36} wall median {median:.3f} s  min {found['min'][name]:.3f} s  "
            f"cpu median {found['cpu'][name]:.3f} s"
        )


if __name__ == "__main__":
    main()
