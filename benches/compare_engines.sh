#!/usr/bin/env bash
# Compares the engine at a commit with the working tree's, with the same loop source built
# against each and run interleaved, ten times each:
#
#   benches/compare_engines.sh 9a8b126             # uncontended get+drop, default settings
#   benches/compare_engines.sh 9a8b126 deadline    # the same with wait_timeout set
#   benches/compare_engines.sh 9a8b126 contended   # 64 tasks on 8 objects, against the floor
#
# The uncontended modes build examples/same_source_get_drop.rs against each and print each
# run's fastest / median batch in ns per get+drop. `contended` builds
# examples/contended_loop.rs against each, runs `contended_loop compare 2000` and prints
# pool-core's and the semaphore+mutex floor's medians and pool-core / floor. Needs a quiet
# machine.
set -euo pipefail
base=${1:?usage: compare_engines.sh COMMIT [deadline|contended]}
mode=${2:-}
example=same_source_get_drop
if [ "$mode" = contended ]; then
    example=contended_loop
fi
root=$(git rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$work/old" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

git -C "$root" worktree add --detach "$work/old" "$base" >/dev/null
mkdir -p "$work/old/benches/examples"
cp "$root/benches/examples/$example.rs" "$work/old/benches/examples/"
(cd "$work/old" && CARGO_TARGET_DIR="$work/target-old" \
    cargo build --quiet --release -p benches --example "$example")
(cd "$root" && CARGO_TARGET_DIR="$work/target-new" \
    cargo build --quiet --release -p benches --example "$example")

old="$work/target-old/release/examples/$example"
new="$work/target-new/release/examples/$example"
# pool-core's median, the floor's, and their ratio, from one `contended_loop compare`.
versus_floor() {
    "$1" compare 2000 | awk '
        /pool-core:/ { pool = $3 }
        /semaphore\+mutex:/ { floor = $3 }
        END { printf "pool-core %.1f ns, floor %.1f ns, %.2fx", pool, floor, pool / floor }'
}
for _ in $(seq 10); do
    if [ "$mode" = contended ]; then
        echo "$base: $(versus_floor "$old")    working tree: $(versus_floor "$new")"
    else
        echo "$base: $("$old" $mode)    working tree: $("$new" $mode)"
    fi
done
