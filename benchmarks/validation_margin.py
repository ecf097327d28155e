#!/usr/bin/env python
"""How far a validation margin can be trusted: a paired bootstrap over the rows two recipes were scored on.

A round of ``select_cpu_recipe.py`` chooses by the mean, over seeds 42-44 and over FPB, FiQA-SA and TFNS, of validation
weighted F1. Those sets are small (363, 94 and 954 rows): one FiQA-SA row is about a point of its weighted F1. This
script draws the validation rows again with replacement (one draw per set, the same for both recipes and all their
seeds, which scored the same rows) and recomputes the difference of those means each time, so a record can show the
interval that the sample of rows alone leaves around a margin; a second interval also draws each recipe's seeds again
with replacement, for the seeds' spread on top (three seeds make that part coarse).

    python benchmarks/validation_margin.py --candidate mlp-rows112 --out /work/runs/round21 \\
        --against epyc-fiqa8-mlp --against-out /work/runs/round20 \\
        --json benchmarks/results/cpu_recipe_selection/margin_round21.json

Each run is ``<out>/<candidate>/seed<N>/validation/<set>/predictions.jsonl``, as ``select_cpu_recipe.py run`` writes
it. ``--candidate X --out DIR --json FILE`` alone keeps one recipe's predictions (a round's control trained first), and
``--against X --against-from-json FILE`` then reads them from that record instead of a directory. The record keeps
the gold labels and every run's predictions (a letter a row), so ``--from-json`` recomputes the interval from the
committed file alone. ``--split test`` does the same for two tested recipes' test predictions
(``select_cpu_recipe.py test`` writes them beside validation's), over all four sets: how far the test sets themselves
resolve a difference between two recipes already reported; it chooses nothing. ``--published NAME`` with ``--from-json``
of such a record gives, instead of a margin, the interval around the candidate's gap to a published row's test figures
(``fingpt_hf/evaluation/published_results.yaml``, e.g. ``'FinGPT v3.1'``): whether its shortfall could be the test rows'.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fingpt_hf.data.labels import INVALID, LABELS
from fingpt_hf.io import atomic_write_json
from select_cpu_recipe import CANDIDATES, TEST_SETS, VALIDATION_SETS, repo_relative

SETS = {"validation": VALIDATION_SETS, "test": TEST_SETS}  # NWGI has no validation rows offline
LETTER = {"negative": "n", "neutral": "u", "positive": "p", INVALID: "x"}
# Predictions by role ("candidate"/"against"), seed (a JSON key) and set, each a string of LETTER codes in row order.
Runs = Mapping[str, Mapping[str, Mapping[str, str]]]


def read_run(split_dir: Path, gold: dict[str, str], sets: Sequence[str] = VALIDATION_SETS) -> dict[str, str]:
    """One run's predictions per set, as letters; ``gold`` is filled from the first run read and checked on the rest,
    so two runs that did not score the same rows are refused, naming the file."""
    out = {}
    for name in sets:
        path = split_dir / name / "predictions.jsonl"
        if not path.is_file():
            raise SystemExit(f"error: {path} is missing; score the run on {split_dir.name} first (select_cpu_recipe.py)")
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        labels = "".join(_letter(row["gold"], path, i, "gold") for i, row in enumerate(rows))
        if gold.setdefault(name, labels) != labels:
            raise SystemExit(f"error: {path}: its gold labels are not those of the other runs' {name} rows")
        out[name] = "".join(_letter(row["prediction"] or INVALID, path, i, "prediction") for i, row in enumerate(rows))
    return out


def _letter(label: str, path: Path, index: int, field: str) -> str:
    if label not in LETTER or (field == "gold" and label == INVALID):
        raise SystemExit(f"error: {path}: row {index}: {field} {label!r} is not one of {list(LABELS)}")
    return LETTER[label]


CODES = np.full(256, -1)  # a letter's byte -> its index in LETTER: FinGPT's three labels, then the invalid answer
CODES[[ord(letter) for letter in LETTER.values()]] = np.arange(len(LETTER))


def weighted_f1(gold: str, predicted: str, weights: np.ndarray | None = None) -> float:
    """Weighted F1 x100 as the evaluation computes it (sklearn's ``f1_score``, FinGPT's three labels, an invalid
    answer wrong, no label's F1 when it has neither rows nor predictions), with each row counted ``weights`` times.

    Counted from the weighted confusion matrix with sklearn's own formula (2 tp / (support + predicted), averaged by
    support): the bootstrap calls it a few hundred thousand times, and ``f1_score``'s input checks cost ~0.1-0.2 s a
    call on NWGI's 4,047 rows (a test margin took 6 minutes). Tests hold it equal to ``f1_score``."""
    pairs = 4 * CODES[np.frombuffer(gold.encode(), np.uint8)] + CODES[np.frombuffer(predicted.encode(), np.uint8)]
    confusion = np.bincount(pairs, weights=weights, minlength=16).astype(float).reshape(4, 4)[:3]  # gold is never invalid
    true_positive = np.diag(confusion[:, :3])
    support, predicted_as = confusion.sum(axis=1), confusion[:, :3].sum(axis=0)
    denominator = support + predicted_as
    f1 = np.divide(2 * true_positive, denominator, out=np.zeros(3), where=denominator > 0)
    return 100 * float(np.average(f1, weights=support))


