#!/usr/bin/env bash
# Start, stop or inspect a local 3-node mevents cluster: three `mevents serve`
# processes on this machine, routed to each other over mutual TLS.
#
#   scripts/cluster.sh start [DIR]    build, write configs and a PKI (first time), start n1 n2 n3
#   scripts/cluster.sh stop [DIR]     SIGTERM the three nodes and wait for them
#   scripts/cluster.sh status [DIR]   readiness of each node
#
# DIR defaults to .mevents-cluster. Ports: API 8443-8445, ops 9090-9092,
# NATS (operators) 4222-4224, routes 6222-6224; override the first with
# API_PORT, OPS_PORT, NATS_PORT, ROUTE_PORT.
set -euo pipefail
export GOTOOLCHAIN=auto

cmd=${1:-}
dir=${2:-.mevents-cluster}
root=$(cd "$(dirname "$0")/.." && pwd)
api=${API_PORT:-8443} ops=${OPS_PORT:-9090} nats=${NATS_PORT:-4222} route=${ROUTE_PORT:-6222}

write_configs() {
  mkdir -p "$dir/pki" "$dir/schemas"
  local bin="$dir/bin/mevents"
  [[ -f $dir/pki/ca.pem ]] || "$bin" certs ca --out "$dir/pki" >/dev/null
  for i in 1 2 3; do
    [[ -f $dir/pki/n$i.pem ]] || "$bin" certs node --name "n$i" --hosts localhost,127.0.0.1,::1 --out "$dir/pki" >/dev/null
  done
  for c in demo-producer demo-consumer demo-admin; do
    [[ -f $dir/pki/$c.pem ]] || "$bin" certs client --name "$c" --out "$dir/pki" >/dev/null
  done
  cp "$root"/cmd/mevents/devdata/schemas/*.json "$dir/schemas/"
  [[ -f $dir/registry.yaml ]] || sed -e 's/^# Event types.*/# Event types and clients of the local cluster (replicas default to 3)./' \
    "$root/cmd/mevents/devdata/registry.yaml" > "$dir/registry.yaml"
  local password
  password=$(cat "$dir/operator-password" 2>/dev/null || true)
  if [[ -z $password ]]; then
    password=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
    echo "$password" > "$dir/operator-password"
  fi
  local routes="\"nats-route://127.0.0.1:$route\", \"nats-route://127.0.0.1:$((route+1))\", \"nats-route://127.0.0.1:$((route+2))\""
  for i in 1 2 3; do
    local k=$((i-1))
    cat > "$dir/n$i.yaml" <<YAML
node: {name: n$i, dataDir: data/n$i}
api: {listen: "127.0.0.1:$((api+k))", tls: {cert: pki/n$i.pem, key: pki/n$i-key.pem, clientCA: pki/ca.pem}}
ops: {listen: "127.0.0.1:$((ops+k))", pprof: true}
nats:
  listen: "127.0.0.1:$((nats+k))"
  tls: {cert: pki/n$i.pem, key: pki/n$i-key.pem, ca: pki/ca.pem}
  operators: [{user: ops, password: "$password"}]
cluster:
  name: mevents
  listen: "127.0.0.1:$((route+k))"
  routes: [$routes]
  tls: {cert: pki/n$i.pem, key: pki/n$i-key.pem, ca: pki/ca.pem}
jetstream: {maxStore: 4GiB, maxMemory: 256MiB, sync: ${SYNC:-always}}
registry: registry.yaml
YAML
  done
}

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

ready() { curl -fsS "http://127.0.0.1:$1/readyz" >/dev/null 2>&1; }

case $cmd in
start)
  mkdir -p "$dir/bin"
  (cd "$root" && go build -o "$dir/bin/mevents" ./cmd/mevents)
  write_configs
  for i in 1 2 3; do
    if [[ -f $dir/n$i.pid ]] && kill -0 "$(cat "$dir/n$i.pid")" 2>/dev/null; then
      echo "n$i already running (pid $(cat "$dir/n$i.pid"))"; continue
    fi
    "$dir/bin/mevents" serve --config "$dir/n$i.yaml" >>"$dir/n$i.log" 2>&1 &
    echo $! > "$dir/n$i.pid"
  done
  for i in 1 2 3; do
    for _ in $(seq 1 120); do ready $((ops+i-1)) && break; sleep 0.5; done
    ready $((ops+i-1)) || { echo "n$i is not ready; see $dir/n$i.log" >&2; exit 1; }
  done
  echo "cluster ready: API https://localhost:$api,$((api+1)),$((api+2)) — logs in $dir/n*.log"
  echo "  curl --cacert $dir/pki/ca.pem --cert $dir/pki/demo-producer.pem --key $dir/pki/demo-producer-key.pem \\"
  echo "    -H 'Content-Type: application/cloudevents+json' --data-binary @cmd/mevents/devdata/examples/person-registered.json https://localhost:$api/v1/events"
  echo "  nats context save mevents-local --server tls://127.0.0.1:$nats --user ops --password $(cat "$dir/operator-password") --tlsca $dir/pki/ca.pem"
  ;;
stop)
  for i in 1 2 3; do
    [[ -f $dir/n$i.pid ]] && kill -TERM "$(cat "$dir/n$i.pid")" 2>/dev/null || true
  done
  for i in 1 2 3; do
    if [[ -f $dir/n$i.pid ]]; then
      pid=$(cat "$dir/n$i.pid")
      for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -0 "$pid" 2>/dev/null && { echo "n$i did not stop; killing" >&2; kill -KILL "$pid"; }
      rm -f "$dir/n$i.pid"
    fi
  done
  echo "cluster stopped"
  ;;
status)
  for i in 1 2 3; do
    if ready $((ops+i-1)); then echo "n$i ready"; else echo "n$i not ready"; fi
  done
  ;;
*)
  sed -n '2,12p' "$0" >&2
  exit 2
  ;;
esac
