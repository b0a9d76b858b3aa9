"""Configuration: one frozen dataclass, the single source of truth for defaults.

``SACConfig`` holds every hyperparameter of the agent and of the training
loops (online and offline).  Presets are named ``SACConfig`` instances:

* ``notebook`` -- the course notebook's exact hyperparameters;
* ``default``  -- the project's recommendation (measured, see docs/presets.md);
* ``test``     -- tiny budgets for tests and smoke runs.

The CLI builds its ``--help`` from the field docstrings below.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from saclab.errors import SaclabError


@dataclass(frozen=True)
class SACConfig:
    """Discrete Soft Actor-Critic (online, offline and CQL)."""

    env: str = "CartPole-v1"
    """Gymnasium environment id (Discrete actions; flat or image Box observations, e.g. MinAtar/Breakout-v1,
    ALE/Pong-v5 with their extras), gymnax:Name for the compiled loop; "" = none (offline, no evaluation)."""

    # --- networks and optimisation -------------------------------------------------
    hidden_sizes: tuple[int, ...] = (128, 128)
    """Hidden layer widths of the actor and of each critic (after the encoder)."""
    encoder: str = "auto"
    """Observation encoder: auto (from the shape), mlp, minatar_cnn (small images) or nature_cnn (84x84 frames)."""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor."""
    critic_lr: float = 3e-4
    """Adam learning rate of the twin critics."""
    alpha_lr: float = 3e-4
    """Adam learning rate of log(alpha)."""
    batch_size: int = 256
    """Minibatch size of one update."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak factor of the target critics (target <- tau*online + (1-tau)*target)."""
    n_step: int = 1
    """Rewards summed in the critic's target before bootstrapping, within an episode (1 = one-step TD)."""
    critic_target_reduction: str = "mean"
    """How the twin target critics combine in the critic's target: min (clipped double Q) or mean (SD-SAC's
    double average; with q_clip, docs/presets.md)."""
    critic_target_pessimism: float = 1.0
    """With the mean reduction: subtract this many standard deviations of the twin target critics from their
    average (0 = the average; 1 = their min; between, a target between the two; docs/presets.md).  The min
    reduction ignores it (it is the min already)."""
    critic_target_pessimism_start: int = 100_000
    """Updates with no pessimism before critic_target_pessimism ramps in (0 with a ramp of 0: from the start)."""
    critic_target_pessimism_ramp: int = 100_000
    """Updates over which the pessimism grows linearly from 0 to critic_target_pessimism (0 = at once)."""
    critic_loss: str = "mse"
    """Penalty on the critics' TD errors: mse (squared) or huber (squared up to |e| = 1, linear beyond; SB3's DQN)."""
    q_clip: float = 0.5
    """SD-SAC's Q-clip (Zhou et al. 2024): a critic step gets no credit for moving Q(s, a) more than this
    from the target critics' value; 0 = off."""

    # --- entropy temperature ----------------------------------------------------------
    initial_alpha: float = 1.0
    """Initial entropy temperature alpha."""
    autotune_alpha: bool = True
    """Learn alpha towards the target entropy (False: alpha stays at initial_alpha)."""
    target_entropy_ratio: float = 0.8
    """Target entropy = ratio * log(number of actions) (the notebook: 0.98; docs/presets.md)."""
    entropy_backup: bool = False
    """Put the entropy bonus -alpha*log(pi) in the critic's target (soft Q, as the notebook). False keeps Q on
    the reward scale and the entropy in the actor and temperature losses only (docs/presets.md)."""
    notebook_temperature_loss: bool = False
    """Reproduce the notebook's temperature loss: a plain mean over actions, not weighted by pi (alpha only decays)."""

    # --- conservative Q-learning (offline) -----------------------------------------
    cql_weight: float = 0.0
    """CQL(H) weight: adds w * E_s[logsumexp_a Q(s,a) - Q(s,a_data)] to each critic loss (0 = off)."""

    # --- replay -------------------------------------------------------------------------
    buffer_size: int = 500_000
    """Replay buffer capacity (transitions)."""
    learning_starts: int = 256
    """Online: updates begin once the buffer holds this many transitions."""
    updates_per_step: float = 1
    """Online: gradient updates per environment step (the replay ratio).  Below 1 with update_every: 0.25 and
    update_every 4 is one update every 4 steps (CleanRL's and the DQN papers' Atari setting)."""
    update_every: int = 1
    """Online (Gymnasium envs): update every this many env steps, update_every x updates_per_step updates at
    once in one compiled scan (SB3's train_freq and gradient_steps): same update count, less per-call cost;
    the actions in between come from the policy of the last update.  1 = after every step."""
    prioritized_replay: bool = False
    """Proportional prioritised replay (sampling prob. ~ (|TD error| + eps)^priority_exponent)."""
    priority_exponent: float = 0.6
    """Prioritised replay: exponent of the priorities."""
    importance_exponent: float = 0.4
    """Prioritised replay: exponent of the importance-sampling weights (0 = no correction)."""

    # --- online schedule -----------------------------------------------------------
    max_episode_steps: int = 0
    """Episode length cap, a time-limit truncation that bootstraps (0 = the env's registered limit)."""
    total_episodes: int = 0
    """Online budget in episodes (0 = no episode limit; one of the two budgets must be set)."""
    total_steps: int = 30_000
    """Online budget in environment steps (0 = no step limit)."""
    eval_every_episodes: int = 4
    """Online: greedy evaluation every this many training episodes."""
    eval_episodes: int = 10
    """Online: greedy evaluation episodes per evaluation (run in one vector env)."""
    checkpoint_every_steps: int = 20_000
    """Online: save a checkpoint at the first episode end after this many steps (0 = only at the end)."""
    truncation_is_terminal: bool = False
    """Reproduce the notebook's `done`: treat a time-limit truncation as terminal (no bootstrap)."""

    # --- offline schedule ----------------------------------------------------------
    epochs: int = 200
    """Offline: passes over the dataset (each a fresh permutation of all transitions)."""
    offline_eval_episodes: int = 100
    """Offline: greedy evaluation episodes after each epoch."""
    notebook_epoch_sampler: bool = False
    """Reproduce the notebook's offline sampler (a permutation of the whole capacity: reads empty slots)."""
    algo: str = "sac"
    """Offline: sac (SAC; CQL-SAC with cql_weight > 0) or bc (behaviour cloning: the actor fits the logged actions)."""
    validation_fraction: float = -1.0
    """Offline: share of the episodes held out for the offline metrics (seeded split); -1 = 0.1 with no env, else 0."""

    def __post_init__(self) -> None:
        validate(self)

    def replace(self, **changes: object) -> SACConfig:
        """A copy with some fields changed (validated)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise SaclabError(f"unknown config field(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)

    @property
    def updates_per_call(self) -> int:
        """The updates done every ``update_every`` env steps: update_every x updates_per_step, a whole number."""
        return round(self.update_every * self.updates_per_step)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> SACConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise SaclabError(f"unknown config field(s): {', '.join(unknown)}")
        values = {**FIELDS_ADDED_LATER, **values}
        if "hidden_sizes" in values:
            values["hidden_sizes"] = tuple(int(h) for h in values["hidden_sizes"])
        return cls(**values)


FIELDS_ADDED_LATER: dict[str, object] = {
    "critic_target_pessimism": 0.0,
    "critic_target_pessimism_start": 0,  # k came a commit before its schedule: a constant k then
    "critic_target_pessimism_ramp": 0,
}
"""For a file written before a field existed (a checkpoint, a sweep): the value it was trained with,
where that is not the field's default (the pessimism ramp became the default on 2026-11-26)."""

