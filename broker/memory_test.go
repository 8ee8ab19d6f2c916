package broker

import (
	"testing"
	"time"
)

func TestMemoryReturnIsDue(t *testing.T) {
	m := memoryReturn{quiet: memoryQuiet, every: memoryEvery, readers: memoryFreedReaders}
	tests := []struct {
		name        string
		freed, seen int64
		since       time.Duration
		want        bool
	}{
		{"a burst over, a while after the last", 500, 500, time.Hour, true},
		{"just enough", 100, 100, time.Minute, true},
		{"readers still letting go", 500, 480, time.Hour, false},
		{"a few", 99, 99, time.Hour, false},
		{"too soon after the last", 500, 500, 59 * time.Second, false},
		{"nothing", 0, 0, time.Hour, false},
	}
	for _, tt := range tests {
		if got := m.due(tt.freed, tt.seen, tt.since); got != tt.want {
			t.Errorf("%s: due(%d, %d, %v) = %v, want %v", tt.name, tt.freed, tt.seen, tt.since, got, tt.want)
		}
	}
}

// TestMemoryReturnedOnce: readers let go, a quiet tick later the node
// returns memory once and starts counting again.
func TestMemoryReturnedOnce(t *testing.T) {
	n := NewNode(NodeConfig{})
	n.memory.quiet, n.memory.every, n.memory.readers = 20*time.Millisecond, time.Hour, 10
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.returnMemory()
	}()
	defer func() {
		n.bgCancel()
		<-done
	}()
	n.memory.let(10)
	deadline := time.Now().Add(5 * time.Second)
	for n.memory.returns.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no memory returned after 10 readers let go")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if f := n.memory.freed.Load(); f != 0 {
		t.Fatalf("%d readers still counted after the return", f)
	}
	n.memory.let(10)
	time.Sleep(100 * time.Millisecond)
	if r := n.memory.returns.Load(); r != 1 {
		t.Fatalf("memory returned %d times within the hour, want once", r)
	}
}
