#!/usr/bin/env bash
# One call on a lent GPU machine: saclab's CUDA path checked and its --vmap figures measured.
#
#   1. the device and JAX's view of it
#   2. same seed, same numbers: bench/run_hash.py twice (and twice more with deterministic XLA ops
#      if the first two differ)
#   3. the core and compiled-loop tests on the GPU
#   4. seeds vmapped in one compiled loop (bench/vmap_seeds.py) on Breakout-MinAtar
#   5. Breakout-MinAtar learning, 3 seeds vmapped, for the steps the time left allows (at most 1M)
#
# The machine has no registry: the packages its image lacks travel as wheels in .whl/ (gymnasium,
# gymnax, tyro, typeguard, docstring-parser, tensorboardX, farama-notifications; see
# bench/README.md).  Everything lands in $OUT.  DEADLINE_S bounds the whole script.
set -u
started=$(date +%s)
deadline=${DEADLINE_S:-500}
left() { echo $(( deadline - ($(date +%s) - started) )); }
export PYTHONUNBUFFERED=1 SACLAB_CACHE=/tmp/jaxcache
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || exit 1
export PYTHONPATH="$PWD/src:/tmp/site"

echo "== 1. device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"

echo "== 2. same seed, same numbers ($(left) s left)"
a=$(timeout 120 python3 bench/run_hash.py 2>>"$OUT/stderr.log"); echo "run 1: $a"
b=$(timeout 90 python3 bench/run_hash.py 2>>"$OUT/stderr.log"); echo "run 2: $b"
if [ "${a%% *}" != "${b%% *}" ]; then
  export XLA_FLAGS=--xla_gpu_deterministic_ops=true
  echo "differ; with XLA_FLAGS=$XLA_FLAGS:"
  echo "run 3: $(timeout 120 python3 bench/run_hash.py 2>>"$OUT/stderr.log")"
  echo "run 4: $(timeout 90 python3 bench/run_hash.py 2>>"$OUT/stderr.log")"
fi

echo "== 3. tests on the GPU ($(left) s left)"
timeout 150 python3 -m pytest -q -x -p no:cacheprovider tests/test_losses.py tests/test_agent.py \
  tests/test_compiled.py -k "not collection" 2>&1 | tail -15 | tee "$OUT/pytest.log"

echo "== 4. vmapped seeds ($(left) s left)"
timeout 120 python3 bench/vmap_seeds.py --env gymnax:Breakout-MinAtar --preset default --seeds-list 1 3 16 \
  --repeats 2 --json "$OUT/vmap_seeds.json" 2>>"$OUT/stderr.log"

echo "== 5. Breakout-MinAtar, 3 seeds vmapped ($(left) s left)"
budget=$(( $(left) - 45 ))
if [ "$budget" -gt 60 ]; then
  timeout "$budget" python3 - "$budget" <<'EOF' 2>>"$OUT/stderr.log"
import json, os, sys, time
from saclab.config import preset
from saclab.runs.compiled_train import train_compiled_vmapped
budget = int(sys.argv[1])
rows = json.load(open(os.path.join(os.environ["OUT"], "vmap_seeds.json")))["rows"]
rate = next(r["steps_per_s_per_seed"] for r in rows if r["seeds"] == 3)
steps = int(min(1_000_000, 0.75 * rate * (budget - 40)) // 1000 * 1000)
print(f"{steps} steps per seed (measured {rate:.0f} steps/s per seed with 3 seeds)")
config = preset("default").replace(env="gymnax:Breakout-MinAtar", total_steps=steps, total_episodes=0,
                                   checkpoint_every_steps=0, eval_every_episodes=50, eval_episodes=32)
start = time.perf_counter()
results = train_compiled_vmapped(config, [0, 1, 2], "/tmp/minatar", progress=False, tensorboard=False,
                                 save_replay=False)
for r in results:
    print(f"seed {r.seed}: final {r.final_return:.2f}, best {r.best_return:.2f}, {r.summary['steps_per_s']} steps/s")
print(f"wall {time.perf_counter() - start:.0f} s")
EOF
  tar czf "$OUT/minatar.tgz" --exclude=checkpoint -C /tmp minatar
fi
echo "== done in $(( $(date +%s) - started )) s"
