"""Where `mlpcli train` spends its time and memory: the train workflow run in-process with each
stage timed and the resident memory sampled every 10 ms.

    python bench/phases.py DATA.csv OUT.npz --target label --id sample --hidden 256,128 ...

Takes the options of `mlpcli train` (`--name value` pairs, as the command line gives them) and
prints one JSON object: per stage the seconds (inclusive, and exclusive of nested stages) and
the peak resident memory while it ran. The stages are the `mlpcli.pipeline` functions the
command calls, wrapped for the run; a stage that does not exist in this version is left out.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

STARTED = time.perf_counter()

#: functions of prepare, fitting, pipeline and baselines timed as stages, in the order the
#: command calls them. `_outcome`'s own time is the network's outputs on every row (and the
#: post-hoc calibration); `compare` holds the linear baseline's fit, which `fit_model` would
#: otherwise count as training.
STAGES = (
    "prepare_data",
    "load_table",
    "read",
    "encode_split",
    "make_trainer",
    "fit_model",
    "_outcome",
    "evaluation_report",
    "model_contents",
    "compare",
    "write_outputs",
)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


class Sampler(threading.Thread):
    """Samples the resident set size, attributing each sample to every open stage."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.open: list[str] = []
        self.peaks: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.01):
            self.sample()

    def sample(self) -> None:
        rss = rss_bytes()
        for name in [*self.open, "total"]:
            self.peaks[name] = max(self.peaks.get(name, 0), rss)


def main(argv: list[str]) -> None:
    data_path, out_path, *flags = argv
    options: dict[str, Any] = {}
    for name, value in zip(flags[::2], flags[1::2], strict=True):
        key = name.lstrip("-").replace("-", "_")
        if key in ("target", "id", "features", "drop", "categorical", "na_values"):
            options.setdefault(key, []).append(value)
        else:
            options[key] = value
    sampler = Sampler()
    sampler.start()
    t_import = time.perf_counter()
    from mlpcli import baselines, config, fitting, pipeline, prepare

    import_seconds = time.perf_counter() - t_import
    records: list[dict[str, Any]] = []

    def timed(stage: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            name = "compare" if "compare" in sampler.open else stage  # the baseline's fit
            sampler.open.append(name)
            sampler.sample()
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                end = time.perf_counter()
                sampler.sample()
                sampler.open.remove(name)
                records.append(
                    {"name": name, "start": start, "end": end, "depth": len(sampler.open)}
                )

        return wrapper

    for name in STAGES:
        for module in (prepare, fitting, pipeline, baselines):
            if hasattr(module, name) and getattr(module, name).__module__ == module.__name__:
                setattr(module, name, timed(name, getattr(module, name)))
    prepared_memory: dict[str, int] = {}
    prepare_data = prepare.prepare_data

    def measured_prepare(*args: Any, **kwargs: Any) -> Any:
        """Resident memory after preparation, and how much of it the prepared data holds."""
        prepared = prepare_data(*args, **kwargs)
        arrays = (prepared.X, prepared.Y, prepared.X_val, prepared.Y_val, prepared.sample_weight)
        live = sum(a.nbytes for a in arrays if a is not None)
        live += int(prepared.split.memory_usage(deep=True).sum())
        prepared_memory.update(rss=rss_bytes(), live=live)
        return prepared

    prepare.prepare_data = measured_prepare
    settings = config.resolve(options)
    outcome = pipeline.train(data_path, settings, command=["phases", *argv])
    pipeline.write_outputs(outcome, out_path)
    total = time.perf_counter() - STARTED
    sampler.stop.set()
    sampler.join()
    stages: dict[str, dict[str, float]] = {}
    for r in records:
        inner = sum(
            o["end"] - o["start"]
            for o in records
            if o["depth"] == r["depth"] + 1 and r["start"] <= o["start"] and o["end"] <= r["end"]
        )
        s = stages.setdefault(r["name"], {"seconds": 0.0, "exclusive": 0.0, "calls": 0})
        s["seconds"] += r["end"] - r["start"]
        s["exclusive"] += r["end"] - r["start"] - inner
        s["calls"] += 1
    for name, s in stages.items():
        s["peak_rss"] = sampler.peaks.get(name, 0)
    X = outcome.prepared.X
    n_val = 0 if outcome.prepared.X_val is None else len(outcome.prepared.X_val)
    report = {
        "total_seconds": total,
        "import_seconds": import_seconds,
        "stages": stages,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "n_rows": len(X) + n_val,
        "n_features": int(X.shape[1]),
        "feature_bytes_float32": (len(X) + n_val) * int(X.shape[1]) * 4,
        "epochs": outcome.result.epochs_run,
        "train_seconds_in_loop": outcome.result.seconds,
        "prepared_rss": prepared_memory.get("rss"),
        "prepared_live": prepared_memory.get("live"),
    }
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
