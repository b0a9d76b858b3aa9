"""The agent learns: the default preset, unchanged, on CartPole-v1 and on Acrobot-v1 within small budgets."""

from saclab.config import preset
from saclab.runs.online import train_online


def test_default_preset_learns_cartpole(tmp_path):
    config = preset("default").replace(total_steps=8000, max_episode_steps=200, eval_every_episodes=5,
                                       eval_episodes=10, checkpoint_every_steps=0)
    result = train_online(config, seed=0, run_dir=tmp_path, progress=False, save_replay=False, tensorboard=False)
    returns = [row["return_mean"] for row in result.evaluations]
    assert max(returns) >= 195, returns


def test_default_preset_learns_acrobot(tmp_path):
    # Acrobot pays -1 per step until the tip swings above the bar (500-step cap: -500 means never).  Seeds
    # 0-2 of the benchmark first reach the goal greedily at 18k-27k steps; the budget leaves a margin.
    config = preset("default").replace(env="Acrobot-v1", total_steps=35_000, eval_every_episodes=5,
                                       eval_episodes=5, checkpoint_every_steps=0)
    result = train_online(config, seed=1, run_dir=tmp_path, progress=False, save_replay=False, tensorboard=False)
    returns = [row["return_mean"] for row in result.evaluations]
    assert max(returns) >= -150, returns
    assert returns[-1] >= -200, returns  # and it keeps what it learned