def scores(gold: Mapping[str, str], runs: Runs, weights: Mapping[str, np.ndarray | None]) -> dict[str, np.ndarray]:
    """Weighted F1 of every run on every set, as an array [seed, set] per role (seeds in the runs' order)."""
    return {role: np.array([[weighted_f1(gold[s], run[s], weights[s]) for s in gold] for run in by_seed.values()])
            for role, by_seed in runs.items()}


def margins(f1: Mapping[str, np.ndarray], picks: Mapping[str, np.ndarray]) -> np.ndarray:
    """The candidate's mean over the picked seeds less the other's, per set (the round's margin is their mean)."""
    return f1["candidate"][picks["candidate"]].mean(axis=0) - f1["against"][picks["against"]].mean(axis=0)


def bootstrap(gold: Mapping[str, str], runs: Runs, resamples: int, seed: int, seeds_too: bool = False) -> dict[str, Any]:
    """The observed margin (candidate less against) and its paired-bootstrap distribution, overall and per set.

    Each draw takes every set's rows again with replacement (the same rows for every run); with ``seeds_too`` it also
    takes each recipe's seeds again with replacement, so the interval holds the seeds' spread as well as the rows'."""
    rng = np.random.default_rng(seed)
    every = {role: np.arange(len(by_seed)) for role, by_seed in runs.items()}
    observed = margins(scores(gold, runs, {s: None for s in gold}), every)
    drawn = []
    for _ in range(resamples):
        weights = draw_rows(rng, gold)
        picks = ({role: rng.integers(0, len(index), len(index)) for role, index in every.items()} if seeds_too
                 else every)
        drawn.append(margins(scores(gold, runs, weights), picks))
    return {key: {**_interval(value, values), "share_at_or_below_zero": round(float(np.mean(values <= 0)), 4)}
            for key, (value, values) in _columns(gold, observed, np.array(drawn)).items()}


def draw_rows(rng: np.random.Generator, gold: Mapping[str, str]) -> dict[str, np.ndarray]:
    """One bootstrap draw: how many times each row of each set is taken (the same draw for every run)."""
    return {s: rng.multinomial(len(gold[s]), np.full(len(gold[s]), 1 / len(gold[s]))) for s in gold}


def _columns(gold: Mapping[str, str], observed: np.ndarray, drawn: np.ndarray) -> dict[str, tuple[float, np.ndarray]]:
    """The observed figure and its draws, over the sets' mean and per set."""
    return {"mean": (observed.mean(), drawn.mean(axis=1)), **{s: (observed[i], drawn[:, i]) for i, s in enumerate(gold)}}


