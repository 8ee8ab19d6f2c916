package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/broker/brokertest"
	"github.com/mevents/mevents/gateway/gatewaytest"
	"github.com/nats-io/nats.go/jetstream"
)

// TestBenchEventFitsSchema: the bench's events are what its schema accepts,
// at the size asked for.
func TestBenchEvent(t *testing.T) {
	for _, size := range []int{200, 1024, 4096} {
		var buf bytes.Buffer
		benchEvent(&buf, "org.mevents.bench", "p1", 7, "k3", size, time.Now())
		var ev map[string]any
		if err := json.Unmarshal(buf.Bytes(), &ev); err != nil {
			t.Fatalf("size %d: %v: %s", size, err, buf.Bytes())
		}
		if size >= 400 && (buf.Len() < size-2 || buf.Len() > size+2) {
			t.Fatalf("event of %d bytes, want about %d", buf.Len(), size)
		}
	}
}

// devBench is a bench configuration against a development system: its
// API, PKI and bench type.
func devBench(m *Main, dir string, progress io.Writer) benchConfig {
	pki := filepath.Join(dir, "pki")
	return benchConfig{
		APIs: []string{"https://" + m.API.Addr()}, CA: filepath.Join(pki, "ca.pem"),
		Cert: filepath.Join(pki, "demo-producer.pem"), Key: filepath.Join(pki, "demo-producer-key.pem"),
		ConsumerCert: filepath.Join(pki, "demo-consumer.pem"), ConsumerKey: filepath.Join(pki, "demo-consumer-key.pem"),
		Type: "org.mevents.bench", Keys: 20, MaxInFlight: 100, Progress: progress,
	}
}

// TestBench runs the bench command against a development system: the
// events pass the bench type's schema, every produced event is delivered
// to the WebSocket consumers, the raw JetStream rates are measured, and
// the bench group is deleted afterwards.
func TestBench(t *testing.T) {
	m, dir := runDevSystem(t)
	cfg := m.Config
	var progress bytes.Buffer
	c := devBench(m, dir, &progress)
	c.Producers, c.Consumers, c.Batch, c.Size, c.Duration, c.Count = 2, 2, 50, 1024, time.Second, 600
	c.NATS, c.NATSUser, c.NATSPassword = "tls://"+m.Node.OperatorAddr(), cfg.NATS.Operators[0].User, cfg.NATS.Operators[0].Password
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// An ops listener that does not answer is reported before anything runs.
	bad := c
	bad.Ops = []string{"http://" + brokertest.FreeAddr(t)}
	if _, err := bench(ctx, bad); err == nil || !strings.Contains(err.Error(), "--ops: "+bad.Ops[0]) {
		t.Fatalf("bench with an unreachable ops listener: %v", err)
	}
	c.Ops = []string{"http://" + m.Ops.Addr()}
	r, err := bench(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Produced != 600 || r.Errors != 0 {
		t.Fatalf("produced %d with %d errors %v, want 600 and none", r.Produced, r.Errors, r.FirstErrors)
	}
	if r.Delivered != 600 {
		t.Fatalf("delivered %d, want 600", r.Delivered)
	}
	if r.Raw == nil || r.Raw.Publish <= 0 || r.Raw.Published <= 0 || r.Raw.Consumed <= 0 || len(r.EndToEnd) != 600 || len(r.Request) != 12 {
		t.Fatalf("raw %+v, %d latencies, %d request latencies", r.Raw, len(r.EndToEnd), len(r.Request))
	}
	// Every raw batch and consumed event has its latency.
	if raw := r.Raw; len(raw.PublishLatency) == 0 || len(raw.PublishLatency)*c.Batch != int(raw.Publish*c.Duration.Seconds()) ||
		len(raw.EndToEnd) != int(raw.Published*c.Duration.Seconds()) {
		t.Fatalf("raw: %d batch latencies for %.0f events/s, %d end-to-end latencies for %.0f events/s consumed",
			len(raw.PublishLatency), raw.Publish, len(raw.EndToEnd), raw.Consumed)
	}
	// With the ops listeners it reports the nodes' CPU in each phase.
	if u := r.Usage; u == nil || u.Events != 600 || u.CPU <= 0 || u.perEvent() <= 0 || len(u.RSS) != 1 || u.RSS[0] <= 0 ||
		r.Raw.PublishUsage == nil || r.Raw.PublishUsage.CPU <= 0 || r.Raw.PublishedUsage == nil || r.Raw.PublishedUsage.CPU <= 0 {
		t.Fatalf("node usage %+v, raw %+v and %+v", r.Usage, r.Raw.PublishUsage, r.Raw.PublishedUsage)
	}
	// and, where the system tells, its own (here the node's too: it runs in
	// this process).
	if _, ok := processCPU(); ok && (!r.Usage.SelfKnown || r.Usage.Self <= 0) {
		t.Fatalf("bench process CPU %v (known %v)", r.Usage.Self, r.Usage.SelfKnown)
	}
	// With operator credentials the bench deletes its group afterwards.
	if n := groupCursors(t, c, r.Group); n != 0 {
		t.Fatalf("%d cursors of the bench group %s are left", n, r.Group)
	}
	var out bytes.Buffer
	r.print(&out)
	for _, want := range []string{"produced   600 events", "delivered  600 events", "end-to-end latency p50", "gateway/raw =", "gateway/raw end to end =",
		"per event produced; resident memory", "raw nodes  CPU publishing alone", "; the bench process "} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("report lacks %q:\n%s", want, out.String())
		}
	}
	// Its summary row has every figure: this run measured them all.
	if row := r.row(); strings.Count(row, "|") != 11 || strings.Contains(row, "–") || !strings.Contains(row, "2 consumers") {
		t.Fatalf("summary row %s", row)
	}
}

