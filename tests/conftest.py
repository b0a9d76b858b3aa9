import os

# One XLA thread and a persistent compilation cache: fast, repeatable test runs.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("SACLAB_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "saclab", "jax-tests"))
