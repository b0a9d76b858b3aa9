"""Importing a practitioner's own logs (CSV, npz, Parquet) as a saclab dataset: round trips,
the episode-end rules, every bad input as one line and exit 2, and a property test."""

import csv

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from saclab.cli.main import main
from saclab.data.dataset import Dataset
from saclab.data.logs import import_logs, parse_columns, table_to_dataset
from saclab.errors import SaclabError

# Two episodes: ids 7 (3 rows, terminated) and 9 (2 rows, the log stops: no flag on its last row).
ROWS = [
    # obs_0, obs_1, action, reward, terminated, truncated, episode
    (0.0, 1.0, 1, 1.0, 0, 0, 7),
    (0.1, 1.1, 0, 2.0, 0, 0, 7),
    (0.2, 1.2, 2, 3.0, 1, 0, 7),
    (5.0, 6.0, 1, 4.0, 0, 0, 9),
    (5.1, 6.1, 0, 5.0, 0, 0, 9),
]
HEADER = ["obs_0", "obs_1", "action", "reward", "terminated", "truncated", "episode"]


def write_csv(path, rows=ROWS, header=HEADER):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def check_expected(data: Dataset) -> None:
    """The transitions ROWS make: episode 7 whole, episode 9 without its last row (its state is the
    previous row's next observation, and that transition is truncated)."""
    np.testing.assert_allclose(data.observations, [[0, 1], [0.1, 1.1], [0.2, 1.2], [5, 6]])
    np.testing.assert_allclose(data.next_observations, [[0.1, 1.1], [0.2, 1.2], [0.2, 1.2], [5.1, 6.1]])
    np.testing.assert_array_equal(data.actions, [1, 0, 2, 1])
    np.testing.assert_array_equal(data.rewards, [1, 2, 3, 4])
    np.testing.assert_array_equal(data.terminations, [False, False, True, False])
    np.testing.assert_array_equal(data.truncations, [False, False, False, True])
    np.testing.assert_array_equal(data.episode_starts, [True, False, False, True])
    assert data.num_actions == 3 and data.metadata["rows_dropped"] == 1 and data.metadata["rows"] == 5


def test_csv_round_trip(tmp_path):
    data = import_logs(write_csv(tmp_path / "logs.csv"))
    check_expected(data)
    saved = Dataset.load(data.save(tmp_path / "d.h5"))
    check_expected(saved)
    assert saved.metadata["columns"]["observation"] == ["obs_0", "obs_1"]
    assert saved.metadata["source_format"] == "csv" and saved.metadata["reward_scale"] == 1.0


def test_npz_with_an_observation_array_and_parquet(tmp_path):
    columns = list(zip(*ROWS, strict=True))
    arrays = {"observation": np.array([columns[0], columns[1]]).T, "action": np.array(columns[2]),
              "reward": np.array(columns[3]), "terminated": np.array(columns[4], bool),
              "truncated": np.array(columns[5], bool), "episode": np.array(columns[6])}
    np.savez(tmp_path / "logs.npz", **arrays)
    check_expected(import_logs(tmp_path / "logs.npz"))
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({**{k: v for k, v in arrays.items() if k != "observation"},
                      "observation": [list(row) for row in arrays["observation"]]})
    pq.write_table(table, tmp_path / "logs.parquet")
    data = import_logs(tmp_path / "logs.parquet")
    check_expected(data)
    assert data.metadata["source_format"] == "parquet"


def test_columns_mapping_and_no_episode_column(tmp_path):
    header = ["x0", "x1", "act", "r", "done", "timeout", "ep"]
    path = write_csv(tmp_path / "mine.csv", [row[:6] + (0,) for row in ROWS], header)
    mapping = parse_columns("obs_=x, action=act,reward=r,terminated=done,truncated=timeout")
    data = import_logs(path, mapping, num_actions=5, reward_scale=0.5)
    # no episode column: the terminated row ends episode 1, the file's end ends episode 2
    np.testing.assert_array_equal(data.episode_starts, [True, False, False, True])
    assert data.num_actions == 5 and data.metadata["num_actions_from"] == "--num-actions"
    assert data.metadata["reward_scale"] == 0.5 and data.metadata["columns"]["action"] == "act"


