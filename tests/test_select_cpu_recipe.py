"""benchmarks/select_cpu_recipe.py: each round keeps its own record, and every candidate is a recipe
the training code accepts as it is."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from benchmark_scripts import load_benchmark_script

REPO = Path(__file__).resolve().parents[1]


def _script():
    return load_benchmark_script("select_cpu_recipe")


def test_rounds_keep_separate_records_and_results():
    script = _script()
    results = REPO / "benchmarks" / "results"
    assert script.record_path("lr2e-3") == results / "cpu_recipe_selection" / "selection.json"
    assert script.results_dir("lr2e-3") == results / "cpu_default"
    assert script.record_path("clean-lr2e-3") == results / "cpu_recipe_selection" / "selection_round2.json"
    assert script.results_dir("clean-lr2e-3") == results / "cpu_default_round2"
    assert sum(map(len, script.ROUNDS.values())) == len(script.CANDIDATES)  # no name in two rounds
    assert script.round_of("clean-b32-more") == 3
    assert script.record_path("all-layers-b32") == results / "cpu_recipe_selection" / "selection_round4.json"
    assert all("lora_top_layers" in changes for changes in script.CANDIDATES.values())


def test_candidates_are_valid_mixtures_and_rounds_from_two_leave_out_scored_texts():
    from fingpt_hf.data.mixture import MixtureConfig

    script = _script()
    for name in script.CANDIDATES:
        recipe = script.candidate_recipe(name, 43)
        config = MixtureConfig.from_dict(recipe["dataset_mixture"])
        assert config.seed == recipe["seed"] == 43 and config.exclude_validation
        assert config.exclude_scored_texts is (script.round_of(name) >= 2), name


def test_each_recorded_run_is_its_candidates_recipe_today():
    """A candidate names every setting it ran with: the base recipe's batch moved from 16 to 32 in
    round 3, so the earlier rounds' candidates still give the 16 their records ran; and every
    candidate names its LoRA placement, which round 4 varies; rounds 1-12 keep the 3% warmup they ran
    with, which round 13 varies."""
    import json

    script = _script()
    for record in sorted((REPO / "benchmarks" / "results" / "cpu_recipe_selection").glob("selection*.json")):
        for run in json.loads(record.read_text())["runs"]:
            recipe = script.candidate_recipe(run["candidate"], run["seed"])
            assert recipe["per_device_train_batch_size"] == run["changes"].get("per_device_train_batch_size", 16), run
            assert recipe["lora_top_layers"] == run["changes"].get("lora_top_layers", 20), run  # rounds 1-3: 20
            assert recipe["learning_rate"] == run["changes"]["learning_rate"]
            assert recipe["lora_r"] == run["changes"].get("lora_r", 16), run  # round 5 varies the rank
            assert recipe["warmup_steps"] == run["changes"].get("warmup_steps", 0.03), run  # round 13 varies it
            assert recipe["lora_target_modules"] == run["changes"].get("lora_target_modules", "all-linear"), run  # 18-20
            assert {**run["changes"]["dataset_mixture"], "seed": run["seed"]} == recipe["dataset_mixture"], run


def test_train_runtime_is_the_trainers_own_and_a_missing_run_file_is_named(tmp_path):
    """The record's train_runtime_seconds is the trainer's last log entry, read with the project's
    reader of fingpt_run.json; an adapter directory without one is refused by path."""
    import pytest

    from fingpt_hf.training.run_info import write_run_info

    script = _script()
    write_run_info(tmp_path, recipe={"lora_r": 16}, status="completed", started_at="t", model={},
                   log_history=[{"loss": 0.5, "step": 10}, {"train_runtime": 1006.0734, "step": 495}])
    assert script.train_runtime(tmp_path) == 1006.1
    with pytest.raises(SystemExit, match="empty has no readable fingpt_run.json"):
        script.train_runtime(tmp_path / "empty")


def test_test_phase_refuses_adapters_that_are_not_the_recorded_runs(tmp_path):
    """Test scores the runs chosen on validation: an adapter rebuilt after its directory was lost counts
    only if it scores validation to the record's figures, and a missing one is refused before the record
    (and the test sets) are touched."""
    import json

    script = _script()
    record_path = script.record_path("fiqa8-warmup10")
    recorded = next(r for r in json.loads(record_path.read_text())["runs"] if r["seed"] == 43)
    assert recorded["validation_f1_weighted"] == {"fpb": 88.07, "fiqa": 87.51, "tfns": 86.10}
    script.check_reproduced(recorded, {"fpb": 88.07, "fiqa": 87.51, "tfns": 86.1})
    with pytest.raises(SystemExit, match="seed 43: this adapter scores validation .*'fiqa': 87.5,"):
        script.check_reproduced(recorded, {"fpb": 88.07, "fiqa": 87.5, "tfns": 86.1})
    before = record_path.read_bytes()
    with pytest.raises(SystemExit, match=r"seed42 has no adapter scored on validation; rebuild it with `run "
                                         r"--candidate fiqa8-warmup10 --seeds 42"):
        script.test("fiqa8-warmup10", tmp_path)
    assert record_path.read_bytes() == before


def test_from_round_25_test_needs_a_validation_margin_above_zero(tmp_path, monkeypatch):
    """Rounds 21, 23 and 24 shipped validation leads their rows could not resolve; from round 25 on ``test`` refuses a
    candidate, before the record or any test row is touched, unless its bootstrap record puts the margin above 0."""
    import json

    script = _script()
    monkeypatch.setattr(script, "RECORD", tmp_path / "selection.json")
    monkeypatch.setitem(script.ROUNDS, 25, {"r25-candidate": script.CANDIDATES["dora-loraplus16"]})
    monkeypatch.setitem(script.CANDIDATES, "r25-candidate", script.CANDIDATES["dora-loraplus16"])
    script.check_margin_rule("dora-loraplus16")  # round 24: its rule was written without it
    with pytest.raises(SystemExit, match="make margin_round25.json first"):
        script.test("r25-candidate", tmp_path)

    def margin(candidate: str, low: float, high: float) -> None:
        (tmp_path / "margin_round25.json").write_text(json.dumps({
            "candidate": candidate, "against": "traced-dora-control", "split": "validation",
            "margin": {"mean": {"observed": (low + high) / 2, "interval_95": [low, high]}}}))

    margin("dora-loraplus16", 0.1, 1.0)
    with pytest.raises(SystemExit, match="is 'dora-loraplus16'.s validation margin, not 'r25-candidate'.s"):
        script.test("r25-candidate", tmp_path)
    margin("r25-candidate", -1.02, 1.51)  # round 24's own margin
    with pytest.raises(SystemExit, match=r"interval -1.02 to 1.51, which holds 0: .* it is not tested"):
        script.test("r25-candidate", tmp_path)
    assert not (tmp_path / "selection_round25.json").exists()  # refused before the record was written
    margin("r25-candidate", 0.05, 1.51)
    with pytest.raises(SystemExit, match="has no finished run"):  # past the rule, on to the runs
        script.test("r25-candidate", tmp_path)


def test_round_4_control_is_round_3s_choice():
    script = _script()
    assert script.CANDIDATES["control-b32-more"] == script.CANDIDATES["clean-b32-more"]
    assert script.round_of("control-b32-more") == 4 and script.round_of("clean-b32-more") == 3


def _changed(script, base: str, name: str) -> dict:
    """The keys whose values differ between two candidates' recipes (same seed), as (base's, name's)."""
    chosen, recipe = script.candidate_recipe(base, 42), script.candidate_recipe(name, 42)
    return {key: (chosen.get(key), recipe[key]) for key in recipe if recipe[key] != chosen.get(key)}


