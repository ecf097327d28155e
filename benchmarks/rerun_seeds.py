#!/usr/bin/env python
"""Train a committed default's other seeds again on this machine and score them on the test sets.

A committed seed (``benchmarks/results/cpu_default_roundN/seedS/``) keeps the recipe file it was trained
from. On a CPU of the same kind a rerun gives its adapter byte for byte; on a CPU whose bf16 kernels differ
(an AMD EPYC with AVX512-BF16 against an Intel Xeon with AMX) it gives another adapter, and these reruns show
how far the default's figures move there. Each seed runs the main command's two steps, ``recipes/sft.py`` on
that recipe file and ``recipes/evaluate.py`` with the default's evaluation recipe on the test sets, and gets
one JSON in ``reproduce_default.py``'s layout (seed 42 is the main command itself: run that script).

    python benchmarks/rerun_seeds.py --results benchmarks/results/cpu_default_round13 --seeds 43 44 \\
        --out /work/runs/rerun --json-name 'seed{seed}_epyc.json'

The JSONs go to ``<results>/reproduction/``. Run it alone on the machine (each record keeps its times).

``--collect`` trains nothing: it makes finished reruns a committed default of their own, as
``select_cpu_recipe.py test`` lays one out (each seed's ``results.json``, ``fingpt_run.json`` and
``recipe.yaml`` in ``<results>/seed<S>/``, the spread over seeds in ``summary.json``), for when the same
recipes are trained again on changed code (another rounding) and those runs become the shipped figures:

    python benchmarks/rerun_seeds.py --results benchmarks/results/cpu_default_round21_gqa --seeds 42 43 44 \
        --out /work/runs/gqa_rerun --collect
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from datetime import date
from pathlib import Path

import yaml

from fingpt_hf.io import atomic_write_json
from fingpt_hf.training.run_info import recipe_hash
from reproduce_default import ROOT, git_commit, reproduction_record
from select_cpu_recipe import TEST_SETS, evaluate, scores, summary_over_seeds, train


def rerun(recipe: Path, out: Path) -> float:
    """Train ``recipe`` into ``out`` and score it on the test sets into ``out/eval``; return the wall seconds."""
    started = time.monotonic()
    train(recipe, out)
    evaluate(out, "test", TEST_SETS, out / "eval")
    return time.monotonic() - started


def collect(results: Path, seeds: list[int], out: Path, command: str) -> dict:
    """Copy each finished rerun into ``results/seed<S>/`` and write ``summary.json``; refuse a run that is not
    complete or was not trained from the committed recipe file."""
    per_seed = {}
    for seed in seeds:
        run, target = out / f"seed{seed}", results / f"seed{seed}"
        info, scored = run / "fingpt_run.json", run / "eval" / "results.json"
        if not (info.is_file() and scored.is_file()) or json.loads(info.read_text()).get("status") != "completed":
            raise SystemExit(f"error: {run} is not a finished rerun (fingpt_run.json completed, eval/results.json)")
        committed = yaml.safe_load((target / "recipe.yaml").read_text())
        if recipe_hash(yaml.safe_load((run / "recipe.yaml").read_text())) != recipe_hash(committed):
            raise SystemExit(f"error: {run / 'recipe.yaml'} is not {target / 'recipe.yaml'}'s recipe")
        per_seed[seed] = scores(scored)
    for seed in seeds:
        for source, name in (("eval/results.json", "results.json"), ("fingpt_run.json", "fingpt_run.json")):
            shutil.copyfile(out / f"seed{seed}" / source, results / f"seed{seed}" / name)
    summary = summary_over_seeds(per_seed, command)
    atomic_write_json(results / "summary.json", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, required=True, help="a committed default's directory (seed<N>/recipe.yaml)")
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True, help="where the runs go (one directory per seed)")
    parser.add_argument("--json-name", help="the record's file name, with {seed} (to train)")
    parser.add_argument("--collect", action="store_true",
                        help="train nothing: lay finished reruns out as a committed default (seed dirs, summary.json)")
    args = parser.parse_args(argv)
    if args.collect:
        command = shlex.join(["python", "benchmarks/rerun_seeds.py", *(argv if argv is not None else sys.argv[1:])])
        print(json.dumps(collect(args.results, args.seeds, args.out, command)["test_f1_weighted_over_seeds"], indent=2))
        return 0
    if not args.json_name:
        parser.error("give --json-name to train, or --collect")
    if "{seed}" not in args.json_name or Path(args.json_name).name != args.json_name:
        parser.error(f"--json-name {args.json_name!r} must be a file name holding {{seed}}")
    recipes = {seed: args.results / f"seed{seed}" / "recipe.yaml" for seed in args.seeds}
    for seed, recipe in recipes.items():  # every input checked before the first training starts
        if not recipe.is_file():
            parser.error(f"{recipe}: no committed recipe for seed {seed}")
        if (args.out / f"seed{seed}").exists():
            parser.error(f"{args.out / f'seed{seed}'} exists; each rerun must write a fresh directory")
    # Offline on the main command's data mirror, for both steps (environment, as scripts/run_default.sh sets it).
    os.environ.setdefault("FINGPT_DATA_DIR", str(ROOT.parent / "shared" / "fingpt-data"))
    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    for seed, recipe in recipes.items():
        out = (args.out / f"seed{seed}").resolve()
        wall = rerun(recipe, out)
        shown = recipe.resolve().relative_to(ROOT) if recipe.resolve().is_relative_to(ROOT) else recipe
        what = (f"recipes/sft.py on {shown} then recipes/evaluate.py on the test sets, on a clone of {git_commit()}, "
                f"alone on the machine, {date.today().isoformat()}")
        record = reproduction_record(out, wall, what, command=f"python benchmarks/rerun_seeds.py --results "
                                     f"{args.results} --seeds {seed} --out {args.out} --json-name '{args.json_name}'")
        path = args.results / "reproduction" / args.json_name.format(seed=seed)
        atomic_write_json(path, record)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