// TestBenchNamedGroup: --group reuses one group from run to run and keeps
// it, with operator credentials too; a name that is no group name is
// refused before anything runs.
func TestBenchNamedGroup(t *testing.T) {
	m, dir := runDevSystem(t)
	var progress bytes.Buffer
	c := devBench(m, dir, &progress)
	c.Producers, c.Consumers, c.Batch, c.Size, c.Count, c.Warmup = 1, 1, 20, 512, 100, 0
	cfg := m.Config
	c.NATS, c.NATSUser, c.NATSPassword = "tls://"+m.Node.OperatorAddr(), cfg.NATS.Operators[0].User, cfg.NATS.Operators[0].Password
	c.Duration = 200 * time.Millisecond // of each raw measurement
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bad := c
	bad.Group = "no spaces"
	if _, err := bench(ctx, bad); err == nil || !strings.Contains(err.Error(), "--group") {
		t.Fatalf("bench with group %q: %v", bad.Group, err)
	}
	c.Group = "bench-reused"
	for run := 1; run <= 2; run++ {
		r, err := bench(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if r.Group != c.Group || r.Produced != 100 || r.Delivered != 100 {
			t.Fatalf("run %d: group %s, produced %d, delivered %d; want %s, 100, 100", run, r.Group, r.Produced, r.Delivered, c.Group)
		}
	}
	if n := groupCursors(t, c, c.Group); n != mevents.Partitions {
		t.Fatalf("%d cursors of the named group after two runs, want its %d", n, mevents.Partitions)
	}
}

// groupCursors counts the cursors of group (one per type and partition
// it consumed), asking through the bench's operator connection.
func groupCursors(t *testing.T, c benchConfig, group string) int {
	t.Helper()
	if err := c.load(); err != nil {
		t.Fatal(err)
	}
	nc, js, err := c.operatorJetStream()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	n := 0
	for _, g := range cursorGroups(t, js) {
		if g == group {
			n++
		}
	}
	return n
}

// cursorGroups returns the group of every cursor in the cursor bucket (a
// group once per type and partition it consumed).
func cursorGroups(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, broker.CursorBucket)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var groups []string
	for key := range keys.Keys() {
		if _, g, ok := broker.CursorGroup(key); ok {
			groups = append(groups, g)
		}
	}
	return groups
}

