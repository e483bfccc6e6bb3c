#!/usr/bin/env bash
# Slurm array job: every array task is one spcl-search worker on one GPU, all against one PostgreSQL.
#
#   export SPCL_SEARCH_STORAGE='postgresql://USER:PASSWORD@DBHOST:5432/spcl'   # or keep it in a 0600 file
#   sbatch --export=ALL,SPEC=studies/mmgcn_iemocap.toml,KIND=search,DATA=/data/iemocap.pkl scripts/slurm_workers.sh
#   sbatch --array=0-15%4 --export=ALL,SPEC=... scripts/slurm_workers.sh       # 16 tasks, 4 at a time
#   sbatch --gres=none --cpus-per-task=2 --export=ALL,SPEC=... scripts/slurm_workers.sh   # CPU-only nodes
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

if [[ -f "${SPCL_SEARCH_ENV_FILE:-}" ]]; then
  # shellcheck disable=SC1090
  source "$SPCL_SEARCH_ENV_FILE"
fi
if [[ -x "$VENV/bin/spcl-search" ]]; then
  export PATH="$VENV/bin:$PATH"
fi

args=(worker --spec "$SPEC" --kind "$KIND" --threads "${SLURM_CPUS_PER_TASK:-1}")
if [[ -n "$DATA" ]]; then
  args+=(--data "$DATA")
fi
# Slurm sets CUDA_VISIBLE_DEVICES to the GPU it allocated; the worker trains on it (device auto).
echo "task ${SLURM_ARRAY_TASK_ID:-?} on $(hostname): GPU ${CUDA_VISIBLE_DEVICES:-none}, spcl-search ${args[*]} $EXTRA_ARGS"
# exec: Slurm's SIGTERM reaches the worker itself, which re-enqueues its running trial before exiting.
# shellcheck disable=SC2086
exec spcl-search "${args[@]}" $EXTRA_ARGS
