"""Presets: the notebook's deviations are switches, and the temperature loss decides alpha's trend."""

import pytest

from saclab.config import DEFAULT, NOTEBOOK, SACConfig, preset
from saclab.runs.online import train_online
from saclab.runs.runlog import read_metrics


def test_notebook_faithful_is_the_notebook_with_its_three_deviations():
    faithful = preset("notebook-faithful")
    assert faithful.notebook_temperature_loss and faithful.notebook_epoch_sampler and faithful.truncation_is_terminal
    switches = {"notebook_temperature_loss", "notebook_epoch_sampler", "truncation_is_terminal"}
    assert {k: v for k, v in faithful.to_dict().items() if k not in switches} == \
           {k: v for k, v in NOTEBOOK.to_dict().items() if k not in switches}
    assert not any(getattr(preset("notebook"), k) for k in switches)


def test_a_file_from_before_the_pessimism_ramp_reads_as_trained():
    # a checkpoint written before critic_target_pessimism existed was trained on the plain average
    old = {k: v for k, v in DEFAULT.to_dict().items() if not k.startswith("critic_target_pessimism")}
    assert SACConfig.from_dict(old).critic_target_pessimism == 0.0
    # one written after k but before its schedule trained with a constant k, not the default ramp
    constant = SACConfig.from_dict({**old, "critic_target_pessimism": 0.5})
    assert (constant.critic_target_pessimism_start, constant.critic_target_pessimism_ramp) == (0, 0)
    assert DEFAULT.critic_target_pessimism == 1.0 and SACConfig.from_dict(DEFAULT.to_dict()) == DEFAULT


@pytest.mark.parametrize(("name", "falls"), [("notebook-faithful", True), ("notebook", False)])
def test_alpha_decays_under_the_notebooks_loss_and_rises_under_the_correct_one(tmp_path, name, falls):
    # The notebook's hyperparameters (target ratio 0.98) on CartPole, small networks and a faster alpha_lr
    # so the trend shows in 1,500 steps: the unweighted loss lowers alpha at every update whatever the policy,
    # the policy-weighted one raises it once the policy is more decided than the 0.98 * log 2 target.
    config = preset(name).replace(hidden_sizes=(64, 64), alpha_lr=1e-3, total_episodes=0, total_steps=1500,
                                  eval_every_episodes=10, eval_episodes=2, checkpoint_every_steps=0)
    train_online(config, seed=0, run_dir=tmp_path, tensorboard=False, save_replay=False, progress=False)
    alphas = [row["alpha"] for row in read_metrics(tmp_path)]
    if falls:
        assert all(b < a for a, b in zip(alphas, alphas[1:], strict=False)) and alphas[-1] < 0.2, alphas
    else:
        assert alphas[-1] > 2.0, alphas
