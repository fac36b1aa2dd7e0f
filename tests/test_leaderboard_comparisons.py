"""Which pairs the leaderboard tests: methods against frozen and their rival, ablations against their parent."""

from __future__ import annotations

import random

import pytest

from harness.leaderboard import comparisons
from harness.results import Result, ResultKey


def _result(baseline: str, method: str, shift: float, seed: int = 0) -> Result:
    rng = random.Random(baseline)
    per_query = {f"q{i}": min(1.0, max(0.0, 0.5 + shift + rng.uniform(-0.05, 0.05))) for i in range(60)}
    key = ResultKey(task="t", baseline=baseline, model="m", config_hash=baseline[:8], profile="small", seed=seed)
    return Result(key=key, main_score="ndcg_at_10", scores={"ndcg_at_10": sum(per_query.values()) / 60}, evaluation_time=0.0,
                  dataset_revision="x", run_info={"method": method}, per_query=per_query)


def test_ablations_are_tested_against_their_parent_and_methods_against_frozen_and_rival():
    results = [_result("frozen", "frozen", 0.0), _result("contrastive", "contrastive", 0.3), _result("heal", "heal", 0.2),
               _result("heal-gold", "heal", 0.3), _result("heal-coarse", "heal", 0.2)]
    table = comparisons(results)
    pairs = {(row.baseline, row.against_baseline): row for row in table.itertuples()}
    assert set(pairs) == {
        ("contrastive", "frozen"),
        ("heal", "frozen"), ("heal", "contrastive"),
        ("heal-gold", "frozen"), ("heal-gold", "contrastive"), ("heal-gold", "heal"),
        ("heal-coarse", "frozen"), ("heal-coarse", "contrastive"), ("heal-coarse", "heal"),
    }
    assert pairs[("heal-gold", "heal")].significant == "yes" and pairs[("heal-gold", "heal")].delta > 0.05
    assert pairs[("heal-coarse", "heal")].significant == "no"  # same shift, only noise apart


def _per_seed(shift: float, seed_noise: list[float], n: int = 200, salt: str = "") -> list[dict[str, float]]:
    rng = random.Random(salt)
    base = [rng.uniform(0.2, 0.8) for _ in range(n)]
    return [{f"q{i}": base[i] + shift + noise + rng.uniform(-0.01, 0.01) for i in range(n)} for noise in seed_noise]


def test_paired_test_counts_seed_variance():
    """A delta of 0.02 is clear over queries, but not when the three seeds of each side spread by +-0.05."""
    from harness.stats import paired_bootstrap_p

    steady = paired_bootstrap_p(_per_seed(0.02, [0, 0, 0], salt="a"), _per_seed(0.0, [0, 0, 0], salt="a"))
    noisy = paired_bootstrap_p(_per_seed(0.02, [-0.05, 0.0, 0.05], salt="a"), _per_seed(0.0, [0.05, 0.0, -0.05], salt="a"))
    assert steady < 0.01
    assert noisy > 0.05


def test_identical_systems_are_not_different():
    from harness.stats import paired_bootstrap_p

    same = _per_seed(0.0, [0.0], salt="b")
    assert paired_bootstrap_p(same, same) == 1.0
    # one seed against three copies of it: a mean of three equal floats can differ from them in the last bit,
    # which must not read as a one-sided difference (it gave p = 2 / (n + 1) before)
    tenths = [{f"q{i}": 0.1 * (i % 3) for i in range(50)}]
    assert paired_bootstrap_p(tenths, tenths * 3, n_resamples=2000) == 1.0
    # ...and a real difference on top of such rounding is still found
    assert paired_bootstrap_p([{q: v + 0.05 for q, v in tenths[0].items()}], tenths * 3, n_resamples=2000) < 0.01


def test_holm_adjusts_step_down_and_keeps_order():
    from harness.stats import holm

    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == [0.03, 0.06, 0.06, 0.02]


def test_a_declared_reference_replaces_the_default_pairing():
    results = [_result("frozen", "frozen", 0.0), _result("contrastive", "contrastive", 0.3), _result("heal", "heal", 0.2),
               _result("heal-instance", "heal", 0.25), _result("heal-cw03", "heal", 0.2)]
    table = comparisons(results, declared={"heal-cw03": ("heal-instance", "heal")})
    pairs = {(row.baseline, row.against_baseline) for row in table.itertuples()}
    assert {("heal-cw03", "frozen"), ("heal-cw03", "heal-instance"), ("heal-cw03", "heal")} <= pairs
    assert ("heal-cw03", "contrastive") not in pairs  # the declaration, not the method's default, decides
    assert ("heal-instance", "contrastive") in pairs and ("heal-instance", "heal") in pairs  # undeclared: defaults


