"""The agent learns: the default preset solves CartPole-v1's 195 threshold within a small step budget."""

from saclab.config import preset
from saclab.runs.online import train_online


def test_default_preset_learns_cartpole(tmp_path):
    config = preset("default").replace(total_steps=8000, max_episode_steps=200, eval_every_episodes=5,
                                       eval_episodes=10, checkpoint_every_steps=0)
    result = train_online(config, seed=0, run_dir=tmp_path, progress=False, save_replay=False)
    returns = [row["return_mean"] for row in result.evaluations]
    assert max(returns) >= 195, returns