def _interval(value: float, values: np.ndarray) -> dict[str, Any]:
    return {"observed": round(float(value), 2),
            "interval_95": [round(float(np.percentile(values, 2.5)), 2), round(float(np.percentile(values, 97.5)), 2)]}


def gap_to_published(gold: Mapping[str, str], by_seed: Mapping[str, Mapping[str, str]], published: Mapping[str, float],
                     resamples: int, seed: int) -> dict[str, Any]:
    """One recipe's mean weighted F1 over its seeds less a published figure (x100), per set and over the sets, with the
    interval that drawing the rows again leaves around it, and the share of draws where the recipe reaches the figure.

    Only this recipe's rows are drawn: the published model's own predictions are not public, so the sampling noise
    of its figure is not in the interval (a paired comparison would be narrower, not wider, if they were alike)."""
    gold = {s: gold[s] for s in gold if s in published}
    runs = {"candidate": by_seed}
    target = np.array([published[s] for s in gold])
    rng = np.random.default_rng(seed)
    observed = scores(gold, runs, {s: None for s in gold})["candidate"].mean(axis=0) - target
    drawn = np.array([scores(gold, runs, draw_rows(rng, gold))["candidate"].mean(axis=0) - target
                      for _ in range(resamples)])
    return {key: {"published": round(float(target.mean() if key == "mean" else published[key]), 2),
                  "gap": _interval(value, values), "share_at_or_above_published": round(float(np.mean(values >= 0)), 4)}
            for key, (value, values) in _columns(gold, observed, drawn).items()}


