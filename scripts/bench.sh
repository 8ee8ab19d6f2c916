#!/usr/bin/env bash
# Run the standard benchmark scenarios against a local 3-node cluster and
# write the results to a markdown file: a table of every scenario's figures,
# then each scenario's whole report.
#
#   scripts/bench.sh [OUT.md]        (default bench-results.md)
#
# Starts the cluster with scripts/cluster.sh (in .mevents-bench, empty
# stores, R3, sync always or SYNC=1s), runs `mevents bench` for each
# scenario with the raw JetStream comparison and the nodes' CPU per event
# (from their ops listeners), stops the cluster. DURATION
# (default 30s) sets the length of each scenario (after a 5 s warm-up);
# IDLE_GROUPS=300 adds the idle-groups measurement (IDLE_WINDOW, default 60s);
# SOAK=10m adds a steady-load soak that samples each node's resident memory
# every 30 s (SOAK_RATE events/s, default 300); ONLY_SOAK=1 skips the
# standard scenarios.
set -euo pipefail
export GOTOOLCHAIN=auto
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-bench-results.md}
dir=${BENCH_DIR:-$root/.mevents-bench}
duration=${DURATION:-30s}

# Each run starts from empty stores, so earlier runs' groups and events
# do not weigh on it.
for i in 1 2 3; do
  if [[ -f $dir/n$i.pid ]] && kill -0 "$(cat "$dir/n$i.pid")" 2>/dev/null; then
    echo "a cluster is running in $dir; stop it first: scripts/cluster.sh stop $dir" >&2
    exit 1
  fi
done

# The table (one row per run, from --summary) and the reports are written
# apart and put together at the end, also when a run fails.
summary=$dir/summary.md details=$dir/details.md
rm -f "$summary" "$details"
finish() {
  {
    if [[ -f $summary ]]; then cat "$summary"; echo; fi
    if [[ -f $details ]]; then cat "$details"; fi
  } >> "$out"
  # To stderr: a run that fails exits with stdout still redirected.
  echo "wrote $out" >&2
  "$root/scripts/cluster.sh" stop "$dir" >&2
}

rm -rf "$dir/data"
"$root/scripts/cluster.sh" start "$dir"
trap finish EXIT

api=${API_PORT:-8443} nats=${NATS_PORT:-4222} ops=${OPS_PORT:-9090}
common=(--api "https://localhost:$api,https://localhost:$((api+1)),https://localhost:$((api+2))"
  --ca "$dir/pki/ca.pem" --cert "$dir/pki/demo-producer.pem" --key "$dir/pki/demo-producer-key.pem"
  --consumer-cert "$dir/pki/demo-consumer.pem" --consumer-key "$dir/pki/demo-consumer-key.pem"
  --nats "tls://127.0.0.1:$nats" --nats-user ops --nats-password "$(cat "$dir/operator-password")"
  --ops "http://127.0.0.1:$ops,http://127.0.0.1:$((ops+1)),http://127.0.0.1:$((ops+2))")

{
  echo "# mevents bench — $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "3-node cluster on one machine ($(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB), sync ${SYNC:-always}, R3, mTLS, HTTP/2 producers, WebSocket consumers."
  echo
} > "$out"

run() {
  local title=$1; shift
  echo "== $title"
  {
    echo "## $title"
    echo
    echo '```'
    echo "mevents bench $*"
    "$dir/bin/mevents" bench "${common[@]}" --summary "$summary" "$@" 2>/dev/null
    echo '```'
    echo
  } >> "$details"
}

if [[ -z ${ONLY_SOAK:-} ]]; then
  run "Throughput: 4 producers, batches of 100 1-KiB events, 3 consumers" --producers 4 --batch 100 --size 1024 --keys 1000 --consumers 3 --duration "$duration"
  run "Producing alone: 4 producers, batches of 100 1-KiB events" --producers 4 --batch 100 --size 1024 --keys 1000 --consumers 0 --duration "$duration"
  run "One partition key: 4 producers, batches of 100, 3 consumers" --producers 4 --batch 100 --size 1024 --keys 1 --consumers 3 --duration "$duration"
  run "Latency at 2,000 events/s over 120 keys" --producers 4 --batch 10 --size 1024 --keys 120 --consumers 3 --rate 2000 --duration "$duration"
  run "Single-event produce latency" --producers 1 --batch 1 --size 1024 --consumers 0 --rate 100 --duration "$duration"
fi
# IDLE_GROUPS=300: what idle groups cost (a WebSocket each, then none).
if [[ -n ${IDLE_GROUPS:-} ]]; then
  run "Idle groups: $IDLE_GROUPS groups × every type, one idle WebSocket each" --idle-groups "$IDLE_GROUPS" --window "${IDLE_WINDOW:-60s}"
fi
for i in 1 2 3; do
  rss=$(ps -o rss= -p "$(cat "$dir/n$i.pid")" 2>/dev/null || echo 0)
  echo "- n$i resident memory after the run: $((rss / 1024)) MiB" >> "$details"
done

# SOAK=10m: a steady load below the delivery capacity for that long, with
# each node's resident memory every 30 s, to see whether it grows.
if [[ -n ${SOAK:-} ]]; then
  {
    echo
    echo "## Soak: ${SOAK_RATE:-300} events/s for $SOAK, 3 consumers"
    echo
    echo "| elapsed | n1 MiB | n2 MiB | n3 MiB |"
    echo "|---|---|---|---|"
  } >> "$details"
  "$dir/bin/mevents" bench "${common[@]}" --summary "$summary" --producers 2 --batch 10 --consumers 3 --rate "${SOAK_RATE:-300}" --duration "$SOAK" \
    > "$dir/soak-report.txt" 2>/dev/null &
  soak=$!
  start=$SECONDS
  while kill -0 "$soak" 2>/dev/null; do
    row="| $((SECONDS - start)) s |"
    for i in 1 2 3; do
      rss=$(ps -o rss= -p "$(cat "$dir/n$i.pid")" 2>/dev/null || echo 0)
      row="$row $((rss / 1024)) |"
    done
    echo "$row" >> "$details"
    sleep 30
  done
  { echo; echo '```'; cat "$dir/soak-report.txt"; echo '```'; } >> "$details"
fi
