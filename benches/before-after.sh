#!/usr/bin/env bash
# benches/before-after.sh REV [SECTION...]
#
# Before figures from the same machine: builds the `versus` bench of REV (any git
# revision: a commit, `main`, `HEAD~3`) in a temporary worktree with its own target
# directory, builds this working tree's bench (uncommitted changes included), then
# runs REV's and this tree's back to back, with the same SECTION filters. This tree's
# run prints each row with REV's figure beside it (`| before: ...`), marks REV's
# figure on the chart and judges both by this tree's goals in the summary.
#
# REV's rows are read from its rows file when its bench writes one, else from its
# stdout (the row format `  {label:<58} {text}` has been stable). The temporary
# worktree and its target directory are removed on exit, even on failure or Ctrl-C.
# The iceoryx2 and LMDB peers' build (minutes from nothing) is shared with this
# tree's target/peers.
set -euo pipefail

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
    echo "usage: benches/before-after.sh REV [SECTION...]   (e.g. main fastpath)" >&2
    exit 2
fi
rev=$1
shift

root=$(cd "$(dirname "$0")/.." && pwd)
if ! sha=$(git -C "$root" rev-parse --verify --quiet "$rev^{commit}"); then
    echo "before-after: '$rev' is not a revision of $root (try a commit, a branch or HEAD~1)" >&2
    exit 2
fi
short=$(git -C "$root" rev-parse --short "$sha")
name="$rev ($short)"
case "$short" in "$rev"*) name=$short ;; esac
case "$rev" in "$short"*) name=$short ;; esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/multiproc-before.XXXXXX")
cleanup() {
    rm -f "$tmp/src/target/peers"
    git -C "$root" worktree remove --force "$tmp/src" >/dev/null 2>&1 || true
    rm -rf "$tmp"
    git -C "$root" worktree prune
}
trap cleanup EXIT
trap 'exit 130' INT TERM

git -C "$root" worktree add --detach --quiet "$tmp/src" "$sha"
mkdir -p "$root/target/peers" "$tmp/src/target"
ln -s "$root/target/peers" "$tmp/src/target/peers"

# Both builds first, so that the two runs follow each other with no compiling between.
echo "== before-after: building $name in $tmp/src" >&2
(cd "$tmp/src" && CARGO_TARGET_DIR="$tmp/target" cargo bench --bench versus --no-run)
echo "== before-after: building this tree ($root)" >&2
(cd "$root" && cargo bench --bench versus --no-run)

echo "== before-after: running $name" >&2
(
    cd "$tmp/src"
    unset MULTIPROC_BENCH_BEFORE MULTIPROC_BENCH_OUT
    CARGO_TARGET_DIR="$tmp/target" MULTIPROC_BENCH_OUT="$tmp/out" \
        cargo bench --quiet --bench versus -- "$@"
) | tee "$tmp/before.txt"

before="$tmp/before.txt"
if [ -f "$tmp/out/rows.tsv" ]; then
    before="$tmp/out/rows.tsv"
fi

echo >&2
echo "== before-after: running this tree, with $name beside each row" >&2
(
    cd "$root"
    MULTIPROC_BENCH_BEFORE="$before" MULTIPROC_BENCH_BEFORE_NAME="$name" \
        cargo bench --quiet --bench versus -- "$@"
)
