"""Large data (issue 18): generation, ``make pipeline`` per stage, the floor script and batch
scoring on one synthetic CSV of --rows rows, printed as one table with the ratio to the floor.

    uv run python benchmarks/scale.py --rows 1000000 [--template-ref REF] [--csv FILE]
        [--keep DIR] [--profile DIR] [--json FILE]

Steps, all on the same file:
1. the dataset: 20 numeric columns x00..x19 (5% missing in x04..x06), categoricals region,
   plan, segment and a string label ``churned`` (yes/no), written row block by row block with
   the stdlib (seeded, bounded memory; about 46 s a million rows, not timed). ``--csv`` reuses
   a file instead (same spec, e.g. an earlier run's, for before/after on one file).
2. ``copier copy --trust --defaults --vcs-ref REF --data dataset_path=<csv>`` (timed: wall
   clock and peak RSS of the largest single process, from ``wait4``), then ``make setup``
   with the environment's bytecode compiled (not timed), so that the pipeline, like the
   floor after it, runs with bytecode cached.
3. ``make pipeline``, watched by a poller running in the project's own ``.venv`` (psutil):
   every 0.1 s it sums the RSS of the whole process tree (DVC, the shell, the stage's Python)
   and notes which stage's command is running. A stage's time runs from its process start to
   the next stage's start, so DVC's hashing and caching of its outputs count; its peak is that
   of the whole tree meanwhile (in the JSON) and that of the stage's own processes (in the
   table; ``make pipeline``'s row is the whole tree, DVC and uv included). Disk use of
   ``.dvc/cache``, ``data/``, ``reports/``, ``models/`` and MLflow's store (``mlruns/`` +
   ``mlflow.db``) is measured after each stage.
4. the floor: one plain script (``pd.read_csv``, stratified split, the same ColumnTransformer
   and HistGradientBoosting with params.yaml's hyperparameters and early stopping,
   ``predict_proba``, ROC AUC) in the project's ``.venv``, with ``OMP_NUM_THREADS=1`` as the
   stages have it unless exported; wall clock and peak RSS from ``wait4``, its fit time
   reported apart.
5. batch scoring: ``<package> predict`` on the CSV (rows/s, peak RSS from ``wait4``).

``--profile DIR`` then runs each stage module again, outside DVC, under cProfile (stdlib,
deterministic: it inflates code made of many small calls) and writes ``<stage>.prof`` and
``<stage>.txt`` (the top functions by cumulative and own time). Peak RSS sums shared pages
once per process. Timings on a shared machine are noisy: the load average is printed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, load_average

from tests.helpers import project_env

TARGET = "churned"
NUMERIC = [f"x{i:02d}" for i in range(20)]
COLUMNS = [*NUMERIC, "region", "plan", "segment", TARGET]
REGIONS = ("north", "south", "east", "west", "centre")
WITH_MISSING = (4, 5, 6)  # x04..x06: 5% of their values empty
DISK = {
    ".dvc/cache": [".dvc/cache"],
    "data/": ["data"],
    "reports/": ["reports"],
    "models/": ["models"],
    "MLflow": ["mlruns", "mlflow.db"],
}
MB = 1024 * 1024

# Runs `make pipeline` in the project (cwd) under psutil; argv: stage commands (JSON), output.
POLLER = r"""
import json, os, subprocess, sys, time
import psutil
commands = json.loads(sys.argv[1])
def size(paths):
    total = 0
    for path in paths:
        if os.path.isfile(path):
            total += os.path.getsize(path)
        for top, _, files in os.walk(path):
            total += sum(os.path.getsize(os.path.join(top, f)) for f in files
                         if not os.path.islink(os.path.join(top, f)))
    return total
disk_paths = json.loads(sys.argv[2])
def disk():
    return {name: size(paths) for name, paths in disk_paths.items()}
def stage_of(process):
    try:
        line = " ".join(process.cmdline())
    except psutil.Error:
        return None
    return next((name for name, command in commands.items() if line.endswith(command)), None)
