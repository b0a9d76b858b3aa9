"""The command line: help, one-line errors with exit status 2, a small real run."""

import json

import pytest

from saclab.cli.main import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "error:" in lines[0] and "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_usage_lists_commands(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "train" in out and "offline" in out and "study" in out


def test_train_help_shows_defaults_of_the_chosen_preset(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--preset", "notebook", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    assert "--batch-size" in out and "--cql-weight" in out and "(default: 100)" in out


@pytest.mark.parametrize("argv,fragment", [
    (["train", "--env", "NoSuchEnv-v0"], "unknown environment 'NoSuchEnv-v0'"),
    (["train", "--env", "Pendulum-v1"], "Discrete action space"),
    (["train", "--batch-size", "abc"], "--batch-size"),
    (["train", "--gamma", "1.5"], "gamma must be in [0, 1)"),
    (["train", "--update-every", "0"], "update_every must be >= 1"),
    (["train", "--update-every", "4", "--updates-per-step", "0.3"], "4 x 0.3 = 1.2"),
    (["train", "--updates-per-step", "0.5"], "must be a whole number >= 1"),
    (["train", "--q-clip", "-1"], "q_clip must be >= 0"),
    (["train", "--critic-target-pessimism", "1.5"], "critic_target_pessimism must be in [0, 1]"),
    (["train", "--env", "CartPole-v1", "--seeds", "2", "--vmap"], "--vmap trains the seeds in one compiled program"),
    (["train", "--env", "gymnax:CartPole-v1", "--seeds", "2", "--vmap", "--workers", "2"], "--workers is for"),
    (["train", "--no-such-flag"], "--no-such-flag"),
    (["train", "--preset", "nope"], "unknown preset"),
    (["frobnicate"], "unknown command"),
])
def test_bad_input_is_one_line(capsys, tmp_path, argv, fragment):
    code, _, err = run(capsys, *argv, *(["--out", str(tmp_path / "r")] if argv[0] == "train" else []))
    assert_one_line_error(code, err, fragment)


def test_missing_and_corrupt_checkpoints(capsys, tmp_path):
    code, _, err = run(capsys, "evaluate", str(tmp_path / "nothing"))
    assert_one_line_error(code, err, "checkpoint not found")
    bad = tmp_path / "bad" / "checkpoint"
    bad.mkdir(parents=True)
    (bad / "meta.json").write_text("{not json")
    (bad / "state.safetensors").write_bytes(b"garbage")
    code, _, err = run(capsys, "evaluate", str(tmp_path / "bad"))
    assert_one_line_error(code, err, "corrupt checkpoint")


def test_train_evaluate_plot_and_resume_guard(capsys, tmp_path):
    out = tmp_path / "run"
    code, stdout, _ = run(capsys, "train", "--preset", "test", "--out", str(out), "--total-steps", "300")
    assert code == 0
    summary = json.loads(stdout)
    assert summary["steps"] == 300 and (out / "seed-0" / "checkpoint" / "meta.json").is_file()
    assert (out / "curve.png").stat().st_size > 1000
    code, stdout, _ = run(capsys, "evaluate", str(out / "seed-0"), "--episodes", "3")
    assert code == 0 and json.loads(stdout)["episodes"] == 3
    # the same --out again without --resume must not overwrite the run
    code, _, err = run(capsys, "train", "--preset", "test", "--out", str(out), "--total-steps", "300")
    assert_one_line_error(code, err, "--resume")
    # a checkpoint from another configuration is refused on resume
    code, _, err = run(capsys, "train", "--preset", "test", "--out", str(out), "--resume", "--batch-size", "32")
    assert_one_line_error(code, err, "config differs in batch_size")