// TestWatch: `mevents watch` prints an event produced to the dev system as
// one JSON line and acknowledges it.
func TestWatch(t *testing.T) {
	m, dir := runDevSystem(t)
	pki := filepath.Join(dir, "pki")
	body, err := os.ReadFile(filepath.Join(dir, "examples", "person-registered.json"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := mtlsClient(t, pki, "demo-producer").Post("https://"+m.API.Addr()+"/v1/events", "application/cloudevents+json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out gatewaytest.LogBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"watch", "--api", "https://" + m.API.Addr(), "--ca", filepath.Join(pki, "ca.pem"),
			"--cert", filepath.Join(pki, "demo-consumer.pem"), "--key", filepath.Join(pki, "demo-consumer-key.pem"),
			"--types", "md.gov.person.registered"}, &out, io.Discard)
	}()
	for !strings.Contains(out.String(), "person-2004012345678") {
		select {
		case err := <-done:
			t.Fatalf("watch ended: %v (printed %q)", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("watch: %v", err)
	}
	var ev map[string]any
	if err := json.Unmarshal([]byte(strings.SplitN(out.String(), "\n", 2)[0]), &ev); err != nil || ev["authid"] != "demo-producer" {
		t.Fatalf("printed %q (%v)", out.String(), err)
	}
}

// TestBenchWarmupAndRate: with a rate, producers keep to the schedule with
// requests in flight; what is sent during the warm-up is delivered but left
// out of every figure. JetStream itself is measured at the same rate.
func TestBenchWarmupAndRate(t *testing.T) {
	m, dir := runDevSystem(t)
	var progress bytes.Buffer
	c := devBench(m, dir, &progress)
	c.Producers, c.Consumers, c.Batch, c.Size, c.Count = 2, 1, 10, 512, 300
	c.Rate, c.InFlight, c.Warmup = 400, 4, 500*time.Millisecond
	c.Duration = time.Second // of each raw measurement
	cfg := m.Config
	c.NATS, c.NATSUser, c.NATSPassword = "tls://"+m.Node.OperatorAddr(), cfg.NATS.Operators[0].User, cfg.NATS.Operators[0].Password
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := bench(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if r.Produced != 300 || r.Delivered != 300 || r.Errors != 0 || len(r.EndToEnd) != 300 || len(r.Request) != 30 {
		t.Fatalf("produced %d, delivered %d, %d errors %v, %d end-to-end and %d request latencies; want 300, 300, 0, 300, 30",
			r.Produced, r.Delivered, r.Errors, r.FirstErrors, len(r.EndToEnd), len(r.Request))
	}
	if !strings.Contains(progress.String(), "warming up for 500ms") {
		t.Fatalf("progress does not show the warm-up:\n%s", progress.String())
	}
	// 300 events at 400/s take about 0.75 s; a closed loop would too, but
	// must never be faster than the schedule.
	if r.ProduceTime < 500*time.Millisecond {
		t.Fatalf("300 events at 400/s produced in %s", r.ProduceTime)
	}
	// The raw runs keep to the rate too (400 events/s for a second is at
	// most 40 batches of 10), each batch has its latency, and each
	// consumed event its end-to-end latency.
	raw := r.Raw
	if raw == nil || len(raw.PublishLatency) == 0 || len(raw.PublishLatency) > 40 || len(raw.PublishLatency)*10 != int(raw.Publish) ||
		len(raw.PublishedLatency) == 0 || len(raw.PublishedLatency) > 40 || len(raw.EndToEnd) != len(raw.PublishedLatency)*10 {
		t.Fatalf("raw at 400 events/s for 1s: %+v", raw)
	}
	var out bytes.Buffer
	r.print(&out)
	for _, want := range []string{"at the same rate, publishing alone", "at the same rate, publishing and consuming", "end-to-end latency p50"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("report lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "gateway/raw") {
		t.Fatalf("report compares rates at the same rate:\n%s", out.String())
	}
}
