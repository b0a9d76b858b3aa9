"""Minari interoperability: export a ``Dataset`` to Minari's format and import one back.

Minari (the Farama Foundation's offline-RL dataset standard) stores episodes:
``observations`` (T+1, ...) including the final next observation, and
``actions``, ``rewards``, ``terminations``, ``truncations`` (T,), with
terminations and truncations kept apart exactly as saclab does.  A saclab
dataset maps onto it episode by episode: episode k's observations are its
transitions' observations followed by the last transition's next observation.

Only local files are used, never the network: a dataset id resolves to
``ROOT/<id>/data`` with ROOT the ``root`` argument, else ``$MINARI_DATASETS_PATH``,
else ``~/.minari/datasets`` (Minari's own rule).  Writing uses Minari's HDF5
storage (h5py is a saclab dependency already) and builds Minari's
``EpisodeBuffer``s from arrays, so the ``minari[create]`` extra is not needed.
Minari is optional: ``pip install 'saclab[minari]'`` (Minari needs Python >= 3.11).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from saclab.core.types import Transition, observation_array
from saclab.data.dataset import Dataset
from saclab.envs.make import check_spaces, register_image_envs
from saclab.errors import SaclabError

SACLAB_KEY = "saclab_metadata"
"""Key of the Minari metadata entry that carries a saclab dataset's own metadata."""


def _minari() -> Any:
    try:
        import minari
    except ImportError:
        raise SaclabError("Minari is not installed: pip install 'saclab[minari]'") from None
    return minari


def minari_root(root: str | os.PathLike | None = None) -> Path:
    """The local Minari datasets directory (``root``, ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``)."""
    if root is None:
        env = os.environ.get("MINARI_DATASETS_PATH")
        root = Path(env) if env else Path.home() / ".minari" / "datasets"
    return Path(root).expanduser().resolve()


@contextlib.contextmanager
def _datasets_path(root: Path) -> Iterator[None]:
    saved = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = saved


def _check_id(dataset_id: str) -> None:
    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        parse_dataset_id(dataset_id)
    except (ValueError, TypeError):
        raise SaclabError(f"malformed Minari dataset id {dataset_id!r}: use (namespace/)name-vN, "
                          "e.g. saclab/cartpole-expert-v0") from None


def _episode_slices(dataset: Dataset) -> list[slice]:
    """Contiguous episodes; an episode whose next observation does not continue is split there."""
    starts = dataset.episode_starts.copy()
    starts[0] = True
    broken = ~np.all(dataset.next_observations[:-1] == dataset.observations[1:], axis=1)
    starts[1:] |= broken
    bounds = np.append(np.flatnonzero(starts), len(dataset))
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _spaces(dataset: Dataset) -> tuple[Any, Any, Any]:
    """(env spec or None, observation space, action space) for the export."""
    import gymnasium as gym

    spec = None
    if dataset.env_id:
        try:
            register_image_envs(dataset.env_id)
            spec = gym.spec(dataset.env_id)
        except (gym.error.Error, SaclabError):
            spec = None
    dtype = dataset.observations.dtype
    if dtype == np.float32:
        observation_space = gym.spaces.Box(-np.inf, np.inf, dataset.obs_shape, np.float32)
    else:  # uint8 pixels or bool channels, in the env's own shape
        observation_space = gym.spaces.Box(0, 1 if dtype.name == "bool" else 255, dataset.obs_shape, dtype)
    if spec is not None and len(dataset.obs_shape) == 1:
        env = gym.make(spec)
        try:
            if env.observation_space.shape == (dataset.obs_dim,):
                observation_space = env.observation_space
        finally:
            env.close()
    return spec, observation_space, gym.spaces.Discrete(dataset.num_actions)


