#!/usr/bin/env bash
# Slurm array job: every array task is one spcl-search worker on one GPU, all against one PostgreSQL.
#
#   export SPCL_SEARCH_STORAGE='postgresql://USER:PASSWORD@DBHOST:5432/spcl'   # or keep it in a 0600 file
#   sbatch --export=ALL,SPEC=studies/mmgcn_iemocap.toml,KIND=search,DATA=/data/iemocap.pkl scripts/slurm_workers.sh
#   sbatch --array=0-15%4 --export=ALL,SPEC=... scripts/slurm_workers.sh       # 16 tasks, 4 at a time
#   sbatch --gres=none --cpus-per-task=2 --export=ALL,SPEC=... scripts/slurm_workers.sh   # CPU-only nodes
#   sbatch --export=ALL,SPEC=...,TRIALS_PER_GPU=4 scripts/slurm_workers.sh     # 4 workers share each task's GPU
#   sbatch --export=ALL,STUDY=mmgcn-iemocap-search-confirm scripts/slurm_workers.sh   # join an existing study by name
#                     (e.g. the confirmation `spcl-search confirm --study S --workers 0` creates)
#
# Resources: the #SBATCH lines below are defaults; sbatch options (or SBATCH_* variables, e.g.
# SBATCH_GRES=none) override them. Each task asks for one GPU (--gres=gpu:1); on a cluster without GPUs Slurm
# refuses that request ("Invalid generic resource"), so submit with --gres=none: the worker then trains on the
# task's CPUs (--threads = --cpus-per-task). scripts/slurm_local_cluster.sh runs such a CPU-only cluster on one
# machine (CI runs this script there: tests/test_slurm_workers.py).
#
# The first worker to reach the database creates the study from SPEC (under a PostgreSQL advisory lock,
# so simultaneous starts create it once); the others join it and adopt its stored spec. Workers stop when
# the study's budget (n_trials, across all workers) is spent: submit more array tasks at any time, the
# budget stays exact. A task killed at its time limit gets SIGTERM first: its running trial is failed and
# re-enqueued; a task that dies without warning (node failure) is noticed after the grace period (120 s
# without heartbeat) and its trial is retried by another worker.
#
# Packing: TRIALS_PER_GPU=K starts K workers in the task, sharing its GPU (and splitting its CPUs); each caps
# its CUDA memory at 0.95/K of the GPU, and a trial out of GPU memory is retried once while its worker leaves
# (the GPU then runs K-1). Their log lines are prefixed "[worker k]". SIGTERM reaches every worker.
#
# Progress: spcl-search status --study NAME    Best settings: spcl-search best --study NAME
#
#SBATCH --job-name=spcl-search
#SBATCH --array=0-7
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH --time=24:00:00
#SBATCH --output=spcl-search-%A_%a.log

set -euo pipefail

: "${SPCL_SEARCH_STORAGE:?set SPCL_SEARCH_STORAGE=postgresql://USER:PASSWORD@HOST:5432/DB (or source it from a 0600 file; ~/.pgpass works too)}"
SPEC="${SPEC:-studies/mmgcn_iemocap.toml}"
KIND="${KIND:-search}"
DATA="${DATA:-}"
VENV="${VENV:-.venv}"
EXTRA_ARGS="${EXTRA_ARGS:-}"   # e.g. "--warm-start paper" or "--timeout 36000"
TRIALS_PER_GPU="${TRIALS_PER_GPU:-1}"
if ! [[ "$TRIALS_PER_GPU" =~ ^[1-9][0-9]*$ ]]; then
  echo "error: TRIALS_PER_GPU=$TRIALS_PER_GPU: give a whole number >= 1" >&2
  exit 2
fi

if [[ -f "${SPCL_SEARCH_ENV_FILE:-}" ]]; then
  # shellcheck disable=SC1090
  source "$SPCL_SEARCH_ENV_FILE"
fi
if [[ -x "$VENV/bin/spcl-search" ]]; then
  export PATH="$VENV/bin:$PATH"
fi

threads=$(( ${SLURM_CPUS_PER_TASK:-1} / TRIALS_PER_GPU ))
(( threads >= 1 )) || threads=1
if [[ -n "${STUDY:-}" ]]; then
  args=(worker --study "$STUDY" --threads "$threads" --trials-per-gpu "$TRIALS_PER_GPU")
else
  args=(worker --spec "$SPEC" --kind "$KIND" --threads "$threads" --trials-per-gpu "$TRIALS_PER_GPU")
fi
if [[ -n "$DATA" ]]; then
  args+=(--data "$DATA")
fi
# Slurm sets CUDA_VISIBLE_DEVICES to the GPU it allocated; the workers train on it (recorded as their --gpu).
gpu="${CUDA_VISIBLE_DEVICES:-}"
if [[ -n "$gpu" && "$gpu" != *,* ]]; then
  args+=(--gpu "$gpu")
fi
echo "task ${SLURM_ARRAY_TASK_ID:-?} on $(hostname): GPU ${gpu:-none}, $TRIALS_PER_GPU worker(s): spcl-search ${args[*]} $EXTRA_ARGS"
if (( TRIALS_PER_GPU == 1 )); then
  # exec: Slurm's SIGTERM reaches the worker itself, which re-enqueues its running trial before exiting.
  # shellcheck disable=SC2086
  exec spcl-search "${args[@]}" $EXTRA_ARGS
fi
pids=()
for (( k = 0; k < TRIALS_PER_GPU; k++ )); do
  # shellcheck disable=SC2086
  spcl-search "${args[@]}" $EXTRA_ARGS > >(sed -u "s/^/[worker $k] /") 2>&1 &
  pids+=("$!")
done
# Slurm's SIGTERM (time limit, scancel) goes on to every worker; each re-enqueues its running trial.
trap 'kill -TERM "${pids[@]}" 2>/dev/null || true' TERM INT
status=0
for pid in "${pids[@]}"; do
  while true; do
    rc=0
    wait "$pid" || rc=$?
    kill -0 "$pid" 2>/dev/null || break   # exited (a trap only interrupted the wait otherwise)
  done
  (( rc == 0 )) || status=$rc
done
exit "$status"
