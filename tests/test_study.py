"""The study end to end on tiny budgets: every figure and table, numbers equal to the run logs,
and a second invocation that resumes without redoing finished runs."""

import json

import pytest

from saclab.cli.main import main
from saclab.config import preset
from saclab.launch.plan import StudyPlan, plan_study
from saclab.launch.study import offline_jobs, online_jobs, run_study
from saclab.runs.runlog import read_evaluations


def tiny_plan() -> StudyPlan:
    base = preset("test")
    online = base.replace(max_episode_steps=200, eval_every_episodes=4, eval_episodes=4, total_steps=600)
    offline = base.replace(max_episode_steps=200, epochs=2, offline_eval_episodes=4)
    return StudyPlan("test", True, online, offline, online_seeds=(0, 1), offline_seeds=(0, 1),
                     tiers=("expert", "medium", "random"), tier_episodes=24, tier_seeds=(0,), tier_epochs=2,
                     sweep_weights=(0.0, 1.0, 5.0), sweep_seeds=(0,), sweep_epochs=2,
                     ablation_seeds=(0, 1), ablation_epochs=2)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    plan = tiny_plan()
    report = run_study(plan, out, workers=2)
    return plan, out, report


def test_report_has_every_figure_and_table(study):
    _, out, report = study
    text = report.read_text()
    for figure in ("online.png", "offline.png", "cql_sweep.png", "q_vs_mc.png"):
        assert (out / "report" / "figures" / figure).stat().st_size > 5000
        assert f"figures/{figure}" in text
    assert "| agent / data | n | final mean | final IQM [95% CI]" in text
    for question in ("Why do online and offline performance differ?", "Which is better, offline SAC or CQL?",
                     "What does TRADEOFF_FACTOR do?"):
        assert question in text
    assert "| replay/bc | 2 |" in text and "Against behaviour cloning" in text and ", BC " in text
    html = (out / "report" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "<table>" in html
    assert "# saclab study: SAC, offline SAC and CQL on CartPole-v1" in text
    assert "episodes capped at 200 steps" in text and "r_max/(1-γ) = 100.0" in text


def test_the_plan_records_the_env_and_where_the_runs_are(study):
    plan, out, _ = study
    saved = json.loads((out / "study.json").read_text())
    assert saved["env"] == "CartPole-v1" and StudyPlan.from_dict(saved) == plan
    groups = dict(saved["groups"])
    assert list(groups)[:3] == ["online", "replay/sac", "replay/cql"]
    assert groups["online"] == ["online/seed-0", "online/seed-1"]
    assert dict(saved["datasets"])["expert"] == "datasets/expert.h5"


def test_report_command_rebuilds_a_report_from_an_older_study_json(study, capsys):
    _, out, _ = study
    saved = json.loads((out / "study.json").read_text())
    numbers = json.loads((out / "report" / "numbers.json").read_text())
    older = {k: v for k, v in saved.items() if k not in ("groups", "datasets", "env")}
    (out / "study.json").write_text(json.dumps(older))
    assert main(["report", str(out)]) == 0
    assert json.loads((out / "study.json").read_text()) == saved
    assert json.loads((out / "report" / "numbers.json").read_text())["groups"] == numbers["groups"]


def test_report_numbers_equal_the_run_logs(study):
    plan, out, _ = study
    numbers = json.loads((out / "report" / "numbers.json").read_text())
    online_runs = [j.run_dir for j in online_jobs(plan, out)]
    finals = [read_evaluations(r)[-1]["return_mean"] for r in online_runs]
    assert numbers["groups"]["online"]["final_values"] == finals
    _, groups = offline_jobs(plan, out)
    for name, runs in groups.items():
        evals = [read_evaluations(r) for r in runs]
        assert numbers["groups"][name]["final_values"] == [e[-1]["return_mean"] for e in evals]
        assert numbers["groups"][name]["best_values"] == [max(r["return_mean"] for r in e) for e in evals]
        if "q_data" in evals[0][-1]:  # behaviour cloning learns no values
            assert numbers["groups"][name]["q_data"] == pytest.approx(sum(e[-1]["q_data"] for e in evals) / len(evals))
    # the sweep reuses identical runs instead of training them twice
    assert groups["sweep/0"][0] == groups["replay/sac"][0] and groups["sweep/5"][0] == groups["replay/cql"][0]
    # the text quotes the table's numbers
    text = (out / "report" / "report.md").read_text()
    assert f"{numbers['groups']['online']['final']['iqm']:.1f}" in text


def test_second_invocation_resumes_without_redoing(study):
    plan, out, _ = study
    results = sorted(out.glob("**/result.json"))
    # online, replay sac/cql, tiers, sweep weight 1 only; the ablation: 3 online variants (corrected is the
    # online group), 4 offline variants per agent (corrected is replay/sac and replay/cql)
    assert len(results) == 2 + 2 * 3 + 3 * 3 + 1 + 3 * 2 + 4 * 2 * 2  # replay and tiers: sac, cql and bc
    stamps = {p: p.stat().st_mtime_ns for p in results}
    run_study(plan, out, workers=2)
    assert {p: p.stat().st_mtime_ns for p in sorted(out.glob("**/result.json"))} == stamps


def test_a_different_study_in_the_same_directory_is_refused(study, capsys):
    _, out, _ = study
    assert main(["study", "--preset", "notebook", "--out", str(out)]) == 2
    assert "holds a different study" in capsys.readouterr().err


def test_plans():
    quick, full = plan_study("default", quick=True), plan_study("notebook")
    assert full.online.total_episodes == 1000 and full.online.batch_size == 100 and full.offline.epochs == 200
    assert full.offline.offline_eval_episodes == 100 and len(full.online_seeds) == 4
    assert quick.online.max_episode_steps == full.online.max_episode_steps == 200
    assert 5.0 in quick.sweep_weights and 0.0 in quick.sweep_weights


def test_the_ablation_runs_each_deviation_alone_and_all_together(study):
    plan, out, report = study
    groups = dict(json.loads((out / "study.json").read_text())["groups"])
    # the corrected online variant is the study's own online config: its runs are reused, not rerun
    assert groups["ablation/online/corrected"] == groups["online"]
    assert groups["ablation/online/temperature_loss"] == ["ablation/online/temperature_loss/seed-0",
                                                          "ablation/online/temperature_loss/seed-1"]
    assert "ablation/online/epoch_sampler" not in groups  # the sampler exists offline only
    for agent in ("sac", "cql"):
        for variant in ("corrected", "temperature_loss", "truncation", "epoch_sampler", "all"):
            assert len(groups[f"ablation/{agent}/{variant}"]) == 2
    config = json.loads((out / "ablation" / "cql" / "all" / "seed-1" / "config.json").read_text())["config"]
    assert config["notebook_temperature_loss"] and config["truncation_is_terminal"]
    assert config["notebook_epoch_sampler"] and config["cql_weight"] == 5.0
    numbers = json.loads((out / "report" / "numbers.json").read_text())
    online = {r["variant"]: r for r in numbers["ablation"]["online"]}
    assert list(online) == ["corrected", "temperature_loss", "truncation", "all"]
    for variant in ("temperature_loss", "all"):  # the notebook's loss: alpha only decays
        assert online[variant]["temperature"]["predicted"] == "decays"
        assert online[variant]["alpha"] < 1.0
    assert online["truncation"]["vs_corrected"]["final"]["name_b"] == "corrected"
    text = report.read_text()
    assert "## What the notebook's deviations cost" in text and "**Why α moved.**" in text
    assert text.count("| variant | n | final IQM [95% CI]") == 3
    assert "| ablation/" not in text  # the ablation's groups have their own tables, not the main one


def test_notebook_presets_plan_the_ablation_and_default_does_not():
    faithful = plan_study("notebook-faithful", quick=True)
    assert faithful.ablation_seeds == (0, 1, 2) and faithful.ablation_epochs == 60
    assert plan_study("notebook").ablation_seeds == (0, 1, 2, 3, 4)
    assert plan_study("default", quick=True).ablation_seeds == ()