def _weights(mixture: dict) -> dict[str, float]:
    return {d["name"]: d["weight"] for d in mixture["datasets"]}


def test_round_5_candidates_each_change_one_setting_of_round_4s_choice():
    """Round 5 compares with round 4's choice: each candidate's recipe differs from it in what it names."""
    script = _script()
    assert _changed(script, "all-layers-b32", "all-layers-r32") == {"lora_r": (16, 32), "lora_alpha": (32, 64)}
    [(before, after)] = _changed(script, "all-layers-b32", "all-layers-fiqa4").values()
    assert [_weights(before), _weights(after)] == [{"fpb": 1.05, "fiqa": 2.85, "tfns": 1.18, "nwgi": 1},
                                                   {"fpb": 1.05, "fiqa": 4.0, "tfns": 1.07, "nwgi": 1}]
    assert {script.round_of("all-layers-r32"), script.round_of("all-layers-fiqa4")} == {5}


def test_round_6_control_is_round_4s_choice_and_its_candidate_moves_tfns_draws_to_fpb():
    script = _script()
    assert _changed(script, "all-layers-b32", "control-all-layers") == {}
    [(before, after)] = _changed(script, "control-all-layers", "all-layers-fpb15").values()
    assert [_weights(before), _weights(after)] == [{"fpb": 1.05, "fiqa": 2.85, "tfns": 1.18, "nwgi": 1},
                                                   {"fpb": 1.5, "fiqa": 2.85, "tfns": 1.01, "nwgi": 1}]
    assert {script.round_of("control-all-layers"), script.round_of("all-layers-fpb15")} == {6}


