#!/usr/bin/env bash
# Measure mevents with a faster kaptinlin/jsonschema: copy the module
# version go.mod requires out of the module cache, apply
# scripts/kaptinlin-validate.patch to the copy and write a Go workspace
# that uses it. Prints the workspace file; nothing in the repository and
# nothing the `mevents` build uses by default changes.
#
#   GOWORK=$(scripts/validator-patch.sh) go test -run '^$' -bench Validate ./schemas/
#   GOWORK=$(scripts/validator-patch.sh) scripts/bench.sh patched.md
#
# The patch is a proposal for upstream (README, Performance): validation
# does the same checks and reports the same violations, with fewer
# fmt.Sprintf calls on every value. DIR (default .mevents-validator-patch)
# holds the copy.
set -euo pipefail
export GOTOOLCHAIN=auto
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${DIR:-$root/.mevents-validator-patch}

src=$(cd "$root" && GOWORK=off go list -m -f '{{.Dir}}' github.com/kaptinlin/jsonschema)
version=$(cd "$root" && GOWORK=off go list -m -f '{{.Version}}' github.com/kaptinlin/jsonschema)
rm -rf "$dir"
mkdir -p "$dir"
cp -r "$src" "$dir/jsonschema"
chmod -R u+w "$dir/jsonschema"
if ! patch -s -p1 -d "$dir/jsonschema" < "$root/scripts/kaptinlin-validate.patch" >&2; then
  echo "scripts/kaptinlin-validate.patch does not apply to kaptinlin/jsonschema $version" >&2
  exit 1
fi
cat > "$dir/go.work" <<EOF
go $(cd "$root" && GOWORK=off go list -m -f '{{.GoVersion}}')

use $root

replace github.com/kaptinlin/jsonschema $version => $dir/jsonschema
EOF
echo "$dir/go.work"
