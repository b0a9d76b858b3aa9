"""The return of a uniformly random policy on gymnax envs: the floor a learning table is read against.

    python bench/random_returns.py --episodes 1000 Breakout-MinAtar Freeway-MinAtar

Each episode runs to its end or the env's own step cap, all episodes at once (vmapped).
"""

from __future__ import annotations

import argparse

import gymnax
import jax
import jax.numpy as jnp
import numpy as np


def random_returns(name: str, episodes: int, seed: int = 0) -> np.ndarray:
    env, params = gymnax.make(name)
    num_actions = env.action_space(params).n
    keys = jax.random.split(jax.random.PRNGKey(seed), episodes)

    def episode(key: jax.Array) -> jax.Array:
        key, reset_key = jax.random.split(key)
        _, state = env.reset(reset_key, params)

        def step(carry):
            state, key, total, _, t = carry
            key, act_key, step_key = jax.random.split(key, 3)
            action = jax.random.randint(act_key, (), 0, num_actions)
            # step_env: no auto-reset, so the episode ends where `done` first rises
            _, state, reward, done, _ = env.step_env(step_key, state, action, params)
            return state, key, total + reward, done, t + 1

        def running(carry):
            return jnp.logical_and(~carry[3], carry[4] < params.max_steps_in_episode)

        init = (state, key, jnp.zeros(()), jnp.zeros((), bool), jnp.zeros((), jnp.int32))
        return jax.lax.while_loop(running, step, init)[2]

    return np.asarray(jax.jit(jax.vmap(episode))(keys))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("envs", nargs="+", help="gymnax names, e.g. Breakout-MinAtar")
    parser.add_argument("--episodes", type=int, default=1000)
    args = parser.parse_args()
    print("| env | episodes | random return: mean ± standard error |")
    print("|---|---|---|")
    for name in args.envs:
        returns = random_returns(name, args.episodes)
        error = returns.std(ddof=1) / np.sqrt(len(returns))
        print(f"| {name} | {args.episodes} | {returns.mean():.2f} ± {error:.2f} |")


if __name__ == "__main__":
    main()