def test_truncated_rows_end_episodes(tmp_path):
    rows = [(0, 0, 0, 1, 0, 0, 1), (1, 1, 1, 1, 0, 1, 1), (2, 2, 0, 1, 0, 0, 2), (3, 3, 1, 1, 0, 0, 2),
            (4, 4, 0, 1, 1, 0, 2)]
    data = import_logs(write_csv(tmp_path / "t.csv", rows))
    # episode 1: its truncated last row is dropped, row 0 now ends it truncated with row 1's observation
    np.testing.assert_array_equal(data.observations[:, 0], [0, 2, 3, 4])
    np.testing.assert_array_equal(data.next_observations[:, 0], [1, 3, 4, 4])
    np.testing.assert_array_equal(data.truncations, [True, False, False, False])
    np.testing.assert_array_equal(data.terminations, [False, False, False, True])


BAD = [
    ("empty.csv", "", "is empty"),
    ("header.csv", ",".join(HEADER) + "\n", "has no rows"),
    ("nan.csv", None, "NaN or infinite"),
    ("ragged.csv", ",".join(HEADER) + "\n0,1,1,1,0,0,7\n0,1,1\n", "ragged"),
    ("missing.csv", "obs_0,action,reward,terminated\n0,1,1,0\n", "missing column 'truncated'"),
    ("noobs.csv", "action,reward,terminated,truncated\n1,1,0,0\n", "no observation columns"),
    ("float.csv", ",".join(HEADER) + "\n0,1,1.5,1,1,0,7\n", "not an integer"),
    ("negative.csv", ",".join(HEADER) + "\n0,1,-1,1,1,0,7\n", "not an integer >= 0"),
    ("text.csv", ",".join(HEADER) + "\n0,1,1,abc,1,0,7\n", "not a number"),
    ("flag.csv", ",".join(HEADER) + "\n0,1,1,1,2,0,7\n", "not 0/1"),
    ("order.csv", ",".join(HEADER) + "\n0,1,1,1,0,0,7\n0,1,1,1,0,0,8\n0,1,1,1,1,0,7\n", "not consecutive"),
    ("early.csv", ",".join(HEADER) + "\n0,1,1,1,1,0,7\n0,1,1,1,1,0,7\n", "continues episode"),
    ("single.csv", ",".join(HEADER) + "\n0,1,1,1,0,0,7\n", "no transitions left"),
    ("bad.npz", b"not a zip", "unreadable npz"),
    ("bad.parquet", b"PAR1junk", "Parquet"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD)
def test_bad_logs_are_one_line_and_exit_2(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    if content is None:
        write_csv(path, [ROWS[0][:2] + (1, float("nan"), 1, 0, 7)])
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    assert main(["dataset", "import", str(path), "--out", str(tmp_path / "o.h5")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "o.h5").exists()


def test_bad_flags_are_one_line(tmp_path, capsys):
    path = write_csv(tmp_path / "logs.csv")
    out = str(tmp_path / "o.h5")
    for flags, message in ([["--columns", "speed=x"], "unknown role"], [["--columns", "action"], "ROLE=COLUMN"],
                           [["--columns", "action=act"], "missing column 'act'"],
                           [["--num-actions", "2"], "out of range"], [["--reward-scale", "0"], "reward-scale"]):
        assert main(["dataset", "import", str(path), "--out", out, *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    npz = tmp_path / "obj.npz"
    np.savez(npz, action=np.array([1, None], dtype=object))
    assert main(["dataset", "import", str(npz), "--out", out]) == 2
    assert "unreadable npz" in capsys.readouterr().err


def test_cli_import_then_info(tmp_path, capsys):
    out = tmp_path / "d.h5"
    assert main(["dataset", "import", str(write_csv(tmp_path / "logs.csv")), "--out", str(out),
                 "--reward-scale", "0.1"]) == 0
    assert "dropped" in capsys.readouterr().err
    assert main(["dataset", "info", str(out)]) == 0
    assert '"reward_scale": 0.1' in capsys.readouterr().out


cells = st.one_of(st.integers(-3, 5), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                  st.sampled_from(["", "x", "true", "1", "nan"]))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.sampled_from(HEADER + ["observation", "other"]), min_size=0, max_size=8, unique=True),
       rows=st.integers(0, 6), data=st.data())
def test_random_tables_give_a_dataset_or_one_line(names, rows, data):
    table = {}
    for name in names:
        length = data.draw(st.sampled_from([rows, rows, rows + 1]))  # sometimes a mismatched length
        values = data.draw(st.lists(cells, min_size=length, max_size=length))
        table[name] = np.array([str(v) for v in values]) if data.draw(st.booleans()) else \
            np.array(values, dtype=object).astype(str)
    try:
        dataset = table_to_dataset(table, {}, source="t")
    except SaclabError as e:
        assert "\n" not in str(e)
        return
    assert len(dataset) > 0 and np.isfinite(dataset.observations).all()
    assert dataset.actions.min() >= 0 and dataset.actions.max() < dataset.num_actions