def test_round_7_candidate_adds_fiqa_rows_to_round_6s_choice():
    """Round 7's yardstick is round 6's record of its choice: the candidate differs from it only in FiQA-SA's
    weight (more rows, more steps); having beaten it on validation, its mixture was the shipped one until round 21."""
    script = _script()
    [(before, after)] = _changed(script, "all-layers-fpb15", "fpb15-fiqa8-more").values()
    assert [_weights(before), _weights(after)] == [{"fpb": 1.5, "fiqa": 2.85, "tfns": 1.01, "nwgi": 1},
                                                   {"fpb": 1.5, "fiqa": 8.0, "tfns": 1.01, "nwgi": 1}]
    assert script.round_of("fpb15-fiqa8-more") == 7


def test_round_8_candidate_adds_fpb_rows_to_round_7s_choice():
    """Round 8's yardstick is round 7's record of its choice: the candidate differs from it only in FPB's weight."""
    script = _script()
    [(before, after)] = _changed(script, "fpb15-fiqa8-more", "fpb2-fiqa8-more").values()
    assert [_weights(before), _weights(after)] == [{"fpb": 1.5, "fiqa": 8.0, "tfns": 1.01, "nwgi": 1},
                                                   {"fpb": 2.0, "fiqa": 8.0, "tfns": 1.01, "nwgi": 1}]
    assert script.round_of("fpb2-fiqa8-more") == 8
    assert script.record_path("fpb2-fiqa8-more").name == "selection_round8.json"


TRAIN_ROWS = {"fpb": 3266, "fiqa": 794, "tfns": 8584}  # train rows less validation and scored texts (fingpt_run.json)


def _drawn(*mixtures: dict) -> list[int]:
    """How many rows each mixture draws from the train rows (NWGI has none offline)."""
    from fingpt_hf.data.mixture import weighted_count

    return [sum(weighted_count(TRAIN_ROWS[name], w) for name, w in _weights(m).items() if name in TRAIN_ROWS)
            for m in mixtures]


def test_round_9_candidate_moves_tfns_draws_to_fiqa_in_round_7s_budget():
    """Round 9's yardstick is round 7's record of its choice: the candidate differs from it only in FiQA-SA's and
    TFNS's weights, and draws as many rows (so as many steps, in the same time)."""
    script = _script()
    [(before, after)] = _changed(script, "fpb15-fiqa8-more", "fiqa12-tfns064").values()
    assert [_weights(before), _weights(after)] == [{"fpb": 1.5, "fiqa": 8.0, "tfns": 1.01, "nwgi": 1},
                                                   {"fpb": 1.5, "fiqa": 12.0, "tfns": 0.64, "nwgi": 1}]
    assert _drawn(before, after) == [19921, 19921]
    assert script.round_of("fiqa12-tfns064") == 9
    assert script.record_path("fiqa12-tfns064").name == "selection_round9.json"


