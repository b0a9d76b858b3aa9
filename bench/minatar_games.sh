#!/usr/bin/env bash
# MinAtar learning on a lent GPU: several games side by side, one process per game, each training
# SEEDS seeds vmapped in one compiled loop (saclab.runs.compiled_train.train_compiled_vmapped) for at
# most STEPS env steps or BUDGET_S seconds, whichever comes first.  What each run wrote (config.json,
# evaluations.csv, metrics, run.log; no checkpoint, no replay) lands in $OUT/minatar-<game>.tgz.
#
#   GAMES="Freeway-MinAtar Seaquest-MinAtar Asterix-MinAtar:actor_lr=1e-4,critic_lr=1e-4" \
#   BUDGET_S=480 bash bench/minatar_games.sh
#
# A game is NAME[:field=value,...]: overrides of the default preset, parsed by the field's type
# (launch.grid.parse_value, as `saclab sweep`), e.g. critic_target_reduction=min.  The packages
# the device's image lacks travel as wheels in .whl/ (bench/README.md).
# XLA_PYTHON_CLIENT_MEM_FRACTION splits the GPU's memory between the processes (each would
# otherwise take 75% of it).
set -u
budget=${BUDGET_S:-480} steps=${STEPS:-1000000} seeds=${SEEDS:-3}
export PYTHONUNBUFFERED=1 SACLAB_CACHE=/tmp/jaxcache
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || exit 1
export PYTHONPATH="$PWD/src:/tmp/site"
read -r -a games <<< "${GAMES:-Freeway-MinAtar Seaquest-MinAtar}"
export XLA_PYTHON_CLIENT_MEM_FRACTION
XLA_PYTHON_CLIENT_MEM_FRACTION=$(python3 -c "print(round(0.9 / ${#games[@]}, 2))")
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
for game in "${games[@]}"; do
  name=${game%%:*} overrides=""
  [ "$name" != "$game" ] && overrides=${game#*:}
  timeout "$budget" python3 - "$name" "$overrides" "$steps" "$seeds" > "$OUT/$name.log" 2>&1 <<'PY' &
import sys, time
from saclab.config import preset
from saclab.launch.grid import parse_value
from saclab.runs.compiled_train import train_compiled_vmapped
name, overrides, steps, seeds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
fields = {k: parse_value(k, v) for k, v in (item.split("=") for item in overrides.split(",") if item)}
config = preset("default").replace(env=f"gymnax:{name}", total_steps=steps, total_episodes=0,
                                   checkpoint_every_steps=0, eval_episodes=32,
                                   eval_every_episodes=4 if name.startswith("Freeway") else 50,
                                   **fields)
print(name, fields, flush=True)
start = time.perf_counter()
for r in train_compiled_vmapped(config, range(seeds), f"/tmp/minatar/{name}", progress=False, tensorboard=False,
                                save_replay=False):
    print(f"seed {r.seed}: final {r.final_return:.2f}, best {r.best_return:.2f}, {r.summary['steps_per_s']} steps/s")
print(f"wall {time.perf_counter() - start:.0f} s")
PY
done
wait
for game in "${games[@]}"; do
  name=${game%%:*}
  tail -3 "$OUT/$name.log"
  for f in /tmp/minatar/"$name"/seed-*/evaluations.csv; do echo "$f: $(tail -1 "$f")"; done
  tar czf "$OUT/minatar-$name.tgz" --exclude=checkpoint -C /tmp/minatar "$name"
done
