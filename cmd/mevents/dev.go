package main

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/mevents/mevents/config"
)

// devdata holds the registry, schemas and example events of the
// development system; scripts/cluster.sh uses them too.
//
//go:embed devdata
var devdata embed.FS

// runDev creates a development system in DIR if there is none, then serves it.
func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("dev", flag.ContinueOnError)
	fset.SetOutput(stderr)
	dir := fset.String("dir", ".mevents-dev", "directory of the development system (created if absent)")
	if err := fset.Parse(args); err != nil {
		return err
	}
	created, err := writeDevSystem(*dir)
	if err != nil {
		return err
	}
	cfg, err := config.LoadNode(filepath.Join(*dir, "node.yaml"))
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(stdout, "created a development system in %s\n", *dir)
	} else {
		fmt.Fprintf(stdout, "using the development system in %s\n", *dir)
	}
	// A person reads this log: short lines, not JSON (serve keeps JSON).
	log := slog.New(newDevHandler(stderr, cfg.Log.SlogLevel()))
	return serve(ctx, cfg, log, func(m *Main) { printDevHelp(stdout, *dir, m) })
}

// writeDevSystem writes node.yaml, devdata (registry.yaml, schemas, example events)
// and a PKI into dir unless node.yaml is already there. It reports whether
// it wrote them.
func writeDevSystem(dir string) (bool, error) {
	if _, err := os.Stat(filepath.Join(dir, "node.yaml")); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	pki := filepath.Join(dir, "pki")
	if err := os.MkdirAll(pki, 0o755); err != nil {
		return false, err
	}
	if _, err := os.Stat(filepath.Join(pki, "ca.pem")); errors.Is(err, fs.ErrNotExist) {
		if err := config.IssueCA(pki); err != nil {
			return false, err
		}
	}
	if err := config.IssueNode(pki, pki, "dev", []string{"localhost", "127.0.0.1", "::1"}); err != nil {
		return false, err
	}
	for _, c := range []string{"demo-producer", "demo-consumer", "demo-admin"} {
		if err := config.IssueClient(pki, pki, c); err != nil {
			return false, err
		}
	}
	sub, err := fs.Sub(devdata, "devdata")
	if err != nil {
		return false, err
	}
	if err := os.CopyFS(dir, sub); err != nil {
		return false, fmt.Errorf("write examples: %w", err)
	}
	var pw [12]byte
	_, _ = rand.Read(pw[:])
	node := strings.ReplaceAll(devNodeYAML, "PASSWORD", hex.EncodeToString(pw[:]))
	// node.yaml last: its presence marks a complete system.
	if err := os.WriteFile(filepath.Join(dir, "node.yaml"), []byte(node), 0o600); err != nil {
		return false, err
	}
	return true, nil
}

const devNodeYAML = `# A single-node development system, written by "mevents dev".
node: {name: dev, dataDir: data}
api:
  listen: "127.0.0.1:8443"
  tls: {cert: pki/dev.pem, key: pki/dev-key.pem, clientCA: pki/ca.pem}
ops: {listen: "127.0.0.1:9090"}
nats:
  listen: "127.0.0.1:4222"
  tls: {cert: pki/dev.pem, key: pki/dev-key.pem, ca: pki/ca.pem}
  operators: [{user: ops, password: "PASSWORD"}]
jetstream: {maxStore: 1GiB, maxMemory: 64MiB, sync: always}
registry: registry.yaml
`

// printDevHelp prints ready-to-paste commands for the running system.
func printDevHelp(w io.Writer, dir string, m *Main) {
	api := m.API.Addr()
	if strings.HasPrefix(api, "127.0.0.1:") {
		api = "localhost:" + strings.TrimPrefix(api, "127.0.0.1:")
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	tlsFlags := fmt.Sprintf("--cacert %s --cert %s --key %s", p("pki/ca.pem"), p("pki/demo-producer.pem"), p("pki/demo-producer-key.pem"))
	fmt.Fprintf(w, `
mevents is running: API https://%[1]s (client certificates required), ops http://%[2]s

Publish one event (structured mode):
  curl %[3]s -H 'Content-Type: application/cloudevents+json' --data-binary @%[4]s https://%[1]s/v1/events

Publish a batch of the four example types:
  curl %[3]s -H 'Content-Type: application/cloudevents-batch+json' --data-binary @%[5]s https://%[1]s/v1/events

Publish in binary mode (attributes in ce- headers, the body is the data):
  curl %[3]s -H 'ce-specversion: 1.0' -H 'ce-id: order-4711-3' -H 'ce-source: /mes/plant-1' \
    -H 'ce-type: com.example.mes.processorder.statuschanged' -H 'ce-partitionkey: 4711' \
    -H 'Content-Type: application/json' --data-binary @%[6]s https://%[1]s/v1/events

See a rejected event and its error report (the schema wants a 13-digit idnp):
  curl %[3]s -H 'Content-Type: application/cloudevents+json' --data-binary @%[7]s https://%[1]s/v1/events

Readiness:
  curl http://%[2]s/readyz
`, api, m.Ops.Addr(), tlsFlags, p("examples/person-registered.json"), p("examples/batch.json"),
		p("examples/process-order-status.data.json"), p("examples/person-registered-invalid.json"))
	// The mevents commands default to this system when it runs from
	// .mevents-dev on 8443; otherwise they name it.
	var pflags, cflags string
	if dir != ".mevents-dev" || api != "localhost:8443" {
		pflags = fmt.Sprintf(" --api https://%s --ca %s --cert %s --key %s", api, p("pki/ca.pem"), p("pki/demo-producer.pem"), p("pki/demo-producer-key.pem"))
		cflags = fmt.Sprintf(" --api https://%s --ca %s --cert %s --key %s", api, p("pki/ca.pem"), p("pki/demo-consumer.pem"), p("pki/demo-consumer-key.pem"))
	}
	ctls := fmt.Sprintf("--cacert %s --cert %s --key %s", p("pki/ca.pem"), p("pki/demo-consumer.pem"), p("pki/demo-consumer-key.pem"))
	fmt.Fprintf(w, `
Produce with the mevents client (go install ./cmd/mevents; see produce -h):
  mevents produce%[1]s --type md.gov.person.registered --source /md/gov/civil-registry --id person-2004012345678 --partitionkey 2004012345678 --data @%[2]s

Consume as demo-consumer: print the events as JSON lines and acknowledge them (without --max, until Ctrl-C):
  mevents consume%[3]s --max 1

Or long-poll, then acknowledge with the ackid of an event of the answer:
  curl %[4]s 'https://%[5]s/v1/subscription/events?group=curl&max=10&wait=5s'
  curl %[4]s -H 'Content-Type: application/json' -d '{"ackIds":["ACKID"]}' https://%[5]s/v1/subscription/ack
`, pflags, p("examples/person-registered.data.json"), cflags, ctls, api)
	if op := m.Node.OperatorAddr(); op != "" && len(m.Config.NATS.Operators) > 0 {
		o := m.Config.NATS.Operators[0]
		fmt.Fprintf(w, `
The nats CLI (operator port, TLS + password):
  nats context save mevents-dev --server tls://%s --user %s --password %s --tlsca %s
  nats --context mevents-dev stream ls
`, op, o.User, o.Password, p("pki/ca.pem"))
	}
	fmt.Fprintln(w)
}
