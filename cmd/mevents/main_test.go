package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/broker/brokertest"
	"github.com/mevents/mevents/config"
	"github.com/mevents/mevents/gateway/gatewaytest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}

// runMain serves cfg until the test ends and returns the running Main.
func runMain(t *testing.T, cfg *config.Node, ready func(*Main)) *Main {
	t.Helper()
	m, err := startMain(t, cfg, ready)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// startMain is runMain for goroutines other than the test's: it reports
// instead of failing the test.
func startMain(t *testing.T, cfg *config.Node, ready func(*Main)) (*Main, error) {
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan *Main, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, testLogger(t), func(m *Main) {
			if ready != nil {
				ready(m)
			}
			started <- m
		})
	}()
	select {
	case m := <-started:
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve %s: %v", cfg.Node.Name, err)
			}
		})
		return m, nil
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("serve %s: %w", cfg.Node.Name, err)
	case <-time.After(60 * time.Second):
		cancel()
		t.Cleanup(func() { <-done })
		return nil, fmt.Errorf("node %s did not start within 60s", cfg.Node.Name)
	}
}

// runDevSystem writes a development system into a new directory and
// serves it on free ports until the test ends.
func runDevSystem(t *testing.T) (*Main, string) {
	t.Helper()
	return runDevSystemIn(t, "")
}