def test_round_17_candidate_draws_fiqa_neutral_rows_twice_as_often_as_round_13s_choice(data_dir):
    """Round 17's yardstick is round 13's record of its choice: the candidate differs from it only in FiQA-SA's label
    weights, and its mixture draws FiQA-SA's neutral rows 16 times and every other row as before (641 steps of 32)."""
    import math

    from fingpt_hf.data.mixture import MixtureConfig, build_mixture

    script = _script()
    [(before, after)] = _changed(script, "fiqa8-warmup10", "fiqa-neutral2").values()
    assert [{**d, "label_weights": None} if d["name"] == "fiqa" else d for d in after["datasets"]] == [
        {**d, "label_weights": None} if d["name"] == "fiqa" else d for d in before["datasets"]]
    assert [d.get("label_weights") for d in after["datasets"]] == [None, {"neutral": 2}, None, None]
    assert script.round_of("fiqa-neutral2") == 17
    assert script.record_path("fiqa-neutral2").name == "selection_round17.json"
    (old, _), (new, _) = (build_mixture(MixtureConfig.from_dict(m), data_dir) for m in (before, after))
    count = lambda rows: Counter(zip(rows["dataset"], rows["output"]))  # noqa: E731
    assert count(old)[("fiqa", "neutral")] == 8 * 70  # FiQA-SA's 70 neutral rows, 8 times
    assert count(new) - count(old) == {("fiqa", "neutral"): 8 * 70}
    assert (len(new), math.ceil(len(new) / 32)) == (20481, 641)


def test_round_21_candidate_draws_each_source_112_times_as_often_as_round_20s_choice():
    """Round 21's yardstick is round 20's record of its choice: the candidate differs from it only in the mixture's
    weights, each source's draws 1.12 times as many (to the weights' two decimals): 22,333 rows, 698 steps of 32.
    Having beaten it on validation, its mixture is the shipped one."""
    import math

    import yaml

    script = _script()
    [(before, after)] = _changed(script, "epyc-fiqa8-mlp", "mlp-rows112").values()
    assert [_weights(before), _weights(after)] == [{"fpb": 1.5, "fiqa": 8.0, "tfns": 1.01, "nwgi": 1},
                                                   {"fpb": 1.68, "fiqa": 9.0, "tfns": 1.13, "nwgi": 1}]
    drawn = _drawn(before, after)
    assert drawn == [19921, 22333] and math.ceil(drawn[1] / 32) == 698
    assert {name: round(_weights(after)[name] / _weights(before)[name], 2) for name in TRAIN_ROWS} == {
        "fpb": 1.12, "fiqa": 1.12, "tfns": 1.12}
    assert script.round_of("mlp-rows112") == 21
    assert script.record_path("mlp-rows112").name == "selection_round21.json"
    shipped = yaml.safe_load((REPO / "recipes" / "smollm2-135m" / "sft_lora.yaml").read_text())
    assert shipped["dataset_mixture"] == {**script.CANDIDATES["mlp-rows112"]["dataset_mixture"], "seed": 42}


def test_round_22_probe_doubles_round_21s_draws_and_its_test_phase_is_refused(tmp_path):
    """Round 22 is a probe: round 21's choice with each source's draws twice as many (44,666 rows, 1,396 steps of
    32), beyond the budget, so ``test`` refuses it before the record or any test row is touched."""
    import math

    script = _script()
    [(before, after)] = _changed(script, "mlp-rows112", "probe-rows2x").values()
    assert {name: round(_weights(after)[name] / _weights(before)[name], 2) for name in TRAIN_ROWS} == {
        "fpb": 2.0, "fiqa": 2.0, "tfns": 2.0}
    drawn = _drawn(before, after)
    assert drawn == [22333, 44666] and math.ceil(drawn[1] / 32) == 1396
    assert script.round_of("probe-rows2x") == 22 and script.PROBES == {"probe-rows2x"}
    record = script.record_path("probe-rows2x")
    before_bytes = record.read_bytes() if record.exists() else None
    with pytest.raises(SystemExit, match="'probe-rows2x' is a probe .*never looked at"):
        script.test("probe-rows2x", tmp_path)
    assert (record.read_bytes() if record.exists() else None) == before_bytes


