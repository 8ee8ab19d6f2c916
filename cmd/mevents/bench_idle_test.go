package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mevents/mevents/broker"
)

// TestBenchIdle runs `mevents bench --idle-groups` against a development
// system: every group joins, the nodes are measured in each window, the
// summary gets its row under the idle table's header, and the groups'
// consumers are deleted afterwards.
func TestBenchIdle(t *testing.T) {
	m, dir := runDevSystem(t)
	pki := filepath.Join(dir, "pki")
	op := m.Config.NATS.Operators[0]
	summary := filepath.Join(t.TempDir(), "summary.md")
	args := []string{"bench", "--api", "https://" + m.API.Addr(), "--ca", filepath.Join(pki, "ca.pem"),
		"--consumer-cert", filepath.Join(pki, "demo-consumer.pem"), "--consumer-key", filepath.Join(pki, "demo-consumer-key.pem"),
		"--ops", "http://" + m.Ops.Addr(), "--nats", "tls://" + m.Node.OperatorAddr(), "--nats-user", op.User, "--nats-password", op.Password}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// Types not routed to the consumer are refused before anything runs.
	var out, progress bytes.Buffer
	err := run(ctx, append(args, "--idle-groups", "3", "--types", "org.mevents.bench,no.such.type"), &out, &progress)
	if err == nil || !strings.Contains(err.Error(), "--types: no.such.type is not routed to client demo-consumer") {
		t.Fatalf("bench with a type not routed: %v", err)
	}

	out.Reset()
	progress.Reset()
	if err := run(ctx, append(args, "--idle-groups", "12", "--window", "1s", "--settle", "1s", "--scrape", "300ms", "--joins", "4", "--summary", summary), &out, &progress); err != nil {
		t.Fatalf("bench --idle-groups: %v\n%s\n%s", err, out.String(), progress.String())
	}
	report := out.String()
	t.Logf("report:\n%s", report)
	for _, want := range []string{
		"scenario      12 idle groups", "all 5 routed to demo-consumer", "at most 4 joining at once", "windows of 1s, /metrics scraped every 300ms throughout\n",
		"join          12 joined, 0 failed: p50 ", "idle          0 events delivered (not acknowledged), 0 connections closed by the server",
		"\nbaseline      nodes CPU ", "\nconnected     nodes CPU ", "\ndisconnected  nodes CPU ", "; a group ",
		"groups        deleted afterwards (",
	} {
		if !strings.Contains(report, want) {
			t.Fatalf("report lacks %q:\n%s", want, report)
		}
	}
	if strings.Contains(report, "error:") || strings.Count(report, "  vs baseline ") != 2 {
		t.Fatalf("report:\n%s", report)
	}
	// The groups' cursors are deleted, and their readers went with their
	// connections: no consumer is left on any type's stream.
	id := regexp.MustCompile(`idle-([0-9a-f]{8})-0`).FindStringSubmatch(report)
	if id == nil {
		t.Fatalf("report names no groups:\n%s", report)
	}
	c := benchConfig{APIs: []string{"https://" + m.API.Addr()}, CA: filepath.Join(pki, "ca.pem"),
		ConsumerCert: filepath.Join(pki, "demo-consumer.pem"), ConsumerKey: filepath.Join(pki, "demo-consumer-key.pem"),
		NATS: "tls://" + m.Node.OperatorAddr(), NATSUser: op.User, NATSPassword: op.Password}
	if err := c.loadIdle(idleConfig{Groups: 1, Joins: 1, Window: time.Second}); err != nil {
		t.Fatal(err)
	}
	nc, js, err := c.operatorJetStream()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, typ := range []string{"md.gov.person.registered", "org.mojaloop.event", "com.example.mes.processorder.statuschanged",
		"org.example.archive.dataset.published", "org.mevents.bench"} {
		stream, err := js.Stream(ctx, broker.StreamName(typ))
		if err != nil {
			t.Fatal(err)
		}
		for name := range stream.ConsumerNames(ctx).Name() {
			t.Fatalf("consumer %s of %s left", name, typ)
		}
	}
	for _, g := range cursorGroups(t, js) {
		if strings.HasPrefix(g, "idle-"+id[1]+"-") {
			t.Fatalf("a cursor of group %s is left", g)
		}
	}
	// Its summary row has every figure, under the idle table's header.
	b, err := os.ReadFile(summary)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 3 || lines[0]+"\n"+lines[1]+"\n" != idleSummaryHeader || strings.Count(lines[2], "|") != 8 || strings.Contains(lines[2], "–") ||
		!strings.HasPrefix(lines[2], "| 12 idle groups, 5 types, 1 API, 4 joining at once, windows of 1s | ") {
		t.Fatalf("summary:\n%s", b)
	}
}

