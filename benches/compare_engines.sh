#!/usr/bin/env bash
# Compares the uncontended get+drop of the engine at a commit with the working tree's,
# with the same loop source (examples/same_source_get_drop.rs) built against each and run
# interleaved, ten times each:
#
#   benches/compare_engines.sh 9a8b126            # default settings
#   benches/compare_engines.sh 9a8b126 deadline   # with wait_timeout set
#
# Prints each run's fastest / median batch in ns per get+drop. Needs a quiet machine.
set -euo pipefail
base=${1:?usage: compare_engines.sh COMMIT [deadline]}
mode=${2:-}
root=$(git rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$work/old" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

git -C "$root" worktree add --detach "$work/old" "$base" >/dev/null
mkdir -p "$work/old/benches/examples"
cp "$root/benches/examples/same_source_get_drop.rs" "$work/old/benches/examples/"
(cd "$work/old" && CARGO_TARGET_DIR="$work/target-old" \
    cargo build --quiet --release -p benches --example same_source_get_drop)
(cd "$root" && CARGO_TARGET_DIR="$work/target-new" \
    cargo build --quiet --release -p benches --example same_source_get_drop)

old="$work/target-old/release/examples/same_source_get_drop"
new="$work/target-new/release/examples/same_source_get_drop"
for _ in $(seq 10); do
    echo "$base: $("$old" $mode)    working tree: $("$new" $mode)"
done
