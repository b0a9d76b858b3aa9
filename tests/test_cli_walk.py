"""Every command, given bad input, ends with one line on stderr and exit status 2, no traceback."""

import json

import numpy as np
import pytest

from saclab.cli.main import main
from saclab.config import TEST
from saclab.data.dataset import Dataset


@pytest.fixture
def files(tmp_path):
    """A workshop of broken inputs: a plain file, junk, malformed run and sweep files, a dataset."""
    (tmp_path / "file").write_text("not a directory")
    (tmp_path / "junk.h5").write_bytes(b"\x89HDF junk")
    run = tmp_path / "badrun" / "seed-0"
    run.mkdir(parents=True)
    (run / "evaluations.csv").write_text("step,return_mean\r\nten,x\r\n")
    (run / "config.json").write_text("[1, 2]")
    (run / "result.json").write_text('{"final_return": "high"}')
    sweep = tmp_path / "badsweep"
    sweep.mkdir()
    (sweep / "sweep.json").write_text(json.dumps({"labels": ["../../etc"], "seeds": [0]}))
    checkpoint = tmp_path / "badckpt" / "checkpoint"
    checkpoint.mkdir(parents=True)
    (checkpoint / "meta.json").write_text(json.dumps({"config": {**TEST.to_dict(), "gamma": "high"}}))
    (checkpoint / "state.safetensors").write_bytes(b"")
    n = 128
    rng = np.random.default_rng(0)
    Dataset(rng.normal(size=(n, 4)), rng.integers(0, 2, n), np.ones(n), rng.normal(size=(n, 4)), np.zeros(n, bool),
            np.zeros(n, bool), np.eye(1, n, dtype=bool)[0],
            metadata={"env_id": "a:b:c", "num_actions": 2, "obs_dim": 4}).save(tmp_path / "badenv.h5")
    return tmp_path


CASES = [
    ("train", "--out", "{t}/file"),
    ("train", "--out", "{t}/file/run"),
    ("train", "--env", "a:b:c", "--out", "{t}/r"),
    ("train", "--env", "Cart Pole", "--out", "{t}/r"),
    ("train", "--resume", "--out", "{t}/nothing"),
    ("train", "--seeds", "0"),
    ("evaluate", "{t}/badckpt"),
    ("evaluate", "{t}/nothing"),
    ("evaluate", "{t}/badckpt", "--episodes", "0"),
    ("plot", "{t}/badrun"),
    ("plot", "{t}/nothing"),
    ("offline", "--dataset", "{t}/junk.h5", "--out", "{t}/o"),
    ("offline", "--dataset", "{t}/nothing.h5"),
    ("offline", "--dataset", "{t}/badenv.h5", "--out", "{t}/o"),
    ("collect", "--policy", "random", "--env", "CartPole-v1", "--episodes", "1", "--out", "{t}/file/d.h5"),
    ("collect", "--policy", "random", "--env", "CartPole-v1", "--episodes", "1", "--num-envs", "0",
     "--out", "{t}/d.h5"),
    ("collect", "--policy", "random", "--env", "CartPole-v1", "--epsilon", "2", "--episodes", "1",
     "--out", "{t}/d.h5"),
    ("collect", "--checkpoint", "{t}/badckpt", "--episodes", "1", "--out", "{t}/d.h5"),
    ("dataset", "info", "{t}/junk.h5"),
    ("dataset", "export", "{t}/junk.h5", "--id", "x/y-v0"),
    ("dataset", "import", "{t}/nothing", "--out", "{t}/d.h5"),
    ("dataset", "frobnicate"),
    ("sweep", "online", "--preset", "test", "--out", "{t}/file"),
    ("sweep", "online", "--preset", "test", "--out", "{t}/badsweep"),
    ("sweep", "online", "--preset", "test", "--set", "no_such_field=1,2", "--out", "{t}/s"),
    ("sweep", "sideways"),
    ("summarize", "{t}/badsweep"),
    ("summarize", "{t}/badrun"),
    ("summarize", "{t}/nothing"),
    ("study", "--env", "a:b:c", "--out", "{t}/st"),
    ("study", "--workers", "-1"),
    ("report", "{t}/nothing"),
]


@pytest.mark.parametrize("argv", CASES, ids=[" ".join(c[:2]) for c in CASES])
def test_bad_input_is_one_line_and_exit_2(capsys, files, argv):
    code = main([a.format(t=files) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"saclab {argv[0]}: error:") and "Traceback" not in err