def test_round_26_candidate_reads_fiqas_labels_from_its_scores_in_round_24s_choice(data_dir):
    """Round 26's candidate differs from round 24's choice only in FiQA-SA's score_noise; its mixture has the same
    rows in the same order (698 steps of 32) and only FiQA-SA's labels differ, on the 532 draws the round's rule
    names; the control's mixture is the one the shipped figures were trained on (its committed content hash)."""
    import json
    import math

    from fingpt_hf.data.mixture import MixtureConfig, build_mixture

    script = _script()
    [(before, after)] = _changed(script, "xeon-loraplus-control", "loraplus-fiqa-noise10").values()
    assert [{k: v for k, v in d.items() if k != "score_noise"} for d in after["datasets"]] == before["datasets"]
    assert [d.get("score_noise") for d in after["datasets"]] == [None, 0.1, None, None]
    assert script.round_of("loraplus-fiqa-noise10") == 26
    (old, old_report), (new, report) = (build_mixture(MixtureConfig.from_dict(m), data_dir) for m in (before, after))
    shipped = json.loads((script.ROOT / "benchmarks/results/cpu_default_round24/seed42/fingpt_run.json").read_text())
    assert old_report.content_hash == shipped["mixture"]["content_hash"] != report.content_hash
    assert [s.relabelled for s in report.sources] == [0, 532, 0]
    assert list(new["input"]) == list(old["input"]) and list(new["dataset"]) == list(old["dataset"])
    differ = [(d, a, b) for d, a, b in zip(old["dataset"], old["output"], new["output"]) if a != b]
    assert {d for d, _, _ in differ} == {"fiqa"} and len(differ) == 532
    assert (len(new), math.ceil(len(new) / 32)) == (22333, 698)