disk_before = disk()
start = time.perf_counter()
make = subprocess.Popen(["make", "pipeline"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
root = psutil.Process(make.pid)
stages, order, peak, current = {}, [], 0, None
while make.poll() is None:
    now = time.perf_counter() - start
    try:
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        break
    total, own, running, cpu = 0, 0, None, {}
    for process in tree:
        try:
            rss = process.memory_info().rss
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += rss
        stage = stage_of(process)
        own += rss if stage else 0
        if stage:
            cpu[str(process.pid)] = times.user + times.system
        running = running or stage
    peak = max(peak, total)
    if running and running != current:
        if current:
            stages[current]["disk_after"] = disk()
            stages[current]["end"] = now
        stages[running] = {"start": now, "peak": 0, "own_peak": 0, "cpu": {}}
        order.append(running)
        current = running
    if current:
        stages[current]["peak"] = max(stages[current]["peak"], total)
        stages[current]["own_peak"] = max(stages[current]["own_peak"], own)
        stages[current]["cpu"].update(cpu)
    time.sleep(0.1)
output = make.stdout.read().decode(errors="replace")
end = time.perf_counter() - start
if current:
    stages[current]["end"] = end
    stages[current]["disk_after"] = disk()
for name in order:
    stages[name]["seconds"] = stages[name]["end"] - stages[name]["start"]
result = {"seconds": end, "peak": peak, "returncode": make.returncode, "order": order,
          "stages": stages, "first_stage_at": stages[order[0]]["start"] if order else None,
          "disk_before": disk_before, "self_cpu": sum(psutil.Process().cpu_times()[:2]),
          "output": output[-4000:]}
open(sys.argv[3], "w").write(json.dumps(result))
"""

# The floor: a plain script doing the pipeline's work; argv: csv, target, seed, test size,
# HistGradientBoosting hyperparameters (JSON). Prints its fit seconds and ROC AUC as JSON.
FLOOR = r"""
import json, sys, time
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
path, target, seed, test_size, hyper = sys.argv[1:6]
frame = pd.read_csv(path)
y = frame.pop(target)
numeric = list(frame.select_dtypes("number").columns)
categorical = [c for c in frame.columns if c not in numeric]
X_train, X_test, y_train, y_test = train_test_split(
    frame, y, test_size=float(test_size), stratify=y, random_state=int(seed))
# The template's imputer (core/features.py observed_median): the median of each column's observed
# values, not strategy="median", which sorts the whole masked table and costs seconds per million rows.
def observed_median(values):
    return float(np.median(values)) if values.size else 0.0
numeric_steps = Pipeline([("impute", SimpleImputer(strategy=observed_median, keep_empty_features=True)),
                          ("scale", StandardScaler())])
categorical_steps = Pipeline([
    ("impute", SimpleImputer(strategy="constant", fill_value="__missing__",
                             keep_empty_features=True)),
    ("encode", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=0.01,
                             sparse_output=False))])
model = Pipeline([
    ("preprocess", ColumnTransformer([("numeric", numeric_steps, numeric),
                                      ("categorical", categorical_steps, categorical)],
                                     remainder="drop", verbose_feature_names_out=False)),
    ("model", HistGradientBoostingClassifier(random_state=int(seed), **json.loads(hyper)))])
start = time.perf_counter()
model.fit(X_train, y_train)
fit = time.perf_counter() - start
scores = model.predict_proba(X_test)[:, 1]
auc = roc_auc_score(y_test == model.classes_[1], scores)
print(json.dumps({"fit_seconds": fit, "roc_auc": auc}))
"""


def write_dataset(path: Path, rows: int, seed: int = 0) -> None:
    """Write the benchmark CSV: ``rows`` rows of the spec above, 10,000 rows at a time."""
    rng = random.Random(seed)
    gauss, uniform = rng.gauss, rng.random
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        block: list[list[object]] = []
        for _ in range(rows):
            x = [gauss(0.0, 1.0) for _ in NUMERIC]
            draw = uniform()
            plan = "basic" if draw < 0.6 else "plus" if draw < 0.9 else "pro"
            score = x[0] + 0.5 * x[1] ** 2 - x[2] * x[3] + gauss(0.0, 1.0)
            score += 0.8 if plan == "pro" else 0.0
            row: list[object] = [*x, REGIONS[int(uniform() * len(REGIONS))], plan]
            row += ["a" if uniform() < 0.5 else "b", "yes" if score > 0.6 else "no"]
            for column in WITH_MISSING:
                if uniform() < 0.05:
                    row[column] = ""
            block.append(row)
            if len(block) == 10_000:
                writer.writerows(block)
                block.clear()
        writer.writerows(block)


def run_measured(
    command: Sequence[str], cwd: Path, env: dict[str, str]
) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) of the largest single process of the tree, and the output;
    raises with the output when ``command`` fails."""
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        process = subprocess.Popen(list(command), cwd=cwd, env=env, stdout=log, stderr=log)
        _, status, usage = os.wait4(process.pid, 0)
        cpu = usage.ru_utime + usage.ru_stime
        elapsed = time.perf_counter() - start
        log.seek(0)
        output = log.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{output[-4000:]}")
    return elapsed, usage.ru_maxrss / 1024, cpu, output  # ru_maxrss is in KiB on Linux


def stage_commands(project: Path) -> dict[str, str]:
    """Each stage's command from dvc.yaml, as the end of its process's command line."""
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    commands = {}
    for name, stage in stages.items():
        words = shlex.split(stage["cmd"])
        commands[name] = " ".join(words[1:] if words[0].startswith("python") else words)
    return commands


def measure_pipeline(project: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run ``make pipeline`` under the poller; per-stage seconds, peak and disk after."""
    python = project / ".venv" / "bin" / "python"
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [str(python), "-c", POLLER, json.dumps(stage_commands(project))]
        command += [json.dumps(DISK), out.name]
        cpu = run_measured(command, project, env)[2]
        result: dict[str, Any] = json.loads(Path(out.name).read_text())
    result["cpu_seconds"] = cpu - result["self_cpu"]
    if result["returncode"] != 0:
        raise SystemExit(f"make pipeline failed:\n{result['output']}")
    return result


def measure_floor(project: Path, source: Path, env: dict[str, str]) -> dict[str, float]:
    """The floor script on ``source`` with the project's seed, split and hyperparameters."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    hyper = params["train"]["hyperparameters"]["hist_gradient_boosting"]
    command = [str(project / ".venv" / "bin" / "python"), "-c", FLOOR, str(source), TARGET]
    command += [str(params["seed"]), str(params["split"]["test_size"]), json.dumps(hyper)]
    # The stages run with OMP_NUM_THREADS=1 unless it is exported (stages/__init__.py): the floor
    # gets the same threads, or an oversubscribed machine turns OpenMP's spinning into its cost.
    floor_env = {"OMP_NUM_THREADS": "1"} | env
    seconds, peak, cpu, output = run_measured(command, project, floor_env)
    figures = {"seconds": seconds, "peak_mb": peak, "cpu_seconds": cpu}
    return figures | json.loads(output.strip().splitlines()[-1])


def measure_scoring(
    project: Path, source: Path, rows: int, env: dict[str, str]
) -> dict[str, float]:
    """``<package> predict`` on ``source``: seconds, rows/s, peak RSS."""
    scripts = tomllib.loads((project / "pyproject.toml").read_text())["project"]["scripts"]
    program = str(project / ".venv" / "bin" / next(iter(scripts)))
    with tempfile.TemporaryDirectory() as tmp:
        command = [program, "predict", "--input", str(source), "--output", f"{tmp}/scored.csv"]
        seconds, peak, cpu, _ = run_measured(command, project, env)
    return {"seconds": seconds, "peak_mb": peak, "cpu_seconds": cpu, "rows_per_s": rows / seconds}


def profile_stages(project: Path, folder: Path, env: dict[str, str]) -> None:
    """Run each ``python -m`` stage again under cProfile; ``<stage>.prof`` and ``<stage>.txt``."""
    folder.mkdir(parents=True, exist_ok=True)
    python = str(project / ".venv" / "bin" / "python")
    report = "import pstats, sys\nfor key in ('cumulative', 'tottime'):\n"
    report += "    pstats.Stats(sys.argv[1]).sort_stats(key).print_stats(30)\n"
    for name, command in stage_commands(project).items():
        words = command.split()
        if words[0] != "-m":
            print(f"profile: {name} is not 'python -m ...', skipped", file=sys.stderr)
            continue
        prof = folder / f"{name}.prof"
        seconds, peak, _, _ = run_measured(
            [python, "-m", "cProfile", "-o", str(prof), *words], project, env
        )
        text = run_measured([python, "-c", report, str(prof)], project, env)[3]
        header = f"# {name}: {seconds:.1f} s under cProfile, peak RSS {peak:.0f} MB\n"
        (folder / f"{name}.txt").write_text(header + text)


def ratio(value: float, floor: float) -> str:
    return f"{value / floor:.2f}x" if floor else "-"


def format_table(results: dict[str, Any]) -> str:
    """The issue's table: time, CPU time, peak memory, ratios to the floor, target, per step."""
    floor, pipeline = results["floor"], results["pipeline"]
    fs, fm = floor["seconds"], floor["peak_mb"]
    lines = [
        "| step | time | CPU time | peak memory | x floor time | x floor memory | target |",
        "|---|---|---|---|---|---|---|",
    ]

    def row(step: str, figures: dict[str, float], target: str, base: float = fs) -> None:
        cpu, peak = figures.get("cpu_seconds"), figures.get("peak_mb")
        memory = ["-", "-"] if peak is None else [f"{peak:.0f} MB", ratio(peak, fm)]
        cells = [step, f"{figures['seconds']:.1f} s", "-" if cpu is None else f"{cpu:.1f} s"]
        cells += [memory[0], ratio(figures["seconds"], base), memory[1], target]
        lines.append("| " + " | ".join(cells) + " |")

    row("copier copy (generation)", results["generation"], "< 5 s, < 300 MB at 1M rows")
    row("make pipeline", pipeline, "<= 1.5x time, <= 1.2x memory")
    row("- DVC before the first stage", {"seconds": pipeline["startup_seconds"]}, "")
    for name, stage in pipeline["stages"].items():
        if name == "train":
            target = "<= 1.1x the floor's fit time"
            row("- train (x floor fit time)", stage, target, floor["fit_seconds"])
        else:
            row(f"- {name}", stage, "< 0.10x floor time")
    row("the floor (one plain script)", floor, "")
    row("- its fit", {"seconds": floor["fit_seconds"]}, "")
    scoring = results["scoring"]
    target = "flat memory < 1 GB; rows/s >= before"
    row(f"batch scoring ({scoring['rows_per_s']:,.0f} rows/s)", scoring, target)
    return "\n".join(lines) + "\n\n" + format_disk(pipeline)


def format_disk(pipeline: dict[str, Any]) -> str:
    """Disk use (MB) after each stage: DVC's cache, data/, reports/, models/, MLflow."""
    lines = ["| after stage | " + " | ".join(DISK) + " |", "|---" * (len(DISK) + 1) + "|"]
    steps = {"(rendered)": pipeline["disk_before"]}
    steps.update({name: stage["disk_after"] for name, stage in pipeline["stages"].items()})
    for name, sizes in steps.items():
        cells = [f"{sizes[key] / MB:.1f} MB" for key in DISK]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summarise(poll: dict[str, Any]) -> dict[str, Any]:
    """The poller's raw figures in MB and stage order."""
    stages = {
        name: {
            "seconds": poll["stages"][name]["seconds"],
            "cpu_seconds": sum(poll["stages"][name]["cpu"].values()),
            "peak_mb": poll["stages"][name]["own_peak"] / MB,
            "tree_peak_mb": poll["stages"][name]["peak"] / MB,
            "disk_after": poll["stages"][name]["disk_after"],
        }
        for name in poll["order"]
    }
    return {
        "seconds": poll["seconds"],
        "cpu_seconds": poll["cpu_seconds"],
        "peak_mb": poll["peak"] / MB,
        "startup_seconds": poll["first_stage_at"] or 0.0,
        "stages": stages,
        "disk_before": poll["disk_before"],
    }


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Every step on one file in ``work``; the figures of each."""
    source = args.csv.resolve() if args.csv else work / f"scale{args.rows}.csv"
    if not args.csv:
        print(f"writing {args.rows:,} rows to {source}", flush=True)
        write_dataset(source, args.rows)
    rows = args.rows if not args.csv else sum(1 for _ in source.open()) - 1
    env, project = project_env(), work / "project"
    copy = [sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--quiet"]
    copy += ["--vcs-ref", args.template_ref, "--data", f"dataset_path={source}"]
    copy += ["--data", f"target_column={TARGET}", str(args.template), str(project)]
    print(f"rendering {args.template_ref}; {load_average()}", flush=True)
    generation, peak, cpu, _ = run_measured(copy, work, env)
    # The environment's bytecode compiled at setup (what `make setup` does where
    # PYTHONDONTWRITEBYTECODE is set), not by the pipeline's first imports: the pipeline is
    # timed with bytecode cached, as the floor is (it runs afterwards in the same environment).
    run_measured(["make", "setup", "COMPILE_BYTECODE=--compile-bytecode"], project, env)
    print(f"make pipeline; {load_average()}", flush=True)
    pipeline = summarise(measure_pipeline(project, env))
    print(f"floor; {load_average()}", flush=True)
    floor = measure_floor(project, source, env)
    print(f"batch scoring; {load_average()}", flush=True)
    scoring = measure_scoring(project, source, rows, env)
    if args.profile:
        print(f"profiling each stage into {args.profile}", flush=True)
        profile_stages(project, args.profile.resolve(), env)
    return {
        "rows": rows,
        "csv_mb": source.stat().st_size / MB,
        "template_ref": args.template_ref,
        "generation": {"seconds": generation, "peak_mb": peak, "cpu_seconds": cpu},
        "pipeline": pipeline,
        "floor": floor,
        "scoring": scoring,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--template", type=Path, default=ROOT, help="template repository")
    parser.add_argument("--template-ref", default="HEAD", help="commit to render (HEAD: the "
                        "working tree, uncommitted changes included)")  # fmt: skip
    parser.add_argument("--csv", type=Path, help="use this CSV (same spec) instead of writing one")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--profile", type=Path, help="write a cProfile of each stage here")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    started = load_average()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        results = run(args, args.keep.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
            results = run(args, Path(tmp))
    results["load"] = {"before": started, "after": load_average()}
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(f"\n{results['rows']:,} rows, {results['csv_mb']:.0f} MB of CSV, template "
          f"{args.template_ref}; floor ROC AUC {results['floor']['roc_auc']:.4f}")  # fmt: skip
    print(format_table(results))
    print(f"\nbefore: {started}\nafter: {load_average()}")


if __name__ == "__main__":
    main()
