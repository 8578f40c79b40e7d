#!/usr/bin/env bash
# Measures a proposed change to fox without touching the tree: copies scripts/ to a
# temporary directory, applies bench/experiments/NAME.diff for each NAME given, and runs
# a benchmark with FOX_SCRIPT_PATH pointing at the copy. The name "nofsync" instead
# preloads bench/experiments/nofsync.c into fox (fsync/fdatasync return at once: the
# upper bound of group commit). Results go to bench/out-exp/LABEL/, not bench/out/.
#
#   bench/experiment.sh "gc-pause-150" -- bench/memory.sh 1000 8000
#   bench/experiment.sh nofsync -- bench/ingest.sh 8 32
#   bench/experiment.sh none -- ...            the unchanged tree, same harness
# The diffs were made against the scripts of the commit named in bench/experiments/README.md;
# a diff that no longer applies fails loudly.
set -euo pipefail
cd "$(dirname "$0")/.."
names=$1; shift
[ "${1:-}" = "--" ] && shift
label=$(echo "$names" | tr ' ' '+')
tmp=$(mktemp -d /tmp/fox-experiment.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cp -r scripts "$tmp/scripts"
export FOX_SCRIPT_PATH="$tmp/scripts"
for n in $names; do
  case $n in
    none) ;;
    nofsync)
      cc -shared -fPIC -O2 -o "$tmp/nofsync.so" bench/experiments/nofsync.c
      export FOX_PRELOAD="$tmp/nofsync.so" ;;
    *)
      patch -s -p1 -d "$tmp" < "bench/experiments/$n.diff" ;;
  esac
done
export RESULTS_DIR="$PWD/bench/out-exp/$label"
mkdir -p "$RESULTS_DIR"
echo "experiment $label: $*" >&2
"$@"
