"""Probe only: classic-control envs with observations scaled by their Box bounds to [-1, 1]."""
import gymnasium as gym
import numpy as np


class ScaleByBounds(gym.ObservationWrapper):
    def __init__(self, env):
        super().__init__(env)
        low, high = env.observation_space.low, env.observation_space.high
        self.center = ((high + low) / 2).astype(np.float32)
        self.half = ((high - low) / 2).astype(np.float32)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, low.shape, np.float32)

    def observation(self, obs):
        return ((obs - self.center) / self.half).astype(np.float32)


def make_acrobot(**kwargs):
    return ScaleByBounds(gym.make("Acrobot-v1", **kwargs).unwrapped)


def make_mountaincar(**kwargs):
    return ScaleByBounds(gym.make("MountainCar-v0", **kwargs).unwrapped)


gym.register("AcrobotScaled-v1", entry_point=make_acrobot, max_episode_steps=500)
gym.register("MountainCarScaled-v0", entry_point=make_mountaincar, max_episode_steps=200)
