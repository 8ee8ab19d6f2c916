#!/usr/bin/env bash
# Measure mevents with the changes to its dependencies that we propose
# upstream (scripts/upstream/*.patch): copy each patched module, at the
# version go.mod requires, out of the module cache, apply its patch to the
# copy and write a Go workspace that uses the copies. Prints the workspace
# file; nothing in the repository and nothing the `mevents` build uses by
# default changes.
#
#   scripts/upstream-patches.sh [NAME ...]    NAME: a patch's file name without .patch; default all
#
#   GOWORK=$(scripts/upstream-patches.sh) go test -run '^$' -bench Validate ./schemas/
#   GOWORK=$(scripts/upstream-patches.sh nats-server-dedup) scripts/bench.sh patched.md
#
# Each patch names its module in a "Module: " line before the diff. DIR
# (default .mevents-upstream-patches) holds the copies. Needs patch(1).
set -euo pipefail
export GOTOOLCHAIN=auto
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${DIR:-$root/.mevents-upstream-patches}

patches=()
if (($# == 0)); then
  patches=("$root"/scripts/upstream/*.patch)
else
  for name in "$@"; do
    patches+=("$root/scripts/upstream/$name.patch")
  done
fi

rm -rf "$dir"
mkdir -p "$dir"
replaces=""
for p in "${patches[@]}"; do
  [[ -f $p ]] || { echo "no such patch: $p" >&2; exit 1; }
  module=$(sed -n 's/^Module: //p' "$p" | head -1)
  [[ -n $module ]] || { echo "$p names no module (a \"Module: \" line)" >&2; exit 1; }
  (cd "$root" && GOWORK=off go mod download "$module")
  src=$(cd "$root" && GOWORK=off go list -m -f '{{.Dir}}' "$module")
  version=$(cd "$root" && GOWORK=off go list -m -f '{{.Version}}' "$module")
  copy=$dir/$(basename "$p" .patch)
  cp -r "$src" "$copy"
  chmod -R u+w "$copy"
  if ! patch -s -p1 -d "$copy" < "$p" >&2; then
    echo "$p does not apply to $module $version" >&2
    exit 1
  fi
  replaces+="replace $module $version => $copy"$'\n'
done
cat > "$dir/go.work" <<EOF
go $(cd "$root" && GOWORK=off go list -m -f '{{.GoVersion}}')

use $root

$replaces
EOF
echo "$dir/go.work"
