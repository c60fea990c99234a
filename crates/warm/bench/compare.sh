#!/usr/bin/env bash
# 10,000 jobs (the squares of 1..10000) through a small python function, three ways, in one
# run: `warm` with 2 warm workers, `xargs -P 2` and GNU parallel `-j 2` starting the
# interpreter per job. Needs GNU parallel (`apt-get install parallel`). Prints a markdown
# table of wall times and rates, and checks that every way computed the same answers.
#
#   bash crates/warm/bench/compare.sh [jobs]
set -euo pipefail
cd "$(dirname "$0")/../../.."
jobs="${1:-10000}"
# The real interpreter: `python3` on PATH may be a shim that costs more than the job.
python="$(python3 -c 'import sys; print(sys.executable)')"
script="crates/warm/bench/square.py"
cargo build --release -q -p warm
warm=target/release/warm
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
seq 1 "$jobs" > "$work/input"

seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }
run() {
    local name=$1; shift
    local start end
    start=$(date +%s%N)
    "$@" < "$work/input" > "$work/$name.out"
    end=$(date +%s%N)
    sort -n "$work/$name.out" > "$work/$name.sorted"
    seconds "$start" "$end"
}

t_warm=$(run warm "$warm" -j 2 -k -- "$python" -u "$script")
t_xargs=$(run xargs xargs -P 2 -n 1 "$python" "$script")
t_parallel=$(run parallel parallel --will-cite -j 2 "$python" "$script" {})
# warm and parallel must agree exactly. xargs -P lets its two processes write to stdout at
# will, so some answers come out merged ("4761" and "4624" as "47614624" and an empty
# line): count them rather than fail.
cmp "$work/warm.sorted" "$work/parallel.sorted" >&2
mangled=$(sort "$work/warm.sorted" "$work/xargs.sorted" | uniq -u | wc -l)

echo "interpreter: $python; $jobs jobs; $(nproc) CPUs; lines differing from warm's in xargs' output: $mangled"
echo "| tool | wall time | jobs per second | time / warm's |"
echo "|---|---:|---:|---:|"
for row in "warm -j 2 (2 warm workers):$t_warm" "xargs -P 2 (interpreter per job):$t_xargs" "GNU parallel -j 2 (interpreter per job):$t_parallel"; do
    name=${row%%:*}; t=${row##*:}
    rate=$(awk -v n="$jobs" -v t="$t" 'BEGIN { printf "%.0f", n / t }')
    ratio=$(awk -v t="$t" -v w="$t_warm" 'BEGIN { printf "%.0f", t / w }')
    echo "| $name | ${t} s | $rate | ${ratio}x |"
done