@pytest.mark.parametrize("round_number, candidate, base, changes", [
    (10, "fiqa8-lr3e-3", "fpb15-fiqa8-more", {"learning_rate": (2.0e-3, 3.0e-3)}),
    (11, "fiqa8-lr15e-4", "fpb15-fiqa8-more", {"learning_rate": (2.0e-3, 1.5e-3)}),
    (12, "fiqa8-r8", "fpb15-fiqa8-more", {"lora_r": (16, 8), "lora_alpha": (32, 16)}),  # the same alpha/r
    (13, "fiqa8-warmup10", "fpb15-fiqa8-more", {"warmup_steps": (0.03, 0.1)}),
    (14, "warmup10-minlr10", "fiqa8-warmup10",
     {"lr_scheduler_type": ("cosine", "cosine_with_min_lr"), "lr_scheduler_kwargs": (None, {"min_lr_rate": 0.1})}),
    (15, "fiqa8-warmup20", "fiqa8-warmup10", {"warmup_steps": (0.1, 0.2)}),
    (16, "warmup10-ls01", "fiqa8-warmup10", {"label_smoothing_factor": (None, 0.1)}),
    (18, "fiqa8-qkv", "fiqa8-warmup10", {"lora_target_modules": ("all-linear", ["q_proj", "k_proj", "v_proj"])}),
    (19, "fiqa8-mlp", "fiqa8-warmup10", {"lora_target_modules": ("all-linear", ["gate_proj", "up_proj", "down_proj"])}),
    (20, "epyc-control-warmup10", "fiqa8-warmup10", {}),  # round 20 runs round 19's comparison again on an EPYC
    (20, "epyc-fiqa8-mlp", "fiqa8-mlp", {}),
    (23, "gqa-control", "mlp-rows112", {}),  # round 21's choice on the code of the shipped figures
    (23, "mlp-dora", "mlp-rows112", {"use_dora": (None, True)}),
    (24, "traced-dora-control", "mlp-dora", {}),  # round 23's choice on the code of the shipped figures
    (24, "dora-loraplus16", "mlp-dora", {"learning_rate": (2.0e-3, 5.0e-4), "loraplus_lr_ratio": (None, 16.0)}),
    (25, "loraplus-control", "dora-loraplus16", {}),  # round 24's choice, as round 25's control
    (25, "loraplus-ema995", "dora-loraplus16", {"ema_decay": (None, 0.995)}),
    (26, "xeon-loraplus-control", "dora-loraplus16", {}),  # round 24's choice again, on the Intel Xeon with AMX
    (27, "xeon27-loraplus-control", "dora-loraplus16", {}),
    (27, "loraplus-neftune5", "dora-loraplus16", {"neftune_noise_alpha": (None, 5.0)}),
    (28, "xeon28-loraplus-control", "dora-loraplus16", {}),
    (28, "loraplus-neftune5-fpb", "dora-loraplus16", {"neftune_noise_alpha": (None, 5.0),
                                                      "neftune_sources": (None, ["fpb"])}),
    (29, "loraplus-neftune5-fpb-tfns", "dora-loraplus16", {"neftune_noise_alpha": (None, 5.0),
                                                           "neftune_sources": (None, ["fpb", "tfns"])}),
    (30, "loraplus-eva", "dora-loraplus16", {"lora_init": (None, "eva")}),
])
def test_later_rounds_change_only_the_settings_they_name_in_the_choice_before(round_number, candidate, base, changes):
    """Rounds 10-13 each change round 7's choice, rounds 14-19 round 13's, in the settings named here and nowhere else
    (round 17's change is tested on its own above); round 20's two are round 13's choice and round 19's candidate; round
    23's are round 21's choice and it with DoRA; round 24's round 23's choice and it with LoRA+ (A's rate 5e-4, B's 16
    times it: 2e-3 their geometric mean); round 25's round 24's choice and it with the adapter's moving average; round
    27's round 24's choice and it with NEFTune; round 28's round 24's choice and it with NEFTune on FPB's rows; round
    29's it with NEFTune on FPB's and TFNS's rows; round 30's it with EVA's initialisation of LoRA's A."""
    script = _script()
    assert _changed(script, base, candidate) == changes
    assert script.round_of(candidate) == round_number
    assert script.record_path(candidate).name == f"selection_round{round_number}.json"


def test_round_31_trades_dora_for_1_3_times_the_draws_of_each_source():
    """Round 31's candidate is round 24's choice with plain LoRA and each source's weight 1.3 times its own (to 2
    decimals; NWGI, skipped offline, as it was), nothing else changed."""
    script = _script()
    changed = _changed(script, "dora-loraplus16", "loraplus-rows130")
    assert set(changed) == {"use_dora", "dataset_mixture"} and changed["use_dora"] == (True, False)
    before, after = changed["dataset_mixture"]
    assert {k: v for k, v in before.items() if k != "datasets"} == {k: v for k, v in after.items() if k != "datasets"}
    scaled = {name: (weight if name == "nwgi" else round(1.3 * weight, 2)) for name, weight in _weights(before).items()}
    assert _weights(after) == scaled == {"fpb": 2.18, "fiqa": 11.7, "tfns": 1.47, "nwgi": 1}
    assert script.round_of("loraplus-rows130") == 31


