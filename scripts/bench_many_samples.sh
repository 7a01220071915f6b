#!/bin/bash
# 10 samples of 3 records (examples/example_contigs.fa cut in 10): 10 separate predict runs against one
# many-sample run, same options, alternating order; $1 = extra options (e.g. --workers 2).
# Usage: scripts/bench_many_samples.sh [EXTRA_OPTIONS]   (from the repository root; works in a temp dir)
set -e
ROOT=$(pwd)
PY=${PYTHON:-python}
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
$PY - "$ROOT/examples/example_contigs.fa" <<'PYEOF'
import sys
records = []
for line in open(sys.argv[1]):
    line = line.rstrip()
    if line.startswith(">"):
        records.append([line, ""])
    else:
        records[-1][1] += line
for i in range(10):
    with open(f"s{i}.fa", "w") as out:
        out.writelines(f"{h}\n{s}\n" for h, s in records[3 * i:3 * i + 3])
PYEOF
ARGS="--models demo --no-dashboard --device cpu --precision fp32 $1"
sep() { rm -rf sep; s=$(date +%s.%N); for i in 0 1 2 3 4 5 6 7 8 9; do $PY -m virnucpro predict s$i.fa -o sep/s$i $ARGS 2>/dev/null; done; e=$(date +%s.%N); echo "separate $(echo "$e - $s" | bc)"; }
one() { rm -rf one; s=$(date +%s.%N); $PY -m virnucpro predict s?.fa -o one $ARGS 2>/dev/null; e=$(date +%s.%N); echo "one-run $(echo "$e - $s" | bc)"; }
uptime; sep; one; one; sep; uptime
cut -f1,7 one/samples_summary.tsv | tr "\n" " "; echo
for i in 0 1 2 3 4 5 6 7 8 9; do for t in contig_summary.tsv prediction_results.txt chunk_scores.tsv; do cmp sep/s$i/$t one/s$i/$t; done; done; echo tables identical