ENCODERS = ("auto", "mlp", "minatar_cnn", "nature_cnn")
"""The observation encoders (core.networks); auto picks one from the observation shape."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise SaclabError(message)


def validate(c: SACConfig) -> None:
    """Refuse values that cannot train, with one line naming the field."""
    _check(isinstance(c.env, str), "env must be a Gymnasium id, or '' for an offline run without a simulator")
    _check(len(c.hidden_sizes) >= 1 and all(h >= 1 for h in c.hidden_sizes),
           f"hidden_sizes must be one or more positive widths, got {c.hidden_sizes}")
    _check(c.encoder in ENCODERS, f"encoder must be one of {', '.join(ENCODERS)}, got {c.encoder!r}")
    for name in ("actor_lr", "critic_lr", "alpha_lr"):
        v = getattr(c, name)
        _check(math.isfinite(v) and v > 0, f"{name} must be > 0, got {v}")
    _check(c.batch_size >= 1, f"batch_size must be >= 1, got {c.batch_size}")
    _check(0.0 <= c.gamma < 1.0, f"gamma must be in [0, 1), got {c.gamma}")
    _check(0.0 < c.tau <= 1.0, f"tau must be in (0, 1], got {c.tau}")
    _check(c.critic_target_reduction in ("min", "mean"),
           f"critic_target_reduction must be min or mean, got {c.critic_target_reduction!r}")
    _check(c.critic_loss in ("mse", "huber"), f"critic_loss must be mse or huber, got {c.critic_loss!r}")
    _check(0.0 <= c.critic_target_pessimism <= 1.0,
           f"critic_target_pessimism must be in [0, 1], got {c.critic_target_pessimism}")
    _check(c.critic_target_pessimism_start >= 0 and c.critic_target_pessimism_ramp >= 0,
           "critic_target_pessimism_start and critic_target_pessimism_ramp must be >= 0")
    _check(c.q_clip >= 0, f"q_clip must be >= 0 (0 = off), got {c.q_clip}")
    _check(1 <= c.n_step <= 1000, f"n_step must be in [1, 1000], got {c.n_step}")
    _check(math.isfinite(c.initial_alpha) and c.initial_alpha > 0,
           f"initial_alpha must be > 0, got {c.initial_alpha}")
    _check(0.0 <= c.target_entropy_ratio <= 1.0,
           f"target_entropy_ratio must be in [0, 1], got {c.target_entropy_ratio}")
    _check(math.isfinite(c.cql_weight) and c.cql_weight >= 0,
           f"cql_weight must be >= 0, got {c.cql_weight}")
    _check(c.buffer_size >= c.batch_size,
           f"buffer_size ({c.buffer_size}) must be >= batch_size ({c.batch_size})")
    _check(c.learning_starts >= 1, f"learning_starts must be >= 1, got {c.learning_starts}")
    _check(c.update_every >= 1, f"update_every must be >= 1, got {c.update_every}")
    per_call = c.update_every * c.updates_per_step
    _check(math.isfinite(per_call) and per_call >= 1 - 1e-9 and abs(per_call - round(per_call)) < 1e-9,
           f"update_every x updates_per_step must be a whole number >= 1 (the updates of one call), got "
           f"{c.update_every} x {c.updates_per_step} = {per_call:g}")
    _check(c.priority_exponent >= 0, f"priority_exponent must be >= 0, got {c.priority_exponent}")
    _check(0 <= c.importance_exponent <= 1,
           f"importance_exponent must be in [0, 1], got {c.importance_exponent}")
    _check(c.max_episode_steps >= 0, f"max_episode_steps must be >= 0 (0: the env's limit), got {c.max_episode_steps}")
    _check(c.total_episodes >= 0 and c.total_steps >= 0, "total_episodes and total_steps must be >= 0")
    _check(c.total_episodes > 0 or c.total_steps > 0,
           "set a budget: total_episodes > 0 or total_steps > 0")
    _check(c.eval_every_episodes >= 1, f"eval_every_episodes must be >= 1, got {c.eval_every_episodes}")
    _check(c.eval_episodes >= 1, f"eval_episodes must be >= 1, got {c.eval_episodes}")
    _check(c.checkpoint_every_steps >= 0,
           f"checkpoint_every_steps must be >= 0, got {c.checkpoint_every_steps}")
    _check(c.epochs >= 1, f"epochs must be >= 1, got {c.epochs}")
    _check(c.offline_eval_episodes >= 1,
           f"offline_eval_episodes must be >= 1, got {c.offline_eval_episodes}")
    _check(c.algo in ("sac", "bc"), f"algo must be sac or bc, got {c.algo!r}")
    _check(c.validation_fraction == -1.0 or 0.0 <= c.validation_fraction < 1.0,
           f"validation_fraction must be in [0, 1) (or -1: 0.1 without an env, else 0), got {c.validation_fraction}")


# ---------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------

NOTEBOOK = SACConfig(
    hidden_sizes=(256, 256),
    actor_lr=1e-4,
    critic_lr=1e-4,
    alpha_lr=1e-4,
    batch_size=100,
    gamma=0.99,
    tau=0.01,
    initial_alpha=1.0,
    target_entropy_ratio=0.98,
    entropy_backup=True,
    critic_target_reduction="min",  # the notebook's clipped double Q, without SD-SAC's Q-clip
    q_clip=0.0,
    cql_weight=0.0,  # the notebook's TRADEOFF_FACTOR (5) applies to its CQL agent only
    buffer_size=500_000,
    learning_starts=100,  # the notebook updates once the buffer holds one batch
    max_episode_steps=200,
    total_episodes=1000,
    total_steps=0,
    eval_every_episodes=4,
    eval_episodes=10,
    checkpoint_every_steps=50_000,
    epochs=200,
    offline_eval_episodes=100,
)
"""The course notebook's hyperparameters, exactly."""

