package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestShortDurationAndThousands(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                          "0 µs",
		580 * time.Nanosecond:      "0.58 µs",
		412 * time.Microsecond:     "412 µs",
		999600 * time.Nanosecond:   "1 ms",
		9040 * time.Microsecond:    "9.04 ms",
		412345 * time.Microsecond:  "412 ms",
		999700 * time.Microsecond:  "1 s",
		1712 * time.Millisecond:    "1.71 s",
		37 * time.Second:           "37 s",
		1234567 * time.Millisecond: "1235 s",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
	for f, want := range map[float64]string{0: "0", 999.4: "999", 999.5: "1,000", 4574.2: "4,574", 1234567: "1,234,567"} {
		if got := thousands(f); got != want {
			t.Errorf("thousands(%v) = %q, want %q", f, got, want)
		}
	}
}

// TestBenchSummary: --summary rows, one per run, under one header, with
// the figures each kind of run has and "–" for those it has not.
func TestBenchSummary(t *testing.T) {
	// ms gives 100 latencies whose p50, p90 and p99 are those given in
	// milliseconds (p50 and p99 when two are given).
	ms := func(q ...int) latencies {
		if len(q) == 2 {
			q = []int{q[0], q[1], q[1]}
		}
		var l latencies
		for i := range 100 {
			v := q[0]
			if i >= 90 {
				v = q[2]
			} else if i >= 50 {
				v = q[1]
			}
			l = append(l, time.Duration(v)*time.Millisecond)
		}
		return l
	}
	usage := func(perEvent time.Duration) *usageWindow {
		return &usageWindow{Events: 1000, CPU: perEvent.Seconds() * 1000, Window: time.Second}
	}
	throughput := &benchReport{
		Config:      benchConfig{Producers: 4, Batch: 100, Size: 1024, Keys: 1000, Consumers: 3},
		ProduceRate: 4590.4, DeliveredRate: 4574, Errors: 2,
		Request: ms(83, 83, 181), EndToEnd: ms(140, 776, 1700),
		Usage: usage(372 * time.Microsecond),
		Raw: &rawReport{Publish: 16000, Published: 5750, Consumed: 5740,
			PublishUsage: usage(87 * time.Microsecond), PublishedUsage: usage(283 * time.Microsecond)},
	}
	produceOnly := &benchReport{
		Config:      benchConfig{Producers: 4, Batch: 100, Size: 1024, Keys: 1000},
		ProduceRate: 10581, Request: ms(35, 82),
		Raw: &rawReport{Publish: 21100},
	}
	atRate := &benchReport{
		Config:      benchConfig{Producers: 4, Batch: 10, Size: 1024, Keys: 1000, Consumers: 3, Rate: 2000},
		ProduceRate: 1998, DeliveredRate: 1992, Request: ms(51, 261), EndToEnd: ms(79, 197, 412),
		Raw: &rawReport{Publish: 2000, Published: 2000, Consumed: 2000, PublishLatency: ms(4, 9),
			PublishedLatency: ms(4, 15), EndToEnd: ms(11, 18, 39)},
	}
	single := &benchReport{
		Config:      benchConfig{Producers: 1, Batch: 1, Size: 1024, Keys: 1000, Rate: 100},
		ProduceRate: 100, Request: ms(2, 4),
	}
	file := filepath.Join(t.TempDir(), "summary.md")
	for _, r := range []*benchReport{throughput, produceOnly, atRate, single} {
		if err := appendSummary(file, r); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	want := []string{
		"| scenario | produce | delivered | end-to-end p50 / p90 / p99 | request p50 / p99 | errors | CPU an event | raw | raw CPU an event | gateway/raw |",
		"|---|---|---|---|---|---|---|---|---|---|",
		"| 4 producers, batches of 100, 1024 B, 1000 keys, 3 consumers | 4,590 events/s | 4,574 events/s | 140 ms / 776 ms / 1.7 s | 83 ms / 181 ms | 2 | 372 µs | 5,750 published, 5,740 consumed | 283 µs | 0.80 |",
		"| 4 producers, batches of 100, 1024 B, 1000 keys, 0 consumers | 10,581 events/s | – | – | 35 ms / 82 ms | 0 | – | 21,100 published | – | 0.50 |",
		"| 4 producers, batches of 10, 1024 B, 1000 keys, 3 consumers, 2,000 events/s offered | 1,998 events/s | 1,992 events/s | 79 ms / 197 ms / 412 ms | 51 ms / 261 ms | 0 | – | end to end 11 ms / 18 ms / 39 ms; request 4 ms / 15 ms | – | – |",
		"| 1 producer, batches of 1, 1024 B, 1000 keys, 0 consumers, 100 events/s offered | 100 events/s | – | – | 2 ms / 4 ms | 0 | – | – | – | – |",
	}
	if len(lines) != len(want) {
		t.Fatalf("summary:\n%s", b)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i, lines[i], want[i])
		}
	}
	// A file that cannot be written is an error.
	if err := appendSummary(filepath.Join(t.TempDir(), "missing", "summary.md"), produceOnly); err == nil {
		t.Fatal("appendSummary to a missing directory: no error")
	}
}