// TestBenchIdleHelp: the bench's help shows the idle mode and its flags.
func TestBenchIdleHelp(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"bench", "-h"}, &out, &out); err == nil {
		t.Fatal("bench -h: no flag.ErrHelp")
	}
	for _, want := range []string{"mevents bench --idle-groups N [--types a,b] [--joins 8] [--window 1m]", "-idle-groups int", "-joins int", "-window duration", "-types string"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("help lacks %q:\n%s", want, out.String())
		}
	}
}

// TestBenchIdleSummary: an idle run's row, its figures over the baseline
// for each of three nodes; rows of throughput and idle runs in one file
// make a table of each kind each time the kind changes.
func TestBenchIdleSummary(t *testing.T) {
	const mib = 1 << 20
	window := func(cores float64, rss ...float64) *usageWindow {
		u := &usageWindow{Window: 10 * time.Second}
		for _, r := range rss {
			u.CPU += cores * 10
			u.NodeCPU = append(u.NodeCPU, cores*10)
			u.RSS = append(u.RSS, r*mib)
		}
		return u
	}
	ms := func(v ...int) latencies {
		var l latencies
		for _, d := range v {
			l = append(l, time.Duration(d)*time.Millisecond)
		}
		return l
	}
	idle := &idleReport{
		Config: idleConfig{Groups: 4, Joins: 8, Window: 10 * time.Second}, RunID: "0a1b2c3d", Client: "demo-consumer",
		APIs: 3, Routed: 5, Types: []string{"a", "b", "c", "d", "e"},
		Join: ms(10, 12, 14, 40), Baseline: window(0.01, 100, 110, 120),
		Connected: window(0.02, 104, 110, 122), Disconnected: window(0.01, 101, 110, 120.5),
	}
	want := "| 4 idle groups, 5 types, 3 APIs, 8 joining at once, windows of 10s | 12 ms / 40 ms / 40 ms | 0 | " +
		"0.030 cores (0.010, 0.010, 0.010); 100, 110, 120 MiB | +0.030 cores (+0.010, +0.010, +0.010); +4.0, +0.0, +2.0 MiB | " +
		"+7.50 millicores, +1536 KiB | +0.000 cores (+0.000, +0.000, +0.000); +1.0, +0.0, +0.5 MiB |"
	if got := idle.row(); got != want {
		t.Fatalf("idle row\n got %s\nwant %s", got, want)
	}
	var out bytes.Buffer
	idle.print(&out)
	if !strings.Contains(out.String(), "  vs baseline +0.030 cores (+0.010, +0.010, +0.010), +4.0, +0.0, +2.0 MiB; a group +7.50 millicores, +1536 KiB (all nodes)\n") {
		t.Fatalf("report:\n%s", out.String())
	}
	unmeasured := &idleReport{Config: idleConfig{Groups: 1, Joins: 1, Window: time.Second}, APIs: 1, Types: []string{"a"}, Failed: 1, Dropped: 2}
	if got := unmeasured.row(); got != "| 1 idle group, 1 type, 1 API, 1 joining at once, windows of 1s | 0 µs / 0 µs / 0 µs | 1, 2 dropped | – | – | – | – |" {
		t.Fatalf("unmeasured idle row %s", got)
	}

	throughput := &benchReport{Config: benchConfig{Producers: 1, Batch: 1, Size: 1024, Keys: 1000}, ProduceRate: 100, Request: ms(2, 4)}
	file := filepath.Join(t.TempDir(), "summary.md")
	for _, add := range []func() error{
		func() error { return appendSummary(file, throughput) },
		func() error { return appendIdleSummary(file, idle) },
		func() error { return appendIdleSummary(file, unmeasured) },
		func() error { return appendSummary(file, throughput) },
	} {
		if err := add(); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	wantFile := summaryHeader + throughput.row() + "\n\n" + idleSummaryHeader + idle.row() + "\n" + unmeasured.row() + "\n\n" +
		summaryHeader + throughput.row() + "\n"
	if string(b) != wantFile {
		t.Fatalf("summary:\n%s\nwant:\n%s", b, wantFile)
	}
}