def test_rebuild_is_refused_before_training_on_a_cpu_whose_bf16_kernels_are_not_the_records(tmp_path, monkeypatch):
    """Round 19's seed 42 was trained on an Intel Xeon with AMX; rebuilt on an AMD EPYC with AVX512-BF16 alone it
    scored validation otherwise (its ``rebuilt`` entry). ``run`` now refuses such a rebuild before it trains or
    writes anything, naming both CPUs; on a CPU of the record's kind it goes on."""
    import json

    script = _script()
    record_path = script.record_path("fiqa8-mlp")
    recorded = next(r for r in json.loads(record_path.read_text())["runs"] if r["seed"] == 42)
    [epyc] = [r for r in recorded["rebuilt"] if not r["cpu"]["amx"]]
    assert epyc["validation_f1_weighted"] != recorded["validation_f1_weighted"]
    with pytest.raises(SystemExit, match=r"seed 42 was trained on a CPU with \{'amx': True.*\(Intel\(R\) Xeon\(R\) "
                                         r"Processor\), this one has \{'amx': False.*\(AMD EPYC\)"):
        script.check_rebuildable(recorded, epyc["cpu"])
    script.check_rebuildable(recorded, recorded["cpu"])  # the record's own kind: no objection
    script.check_rebuildable({k: v for k, v in recorded.items() if k != "cpu"}, epyc["cpu"])  # rounds 1-3: unknown

    def no_training(*args, **kwargs):
        raise AssertionError("trained before the CPU was checked")

    monkeypatch.setattr(script, "cpu_description", lambda: epyc["cpu"])
    monkeypatch.setattr(script.subprocess, "run", no_training)
    before = record_path.read_bytes()
    with pytest.raises(SystemExit, match="a rebuild here cannot be the recorded run"):
        script.run("fiqa8-mlp", [42], tmp_path)
    assert record_path.read_bytes() == before and not any(tmp_path.iterdir())


def test_run_scores_an_adapter_it_did_not_train_only_if_it_is_a_finished_run_of_the_candidate_on_this_kind_of_cpu(
        tmp_path, monkeypatch):
    """Round 20 scores adapters trained before it (the shipped recipe's seeds on the EPYC). ``run`` takes such an
    adapter only if its fingpt_run.json shows a completed run of the candidate's recipe on a CPU with this one's bf16
    kernels; otherwise it stops before it scores or writes anything. Real run files: round 13's committed seed 43
    (trained on the Xeon with AMX)."""
    import json

    script = _script()
    committed = REPO / "benchmarks" / "results" / "cpu_default_round13" / "seed43" / "fingpt_run.json"
    info = json.loads(committed.read_text())
    xeon, epyc = info["cpu"], {**info["cpu"], "model_name": "AMD EPYC", "torch_capability": "AVX512", "amx": False}

    def adapter_dir(seed: int, run_info: dict) -> None:
        adapter = tmp_path / "epyc-control-warmup10" / f"seed{seed}" / "adapter"
        adapter.mkdir(parents=True)
        (adapter / "adapter_model.safetensors").write_bytes(b"")
        (adapter / "fingpt_run.json").write_text(json.dumps(run_info))

    class Scored(Exception):
        pass

    def no_subprocess(command, **kwargs):  # training or scoring: the checks come before both
        raise Scored(command)

    monkeypatch.setattr(script.subprocess, "run", no_subprocess)
    record_path = script.record_path("epyc-control-warmup10")
    before = record_path.read_bytes() if record_path.exists() else None

    def refused(seed: int, match: str) -> None:
        with pytest.raises(SystemExit, match=match):
            script.run("epyc-control-warmup10", [seed], tmp_path)
        assert not (tmp_path / "epyc-control-warmup10" / f"seed{seed}" / "recipe.yaml").exists()

    monkeypatch.setattr(script, "cpu_description", lambda: xeon)
    adapter_dir(43, info)  # the candidate's own recipe, seed 43, on a CPU of this kind: scored
    with pytest.raises(Scored, match="--split.*validation"):
        script.run("epyc-control-warmup10", [43], tmp_path)
    adapter_dir(44, info)  # seed 43's run in seed 44's place: another recipe hash
    refused(44, "was trained from another recipe")
    adapter_dir(45, {**info, "status": "running"})  # a killed training
    refused(45, "holds no completed run")
    monkeypatch.setattr(script, "cpu_description", lambda: epyc)
    (tmp_path / "epyc-control-warmup10" / "seed43" / "recipe.yaml").unlink(missing_ok=True)
    refused(43, r"trained on a CPU with \{'amx': True.*this one has \{'amx': False")
    assert (record_path.read_bytes() if record_path.exists() else None) == before