def export_minari(
    dataset: Dataset,
    dataset_id: str,
    root: str | os.PathLike | None = None,
    description: str | None = None,
) -> Path:
    """Write ``dataset`` as the local Minari dataset ``dataset_id``; returns its directory.

    Refuses to overwrite an existing dataset.  saclab's metadata travels in the Minari
    metadata under ``saclab_metadata``, so ``import_minari`` restores it.
    """
    minari = _minari()
    from minari.data_collector import EpisodeBuffer

    _check_id(dataset_id)
    root = minari_root(root)
    target = root / dataset_id
    if target.exists():
        raise SaclabError(f"Minari dataset {dataset_id} already exists in {root} (choose another id or version)")
    spec, observation_space, action_space = _spaces(dataset)
    buffers = []
    for part in _episode_slices(dataset):
        observations = np.concatenate([dataset.observations[part], dataset.next_observations[part][-1:]])
        observations = observations.reshape(len(observations), *dataset.obs_shape)  # images in their shape
        buffers.append(EpisodeBuffer(
            observations=observations, actions=dataset.actions[part], rewards=dataset.rewards[part],
            terminations=dataset.terminations[part], truncations=dataset.truncations[part]))
    source = str(dataset.metadata.get("source", "saclab"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        with _datasets_path(root), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Minari warns about every optional field left unset
            created = minari.create_dataset_from_buffers(
                dataset_id, buffers, env=spec, observation_space=observation_space, action_space=action_space,
                algorithm_name=source, description=description or f"saclab dataset ({source})",
                data_format="hdf5")
            created.storage.update_metadata({SACLAB_KEY: _jsonable(dataset.metadata)})
    except (ValueError, TypeError, OSError) as e:
        shutil.rmtree(target, ignore_errors=True)  # it did not exist before: leave nothing half-written
        raise SaclabError(f"cannot write Minari dataset {dataset_id}: {e}") from None
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return target


def _jsonable(metadata: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(metadata, default=str))


def _data_path(dataset_id_or_path: str | os.PathLike, root: str | os.PathLike | None) -> tuple[Path, str]:
    path = Path(dataset_id_or_path)
    if path.is_dir():
        if (path / "data" / "metadata.json").is_file():
            return path / "data", str(path)
        if (path / "metadata.json").is_file():
            return path, str(path)
        raise SaclabError(f"{path} is not a Minari dataset (no data/metadata.json)")
    dataset_id = str(dataset_id_or_path)
    _check_id(dataset_id)
    base = minari_root(root)
    data = base / dataset_id / "data"
    if not (data / "metadata.json").is_file():
        raise SaclabError(f"Minari dataset {dataset_id} not found in {base} (saclab reads local datasets only; "
                          f"fetch it first with `minari download {dataset_id}`)")
    return data, dataset_id


def import_minari(dataset_id_or_path: str | os.PathLike, root: str | os.PathLike | None = None) -> Dataset:
    """A local Minari dataset (by id under ``root``, or by directory) as a saclab ``Dataset``.

    The action space must be Discrete and observations a flat or image Box; terminations and
    truncations are kept apart, and each Minari episode starts a saclab episode.
    """
    minari = _minari()

    data_path, name = _data_path(dataset_id_or_path, root)
    try:
        source = minari.MinariDataset(data_path)
    except (ValueError, KeyError, TypeError, OSError, AssertionError) as e:
        raise SaclabError(f"cannot read Minari dataset {name}: {e}") from None
    env_id = source.env_spec.id if source.env_spec is not None else ""
    spec = check_spaces(env_id or name, source.observation_space, source.action_space)
    parts: list[Transition] = []  # one per episode
    try:
        for episode in source.iterate_episodes():
            observations = observation_array(episode.observations)  # uint8/bool kept
            observations = observations.reshape(len(observations), -1)  # images stored flat
            steps = len(episode.rewards)
            if steps == 0:
                continue
            if observations.shape[0] != steps + 1:
                raise SaclabError(f"Minari dataset {name}: episode {episode.id} has {observations.shape[0]} "
                                  f"observations for {steps} steps (expected {steps + 1})")
            parts.append(Transition(
                observations[:-1], np.asarray(episode.actions).reshape(steps),
                np.asarray(episode.rewards, np.float32).reshape(steps), observations[1:],
                np.asarray(episode.terminations, bool).reshape(steps),
                np.asarray(episode.truncations, bool).reshape(steps)))
    except SaclabError:
        raise
    except (ValueError, KeyError, TypeError, OSError) as e:
        raise SaclabError(f"cannot read Minari dataset {name}: {e}") from None
    if not parts:
        raise SaclabError(f"Minari dataset {name} is empty (0 transitions)")
    raw = source.storage.metadata
    metadata: dict[str, Any] = dict(raw.get(SACLAB_KEY) or {})
    if len(spec.obs_shape) > 1:
        metadata["obs_shape"] = list(spec.obs_shape)
    metadata.update({"env_id": env_id or metadata.get("env_id", ""), "obs_dim": spec.obs_dim,
                     "num_actions": spec.num_actions, "minari_dataset_id": source.spec.dataset_id,
                     "minari_version": source.minari_version})
    metadata.setdefault("source", f"minari: {source.spec.dataset_id}")
    if not metadata["env_id"]:
        metadata.pop("env_id")
    starts = np.concatenate([np.arange(len(part.actions)) == 0 for part in parts])
    return Dataset.from_transitions(Transition.concatenate(parts), starts, metadata)


__all__ = ["export_minari", "import_minari", "minari_root", "SACLAB_KEY"]