def test_compare_with_is_read_from_the_baseline_file_and_stays_out_of_the_hash(tmp_path):
    from harness.baselines import declared_comparisons, load_baseline

    (tmp_path / "heal-x.toml").write_text('method = "heal"\ncompare_with = ["heal", "contrastive"]\nlabel_source = "gold"\n')
    (tmp_path / "heal-y.toml").write_text('method = "heal"\nlabel_source = "gold"\n')
    x, y = load_baseline("heal-x", tmp_path), load_baseline("heal-y", tmp_path)
    assert x.compare_with == ("heal", "contrastive") and x.config_hash == y.config_hash
    assert declared_comparisons(tmp_path) == {"heal-x": ("heal", "contrastive")}


def _answered(baseline: str, method: str, hallucinated: dict[str, float], seed: int = 0) -> Result:
    metric = "hallucinated_answer_rate_lexical_gold_at_3"
    result = _result(baseline, method, 0.0, seed)
    return Result(**{**result.__dict__, "per_query_other": {metric: hallucinated}})


def test_generated_answer_outcomes_are_tested_pairwise_over_the_queries_both_rows_answered():
    from harness.leaderboard import answer_comparisons

    frozen = {f"q{i}": 1.0 for i in range(40)}  # every answer hallucinated
    better = {**{f"q{i}": 0.0 for i in range(30)}, **{f"q{i}": 1.0 for i in range(30, 39)}}  # q39 left empty
    same = {f"q{i}": 1.0 for i in range(39)}
    results = [_answered("frozen", "frozen", frozen), _answered("contrastive", "contrastive", better),
               _answered("heal", "heal", same), _result("lora", "lora", 0.1)]  # lora has no answers: no answer test
    table = answer_comparisons(results)
    pairs = {(row.baseline, row.against_baseline): row for row in table.itertuples()}
    assert set(pairs) == {("contrastive", "frozen"), ("heal", "frozen"), ("heal", "contrastive")}
    assert set(table.metric) == {"hallucinated_answer_rate_lexical_gold_at_3"}
    assert pairs[("contrastive", "frozen")].delta == pytest.approx(-30 / 39)  # over the 39 queries both answered, not 9/39 - 40/40
    assert pairs[("contrastive", "frozen")].significant == "yes"
    assert pairs[("heal", "frozen")].delta == 0.0 and pairs[("heal", "frozen")].significant == "no"
    assert (table.p_holm >= table.p_value).all()


def test_per_query_outcomes_round_trip_and_leave_a_plain_result_unchanged():
    import json

    plain = _result("frozen", "frozen", 0.0)
    assert list(plain.to_json()["per_query"]) == ["ndcg_at_10"]
    answered = _answered("heal", "heal", {"q1": 1.0, "q2": 0.0})
    back = Result.from_json(json.loads(json.dumps(answered.to_json())))
    assert back.per_query == answered.per_query and back.per_query_other == answered.per_query_other
    assert Result.from_json(json.loads(json.dumps(plain.to_json()))) == plain


def _seeded(baseline: str, method: str, values: list[float], gold_labels: bool = False) -> list[Result]:
    runs = []
    for seed, value in enumerate(values):
        result = _result(baseline, method, 0.0, seed)
        train_info = {"label_source": "gold"} if gold_labels else {}
        runs.append(Result(**{**result.__dict__, "scores": {**result.scores, "hier_path_doc_f1": value},
                              "train_info": train_info}))
    return runs


def test_hierarchy_summaries_are_tested_over_seeds_only_with_three_seeds_a_side_and_without_label_supervised_rows():
    from harness.leaderboard import seed_comparisons

    results = (_seeded("frozen", "frozen", [0.50, 0.51, 0.49]) + _seeded("contrastive", "contrastive", [0.60, 0.61, 0.59])
               + _seeded("heal", "heal", [0.62, 0.58, 0.60]) + _seeded("lora", "lora", [0.9, 0.9])  # two seeds: untested
               + _seeded("heal-gold", "heal", [0.9, 0.91, 0.92], gold_labels=True))  # trained on the scored labels
    table = seed_comparisons(results, declared={})
    pairs = {(row.baseline, row.against_baseline): row for row in table.itertuples()}
    assert set(pairs) == {("contrastive", "frozen"), ("heal", "frozen"), ("heal", "contrastive")}
    assert set(table.metric) == {"hier_path_doc_f1"} and set(table.seeds) == {"3 vs 3"}
    assert pairs[("contrastive", "frozen")].delta == pytest.approx(0.10) and pairs[("contrastive", "frozen")].significant == "yes"
    assert pairs[("heal", "contrastive")].delta == pytest.approx(0.0, abs=1e-12) and pairs[("heal", "contrastive")].p_value > 0.5