// runDevSystemIn is runDevSystem in a directory named name ("" for the
// temporary directory itself) of a new temporary directory.
func runDevSystemIn(t *testing.T, name string) (*Main, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if _, err := writeDevSystem(dir); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadNode(filepath.Join(dir, "node.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.API.Listen, cfg.Ops.Listen, cfg.NATS.Listen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.JetStream.Sync = config.Sync(time.Minute)
	return runMain(t, cfg, nil), dir
}

// TestDev creates a development system, serves it on free ports and runs
// the curl commands it prints, exactly as printed.
func TestDev(t *testing.T) {
	dir := t.TempDir()
	created, err := writeDevSystem(dir)
	if err != nil || !created {
		t.Fatalf("writeDevSystem: created=%v err=%v", created, err)
	}
	if again, err := writeDevSystem(dir); err != nil || again {
		t.Fatalf("second writeDevSystem: created=%v err=%v, want reuse", again, err)
	}
	cfg, err := config.LoadNode(filepath.Join(dir, "node.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.API.Listen, cfg.Ops.Listen, cfg.NATS.Listen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.JetStream.Sync = config.Sync(time.Minute)
	var help gatewaytest.LogBuffer
	m := runMain(t, cfg, func(m *Main) { printDevHelp(&help, dir, m) })

	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed: the printed commands are not run")
	}
	var commands []string
	lines := strings.Split(help.String(), "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(line, "curl ") {
			continue
		}
		for strings.HasSuffix(line, `\`) && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, `\`) + " " + strings.TrimSpace(lines[i])
		}
		commands = append(commands, line)
	}
	if len(commands) < 4 {
		t.Fatalf("printed %d curl commands:\n%s", len(commands), help.String())
	}
	ackID := ""
	for _, c := range commands {
		if strings.Contains(c, "ACKID") {
			if ackID == "" {
				t.Fatalf("no ackid to acknowledge with before %s", c)
			}
			c = strings.ReplaceAll(c, "ACKID", ackID)
		}
		out, err := exec.Command("bash", "-c", c+" -sS -w '\n%{http_code}'").CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", c, err, out)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		code := lines[len(lines)-1]
		want := "202"
		switch {
		case strings.Contains(c, "readyz"), strings.Contains(c, "/v1/subscription/"):
			want = "200"
		case strings.Contains(c, "invalid"):
			want = "400"
		}
		if code != want {
			t.Fatalf("%s\nanswered %s, want %s:\n%s", c, code, want, out)
		}
		switch {
		case strings.Contains(c, "/v1/subscription/events"):
			var evs []struct{ AckID string }
			if err := json.Unmarshal([]byte(strings.Join(lines[:len(lines)-1], "\n")), &evs); err != nil || len(evs) == 0 {
				t.Fatalf("%s: %v\n%s", c, err, out)
			}
			ackID = evs[0].AckID
		case strings.Contains(c, "/v1/subscription/ack") && !strings.Contains(string(out), `"succeeded":["`+ackID+`"]`):
			t.Fatalf("%s did not acknowledge:\n%s", c, out)
		}
	}
	// The mevents commands it prints work as printed, in the order printed.
	env := meventsOnPath(t, "https://"+m.API.Addr())
	ran := 0
	for _, line := range strings.Split(help.String(), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "mevents produce") && !strings.HasPrefix(line, "mevents consume") {
			continue
		}
		out := shell(t, dir, env, line, 0)
		if strings.HasPrefix(line, "mevents consume") && !strings.Contains(out, `"ackid"`) {
			t.Fatalf("%s printed %q, want an event", line, out)
		}
		ran++
	}
	if ran < 2 {
		t.Fatalf("printed %d mevents commands:\n%s", ran, help.String())
	}
	if !strings.Contains(help.String(), "nats context save") {
		t.Fatalf("no nats CLI line in:\n%s", help.String())
	}
	_ = m
}

// clusterConfigs writes a PKI and a registry into dir and returns the
// configurations of size nodes routed to each other over mutual TLS.
func clusterConfigs(t *testing.T, dir string, size int) []*config.Node {
	t.Helper()
	pki := filepath.Join(dir, "pki")
	if err := config.IssueCA(pki); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"producer", "consumer"} {
		if err := config.IssueClient(pki, pki, c); err != nil {
			t.Fatal(err)
		}
	}
	registry := filepath.Join(dir, "registry.yaml")
	if err := os.WriteFile(filepath.Join(dir, "order.json"), []byte(`{"type":"object","required":["orderId"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(registry, []byte(`
eventTypes:
  - {type: org.example.order.changed, schema: order.json}
clients:
  - {id: producer, certificate: {subject: "CN=producer"}, produce: [org.example.order.changed]}
  - {id: consumer, certificate: {subject: "CN=consumer"}, consume: [org.example.order.changed]}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	routes := make([]string, size)
	listens := make([]string, size)
	for i := range routes {
		listens[i] = brokertest.FreeAddr(t)
		routes[i] = "nats-route://" + listens[i]
	}
	cfgs := make([]*config.Node, size)
	for i := range cfgs {
		name := fmt.Sprintf("n%d", i+1)
		if err := config.IssueNode(pki, pki, name, []string{"localhost", "127.0.0.1"}); err != nil {
			t.Fatal(err)
		}
		cert, key, ca := filepath.Join(pki, name+".pem"), filepath.Join(pki, name+"-key.pem"), filepath.Join(pki, "ca.pem")
		cfg := &config.Node{
			Node: config.NodeSection{Name: name, DataDir: filepath.Join(dir, name)},
			API:  config.API{Listen: "127.0.0.1:0", TLS: config.APITLS{Cert: cert, Key: key, ClientCA: ca}},
			Ops:  config.Ops{Listen: "127.0.0.1:0"},
			NATS: &config.NATS{Listen: "127.0.0.1:0", TLS: config.TLS{Cert: cert, Key: key, CA: ca},
				Operators: []config.Operator{{User: "ops", Password: "pw"}}},
			Cluster:   &config.Cluster{Name: "mevents", Listen: listens[i], Routes: routes, TLS: config.TLS{Cert: cert, Key: key, CA: ca}},
			JetStream: config.JetStream{Sync: config.Sync(time.Minute)},
			Registry:  registry,
		}
		cfg.Default()
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		cfgs[i] = cfg
	}
	return cfgs
}

// clientTLS is the TLS configuration of client name of the PKI in pki.
func clientTLS(t *testing.T, pki, name string) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(pki, name+".pem"), filepath.Join(pki, name+"-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(pki, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}
}

func mtlsClient(t *testing.T, pki, name string) *http.Client {
	t.Helper()
	tr := &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: clientTLS(t, pki, name)}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}
}

// TestClusterLosesStreamLeader runs three nodes from their configurations
// (routes over mutual TLS), produces over HTTPS, shuts down the node that
// leads the stream and keeps producing on the other two: every
// acknowledged event is stored, once.
func TestClusterLosesStreamLeader(t *testing.T) {
	dir := t.TempDir()
	cfgs := clusterConfigs(t, dir, 3)
	mains := make([]*Main, len(cfgs))
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := startMain(t, cfg, nil)
			if err != nil {
				t.Error(err)
			}
			mains[i] = m
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	client := mtlsClient(t, filepath.Join(dir, "pki"), "producer")
	acked := map[string]bool{}
	produce := func(m *Main, from, to int) {
		t.Helper()
		var batch []string
		var ids []string
		for i := from; i < to; i++ {
			id := fmt.Sprint("e", i)
			ids = append(ids, id)
			batch = append(batch, fmt.Sprintf(`{"specversion":"1.0","type":"org.example.order.changed","source":"/erp","id":%q,"partitionkey":"o%d","data":{"orderId":"o%d"}}`, id, i%10, i%10))
		}
		body := "[" + strings.Join(batch, ",") + "]"
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := client.Post("https://"+m.API.Addr()+"/v1/events", "application/cloudevents-batch+json", strings.NewReader(body))
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					for _, id := range ids {
						acked[id] = true
					}
					return
				}
				if resp.StatusCode != http.StatusServiceUnavailable {
					t.Fatalf("status %d: %s", resp.StatusCode, b)
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("producing %d..%d: still failing: %v", from, to, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	for i := 0; i < 200; i += 50 {
		produce(mains[i/50%3], i, i+50)
	}

	js := operatorJS(t, mains[0])
	info := streamInfo(t, js, "org.example.order.changed")
	if info.Config.Replicas != 3 || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream has R%d with %d followers, want R3", info.Config.Replicas, len(info.Cluster.Replicas))
	}
	var survivors []*Main
	for _, m := range mains {
		if m.Config.Node.Name == info.Cluster.Leader {
			if err := m.Close(context.Background()); err != nil {
				t.Fatalf("close the leader: %v", err)
			}
		} else {
			survivors = append(survivors, m)
		}
	}
	if len(survivors) != 2 {
		t.Fatalf("stream leader %q is not a node of the cluster", info.Cluster.Leader)
	}
	produce(survivors[0], 200, 300)
	produce(survivors[1], 250, 400) // 250..299 again: stored once

	js = operatorJS(t, survivors[1])
	deadline := time.Now().Add(20 * time.Second)
	for {
		info = streamInfo(t, js, "org.example.order.changed")
		if info.State.Msgs == uint64(len(acked)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream holds %d events, %d were acknowledged", info.State.Msgs, len(acked))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Every acknowledged id is there.
	ctx := context.Background()
	stream, err := js.Stream(ctx, broker.StreamName("org.example.order.changed"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		msg, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("read back event %d: %v", seq, err)
		}
		var ev struct{ ID string }
		if err := json.Unmarshal(msg.Data, &ev); err != nil {
			t.Fatal(err)
		}
		seen[ev.ID] = true
	}
	for id := range acked {
		if !seen[id] {
			t.Fatalf("acknowledged event %s is missing", id)
		}
	}
}

func operatorJS(t *testing.T, m *Main) jetstream.JetStream {
	t.Helper()
	return operatorJSAt(t, m.Config, m.Node.OperatorAddr())
}

// operatorJSAt connects to the operator port at addr as the first operator
// of cfg, over TLS, as the nats CLI does.
func operatorJSAt(t *testing.T, cfg *config.Node, addr string) jetstream.JetStream {
	t.Helper()
	caPEM, err := os.ReadFile(cfg.NATS.TLS.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	op := cfg.NATS.Operators[0]
	nc, err := nats.Connect("tls://"+addr, nats.UserInfo(op.User, op.Password), nats.Secure(&tls.Config{RootCAs: pool}))
	if err != nil {
		t.Fatalf("operator connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func streamInfo(t *testing.T, js jetstream.JetStream, typ string) *jetstream.StreamInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, broker.StreamName(typ))
	if err != nil {
		t.Fatalf("stream of %s: %v", typ, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// TestReload changes the registry of a running node: a new type gets its
// stream and a new client may produce at once; a bad file is rejected and
// the registry in force stays.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	cfg := clusterConfigs(t, dir, 1)[0]
	cfg.Cluster = nil
	m := runMain(t, cfg, nil)
	pki := filepath.Join(dir, "pki")
	if err := config.IssueClient(pki, pki, "newcomer"); err != nil {
		t.Fatal(err)
	}
	post := func(client, typ string) int {
		t.Helper()
		body := fmt.Sprintf(`{"specversion":"1.0","type":%q,"source":"/s","id":"1","data":{"orderId":"o1"}}`, typ)
		resp, err := mtlsClient(t, pki, client).Post("https://"+m.API.Addr()+"/v1/events", "application/cloudevents+json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post("newcomer", "org.example.order.shipped"); got != http.StatusForbidden {
		t.Fatalf("before reload: status %d, want 403", got)
	}
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(cfg.Registry, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`
eventTypes:
  - {type: org.example.order.changed, schema: order.json}
  - {type: org.example.order.shipped, schema: order.json}
clients:
  - {id: producer, certificate: {subject: "CN=producer"}, produce: [org.example.order.changed]}
  - {id: newcomer, certificate: {subject: "CN=newcomer"}, produce: [org.example.order.shipped]}
`)
	if err := m.Reload(context.Background()); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if got := post("newcomer", "org.example.order.shipped"); got != http.StatusAccepted {
		t.Fatalf("after reload: status %d, want 202", got)
	}
	if got := post("producer", "org.example.order.changed"); got != http.StatusAccepted {
		t.Fatalf("after reload, existing client: status %d, want 202", got)
	}
	info := streamInfo(t, operatorJS(t, m), "org.example.order.shipped")
	if info.State.Msgs != 1 {
		t.Fatalf("new stream holds %d events, want 1", info.State.Msgs)
	}

	// A bad file: rejected with the reason; the registry in force stays.
	write(`
eventTypes:
  - {type: org.example.order.changed, schema: order.json, colour: blue}
clients: []
`)
	err := m.Reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), "colour") {
		t.Fatalf("reload of a bad file: err=%v, want one naming the unknown field", err)
	}
	if got := post("newcomer", "org.example.order.shipped"); got != http.StatusAccepted {
		t.Fatalf("after a rejected reload: status %d, want 202", got)
	}
	// A schema that does not compile is rejected too.
	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`{"type": 5}`), 0o644); err != nil {
		t.Fatal(err)
	}
	write(`
eventTypes:
  - {type: org.example.order.changed, schema: bad.json}
clients: []
`)
	if err := m.Reload(context.Background()); err == nil {
		t.Fatal("reload with a schema that does not compile succeeded")
	}
	if got := post("producer", "org.example.order.changed"); got != http.StatusAccepted {
		t.Fatalf("after a rejected reload: status %d, want 202", got)
	}
}

// TestRevocation: a certificate added to the API's CRL with `mevents certs
// revoke` is refused after a reload; the others keep working.
func TestRevocation(t *testing.T) {
	dir := t.TempDir()
	cfg := clusterConfigs(t, dir, 1)[0]
	cfg.Cluster = nil
	pki := filepath.Join(dir, "pki")
	for _, c := range []string{"retired"} {
		if err := config.IssueClient(pki, pki, c); err != nil {
			t.Fatal(err)
		}
	}
	crl := filepath.Join(dir, "crl.pem")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"certs", "revoke", "--ca", pki, "--crl", crl, "--cert", filepath.Join(pki, "retired.pem")}, &out, &out); err != nil {
		t.Fatalf("certs revoke: %v: %s", err, out.String())
	}
	cfg.API.TLS.CRL = crl
	m := runMain(t, cfg, nil)
	get := func(client string) error {
		t.Helper()
		resp, err := mtlsClient(t, pki, client).Get("https://" + m.API.Addr() + "/v1/whoami")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get("retired"); err == nil {
		t.Fatal("a revoked certificate was accepted")
	}
	if err := get("producer"); err != nil {
		t.Fatalf("before revocation: %v", err)
	}
	if err := run(context.Background(), []string{"certs", "revoke", "--ca", pki, "--crl", crl, "--cert", filepath.Join(pki, "producer.pem")}, &out, &out); err != nil {
		t.Fatalf("certs revoke: %v: %s", err, out.String())
	}
	if err := m.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := get("producer"); err == nil {
		t.Fatal("after revocation and reload, the certificate was accepted")
	}
	if err := get("retired"); err == nil {
		t.Fatal("the first revocation was lost")
	}
}
