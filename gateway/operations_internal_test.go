package gateway

import (
	"testing"
	"time"
)

func TestBucket(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type step struct {
		at   time.Duration // since t0
		n    int
		ok   bool
		wait time.Duration // when !ok
	}
	tests := []struct {
		name  string
		rate  float64
		steps []step
	}{
		{"a second's worth, then wait", 10, []step{{0, 10, true, 0}, {0, 1, false, 100 * time.Millisecond}, {100 * time.Millisecond, 1, true, 0}}},
		{"refills up to one second's worth", 2, []step{{0, 2, true, 0}, {time.Hour, 2, true, 0}, {time.Hour, 1, false, 500 * time.Millisecond}}},
		{"a batch larger than the bucket goes into debt", 2, []step{{0, 5, true, 0}, {0, 1, false, 2 * time.Second}, {2 * time.Second, 1, true, 0}}},
		{"below one event per second", 0.5, []step{{0, 1, true, 0}, {time.Second, 1, false, time.Second}, {2 * time.Second, 1, true, 0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bucket
			for i, s := range tt.steps {
				wait, ok := b.take(t0.Add(s.at), tt.rate, s.n)
				if ok != s.ok || (!ok && wait != s.wait) {
					t.Fatalf("step %d: take(%d)=%v,%v, want %v,%v", i, s.n, wait, ok, s.wait, s.ok)
				}
			}
		})
	}
}