def test_seed_test_skips_rows_without_seed_variance_and_welch_refuses_them():
    from harness.leaderboard import seed_comparisons
    from harness.stats import welch_p

    results = _seeded("frozen", "frozen", [0.5, 0.5, 0.5]) + _seeded("bm25", "bm25", [0.4, 0.4, 0.4])
    assert seed_comparisons(results, declared={}).empty  # a difference without seed spread is query variance
    with pytest.raises(ValueError, match="spread"):
        welch_p([0.5, 0.5, 0.5], [0.4, 0.4, 0.4])
    assert welch_p([0.50, 0.51, 0.49], [0.40, 0.40, 0.40]) < 0.01


def _swept(baseline: str, shift: float, seed: int, best_dev: float) -> Result:
    result = _result(baseline, "contrastive", shift, seed)
    curve = [{"step": 0, "ndcg_at_10": 0.4}, {"step": 50, "ndcg_at_10": best_dev}]
    return Result(**{**result.__dict__, "train_info": {"trained": True, "selected_step": 50, "dev_curve": curve}})


def test_a_tuned_row_keeps_per_seed_the_candidate_best_on_dev_and_is_tested_against_its_baseline(tmp_path):
    from harness.baselines import declared_sweeps
    from harness.leaderboard import build, dev_selected

    results = [_swept("contrastive", 0.1, 0, best_dev=0.70), _swept("contrastive-lr1e4", 0.3, 0, best_dev=0.75),
               _swept("contrastive", 0.1, 1, best_dev=0.72), _swept("contrastive-lr1e4", 0.3, 1, best_dev=0.72),  # tie
               _swept("contrastive", 0.1, 2, best_dev=0.70),  # no lr1e4 seed 2: not a tuned seed
               _result("frozen", "frozen", 0.0)]
    tuned = dev_selected(results, {"contrastive": ("contrastive-lr1e4",)})
    assert [(r.key.baseline, r.key.seed, r.run_info["dev_selected"]["kept"]) for r in tuned] == [
        ("contrastive-tuned", 0, "contrastive-lr1e4"), ("contrastive-tuned", 1, "contrastive")]
    assert tuned[0].per_query == results[1].per_query and tuned[0].train_info == results[1].train_info  # kept whole
    assert tuned[0].run_info["dev_selected"]["best_dev"] == {"contrastive": 0.70, "contrastive-lr1e4": 0.75}
    assert len({r.key.config_hash for r in tuned}) == 1 and tuned[0].key.config_hash not in {r.key.config_hash for r in results}
    board = build(results, declared={}, sweeps={"contrastive": ("contrastive-lr1e4",)})
    pairs = {(row.baseline, row.against_baseline): row for row in board.comparisons.itertuples()}
    assert pairs[("contrastive-tuned", "contrastive")].seeds == "2 vs 3" and ("contrastive-tuned", "frozen") in pairs
    assert "contrastive-tuned" in board.main.index.get_level_values("baseline")
    assert board.branch_comparisons.empty and board.seed_comparisons.empty  # repeated runs: main score only
    kept = board.frame[board.frame.baseline == "contrastive-tuned"].sort_values("seed").dev_kept.tolist()
    assert kept == ["contrastive-lr1e4", "contrastive"] and board.frame[board.frame.baseline == "frozen"].dev_kept.isna().all()
    assert dev_selected(results, {}) == [] and dev_selected([results[-1]], {"frozen": ("bm25",)}) == []  # no dev curves
    from harness.baselines import load_baseline
    from harness.errors import InputError

    (tmp_path / "c.toml").write_text('method = "contrastive"\ndev_sweep = ["c-lr"]\n')
    (tmp_path / "c-lr.toml").write_text('method = "contrastive"\nlearning_rate = 1e-4\n')
    (tmp_path / "plain.toml").write_text('method = "contrastive"\n')
    assert declared_sweeps(tmp_path) == {"c": ("c-lr",)}
    assert load_baseline("c", tmp_path).config_hash == load_baseline("plain", tmp_path).config_hash  # not hashed
    (tmp_path / "bad.toml").write_text('method = "contrastive"\n\ndev_sweep = "c-lr"\n')
    with pytest.raises(InputError, match=r"bad.toml:3: `dev_sweep` must be a list of baseline names"):
        load_baseline("bad", tmp_path)
