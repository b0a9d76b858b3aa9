"""A run interrupted by a crash and resumed, for the exact-resume tests."""

import pytest


class Crash(RuntimeError):
    pass


def crash_then_resume(train, config, run_dir, after_step: int, **kwargs):
    """Train ``config`` (seed 0) into ``run_dir``, crash at the first episode end past ``after_step``,
    then resume: returns the resumed run's result."""

    def crash(info):
        if info["step"] > after_step:
            raise Crash()

    with pytest.raises(Crash):
        train(config, seed=0, run_dir=run_dir, progress=False, on_episode_end=crash, **kwargs)
    return train(config, seed=0, run_dir=run_dir, resume=True, progress=False, **kwargs)
