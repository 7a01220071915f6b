#!/usr/bin/env bash
# Run `virnucpro predict` on one part of a split, as a cluster job (SLURM array task or Snakemake job).
#
#   predict-part.sh PART_FASTA RUN_DIR GPUS [predict options...]
#
# PART_FASTA  a part written by `virnucpro split` (part-0001.fa.gz)
# RUN_DIR     the part's predict output directory (re-running resumes it)
# GPUS        GPUs this job was given (0 = none): predict gets --gpus 0,...,GPUS-1, the
#             ordinals of the GPUs SLURM made visible (CUDA_VISIBLE_DEVICES)
# $VIRNUCPRO  the command that runs virnucpro (default: virnucpro), split on spaces
#
# An empty part (more parts than records) has nothing to predict: the job succeeds
# without a run directory, and `virnucpro merge --manifest` expects none.
set -euo pipefail
if [ "$#" -lt 3 ]; then
  echo "usage: $0 PART_FASTA RUN_DIR GPUS [predict options...]" >&2
  exit 2
fi
fasta=$1 run_dir=$2 gpus=$3
shift 3
read -r -a virnucpro <<<"${VIRNUCPRO:-virnucpro}"

if [ ! -s "$fasta" ]; then
  echo "virnucpro: $fasta is missing or empty (did the split job finish?)" >&2
  exit 1
fi
if [ -z "$(gzip -cd -- "$fasta" | head -c 1)" ]; then
  echo "$fasta holds no records (more parts than records): nothing to predict"
  exit 0
fi

# Torch would otherwise start one thread per core of the node, not of the allocation.
if [ -n "${SLURM_CPUS_PER_TASK:-}" ] && [ -z "${OMP_NUM_THREADS:-}" ]; then
  export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK
fi

gpu_args=()
if [ "$gpus" -gt 0 ]; then
  # SLURM exposes the allocated GPUs as CUDA_VISIBLE_DEVICES; predict counts ordinals within it.
  if [ -z "${CUDA_VISIBLE_DEVICES:-}" ] && [ -n "${SLURM_JOB_GPUS:-}" ]; then
    export CUDA_VISIBLE_DEVICES=$SLURM_JOB_GPUS
  fi
  visible=$gpus
  if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
    visible=$(awk -F, '{print NF}' <<<"$CUDA_VISIBLE_DEVICES")
  fi
  gpu_args=(--gpus "$(seq -s, 0 $((visible - 1)))")
fi

echo "predict $fasta -> $run_dir on $(hostname) (gpus: ${CUDA_VISIBLE_DEVICES:-none})"
exec "${virnucpro[@]}" predict "$fasta" -o "$run_dir" --no-dashboard "$@" "${gpu_args[@]}"