def record_from_runs(candidate: str, out: Path, against: str | None, against_out: Path | None, seeds: Sequence[int],
                     split: str = "validation", against_record: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Gold labels and every run's predictions, read from the runs' directories. ``against_record``: the other
    recipe's predictions and the gold labels from a committed record instead (``recorded_predictions``), so a round
    whose control is committed needs no directory of it. Without ``against``: the candidate's predictions alone."""
    kept = recorded_predictions(against_record, against, seeds) if against_record is not None else None
    gold: dict[str, str] = dict(against_record["gold"]) if against_record is not None else {}
    roles = [("candidate", candidate, out)] + ([("against", against, against_out)] if kept is None and against else [])
    runs = {role: {str(seed): read_run(root / name / f"seed{seed}" / split, gold, SETS[split]) for seed in seeds}
            for role, name, root in roles}
    if kept is not None:
        runs["against"] = kept
    return {"schema_version": 1, "split": split, "candidate": candidate, "against": against, "seeds": list(seeds),
            "gold": gold, "predictions": runs}


def recorded_predictions(record: Mapping[str, Any], name: str, seeds: Sequence[int]) -> dict[str, dict[str, str]]:
    """The predictions of the recipe called ``name`` (as either role) for ``seeds`` in a committed record."""
    roles = [role for role in ("candidate", "against") if record.get(role) == name]
    if not roles:
        raise SystemExit(f"error: the record holds {record.get('candidate')!r} and {record.get('against')!r}, "
                         f"not {name!r}")
    by_seed = record["predictions"][roles[0]]
    missing = [seed for seed in seeds if str(seed) not in by_seed]
    if missing:
        raise SystemExit(f"error: the record has no predictions of {name!r} for seeds {missing}")
    return {str(seed): by_seed[str(seed)] for seed in seeds}


def gap_record(path: Path, name: str, resamples: int, rng_seed: int, command: str) -> dict[str, Any]:
    """``gap_to_published`` for the candidate of the record at ``path``, against the published row called ``name``."""
    from fingpt_hf.evaluation.published import load_published

    rows = {row.name: row for row in load_published()}
    if name not in rows:
        raise SystemExit(f"error: --published {name!r} is not a published row; known: {sorted(rows)}")
    row = rows[name]
    figures = {s: 100 * m["f1_weighted"] for s, m in row.scores.items() if "f1_weighted" in m}
    source = json.loads(path.read_text())
    if source.get("split") != "test":  # the records made before --split are validation's
        raise SystemExit(f"error: {path} holds {source.get('split', 'validation')} predictions; a published row's figures "
                         "are test figures, so --published needs a record made with --split test")
    return {"schema_version": 1, "split": source["split"], "candidate": source["candidate"],
            "seeds": source["seeds"], "from_record": repo_relative(path),
            "published": {"name": row.name, "model": row.model, "f1_weighted": figures,
                          "source": row.sources["f1_weighted"].url},
            "resamples": resamples, "rng_seed": rng_seed,
            "gap": gap_to_published(source["gold"], source["predictions"]["candidate"], figures, resamples, rng_seed),
            "command": command}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidate", choices=sorted(CANDIDATES), help="The candidate's name under --out")
    parser.add_argument("--out", type=Path, help="select_cpu_recipe.py run's --out for the candidate")
    parser.add_argument("--against", choices=sorted(CANDIDATES),
                        help="The candidate it is measured against (its name under --against-out)")
    parser.add_argument("--against-out", type=Path)
    parser.add_argument("--against-from-json", type=Path,
                        help="instead of --against-out: the --against recipe's predictions (and the gold labels) from "
                             "a committed record that holds them")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--split", choices=sorted(SETS), default="validation",
                        help="test: two tested recipes' test predictions, to size a difference already reported")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--rng-seed", type=int, default=0)
    parser.add_argument("--from-json", type=Path, help="Recompute from a record's gold labels and predictions")
    parser.add_argument("--json", type=Path, help="Write the record here")
    parser.add_argument("--published", metavar="NAME",
                        help="with --from-json: instead of a margin, the gap from the record's candidate to this "
                             "published row's weighted F1 (fingpt_hf/evaluation/published_results.yaml), e.g. 'FinGPT v3.1'")
    args = parser.parse_args(argv)
    if args.resamples < 1:
        parser.error(f"--resamples must be at least 1, got {args.resamples}")
    command = shlex.join(["python", "benchmarks/validation_margin.py", *(argv if argv is not None else sys.argv[1:])])
    if args.published is not None:
        if not args.from_json:
            parser.error("--published reads the candidate's predictions from a record: give --from-json")
        record = gap_record(args.from_json, args.published, args.resamples, args.rng_seed, command)
        shown = "gap"
    else:
        if args.from_json:
            record = json.loads(args.from_json.read_text())
        elif args.candidate and args.out and args.against is None and args.json:  # one recipe's predictions, kept
            record = record_from_runs(args.candidate, args.out, None, None, args.seeds, args.split)
            record["command"] = command
            atomic_write_json(args.json, record)
            print(f"{args.candidate}: predictions of seeds {args.seeds} written to {args.json}")
            return 0
        elif None in (args.candidate, args.out, args.against) or (args.against_out is None) == (args.against_from_json is None):
            parser.error("give --candidate, --out, --against and one of --against-out and --against-from-json, or "
                         "--from-json (or --candidate, --out and --json alone to keep one recipe's predictions)")
        else:
            kept = json.loads(args.against_from_json.read_text()) if args.against_from_json else None
            if kept is not None and kept.get("split", "validation") != args.split:
                parser.error(f"--against-from-json holds {kept.get('split', 'validation')} predictions, not {args.split}")
            record = record_from_runs(args.candidate, args.out, args.against, args.against_out, args.seeds, args.split,
                                      against_record=kept)
        runs = record["predictions"]
        record.update(resamples=args.resamples, rng_seed=args.rng_seed,
                      margin=bootstrap(record["gold"], runs, args.resamples, args.rng_seed),
                      margin_rows_and_seeds=bootstrap(record["gold"], runs, args.resamples, args.rng_seed, seeds_too=True),
                      command=command)
        shown = "margin"
    if args.json:
        atomic_write_json(args.json, record)
    print(json.dumps(record[shown], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