NOTEBOOK_CQL_WEIGHT = 5.0
"""The notebook's TRADEOFF_FACTOR for its CQL agent."""

DEFAULT = SACConfig()
"""The project's recommendation (docs/presets.md has the measurements)."""

TEST = SACConfig(
    hidden_sizes=(64, 64),
    batch_size=64,
    buffer_size=10_000,
    learning_starts=64,
    max_episode_steps=100,
    total_steps=600,
    eval_every_episodes=5,
    eval_episodes=4,
    checkpoint_every_steps=0,
    epochs=2,
    offline_eval_episodes=4,
)
"""Tiny budgets for tests and smoke runs (learns nothing useful)."""

NOTEBOOK_DEVIATIONS: dict[str, dict[str, bool]] = {
    "temperature_loss": {"notebook_temperature_loss": True},
    "truncation": {"truncation_is_terminal": True},
    "epoch_sampler": {"notebook_epoch_sampler": True},
}
"""Where the notebook departs from discrete SAC, by name: the config switches that put each deviation on
(docs/presets.md).  The epoch sampler exists offline only."""

NOTEBOOK_FAITHFUL = NOTEBOOK.replace(**{k: v for switches in NOTEBOOK_DEVIATIONS.values() for k, v in switches.items()})
"""The notebook's hyperparameters with all of its deviations switched on (docs/presets.md)."""

PRESETS: dict[str, SACConfig] = {"default": DEFAULT, "notebook": NOTEBOOK, "notebook-faithful": NOTEBOOK_FAITHFUL,
                                 "test": TEST}


def preset(name: str) -> SACConfig:
    """The named preset: ``default``, ``notebook``, ``notebook-faithful`` or ``test``."""
    try:
        return PRESETS[name]
    except KeyError:
        raise SaclabError(f"unknown preset {name!r} (choose from {', '.join(PRESETS)})") from None


__all__ = ["SACConfig", "PRESETS", "preset", "NOTEBOOK", "NOTEBOOK_FAITHFUL", "DEFAULT", "TEST", "NOTEBOOK_CQL_WEIGHT",
           "NOTEBOOK_DEVIATIONS"]
