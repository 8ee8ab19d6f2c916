package broker

import (
	"runtime/debug"
	"sync/atomic"
	"time"
)

// Returning memory after a burst. Hundreds of readers parking (their
// consumers deleted), instances closing, or new groups joining (their
// readers park at once when idle) turn tens of MB of heap into garbage
// at once. Go collects it only when the heap next reaches twice
// what was live at the last collection, which an idle node does not do
// for a while (the runtime forces a collection every 2 minutes), and its
// scavenger then hands the freed pages back slowly; meanwhile the node
// holds the memory of its busiest moment. So a node that has let go of
// many readers and then seen a quiet moment collects and returns the
// free memory once: one full collection of the live heap (a few tens of
// milliseconds), at most once a minute, never while readers keep parking
// (a burst still under way, or a busy node).

const (
	// memoryFreedReaders is how many readers must have let go (parked or
	// stopped) since the last return.
	memoryFreedReaders = 100
	// memoryQuiet is how long none may have let go before the return.
	memoryQuiet = 5 * time.Second
	// memoryEvery bounds how often memory is returned.
	memoryEvery = time.Minute
)

// memoryReturn counts the readers that let go of their consumers.
type memoryReturn struct {
	freed   atomic.Int64 // since the last return
	returns atomic.Int64 // how often memory was returned

	// quiet, every and readers are memoryQuiet, memoryEvery and
	// memoryFreedReaders, shorter in tests.
	quiet, every time.Duration
	readers      int64
}

// let records that readers let go of their consumers.
func (m *memoryReturn) let(readers int) { m.freed.Add(int64(readers)) }

// due reports whether to return memory now: freed readers let go since
// the last return, seen of them a tick ago (none since: a quiet moment),
// the last return since ago.
func (m *memoryReturn) due(freed, seen int64, since time.Duration) bool {
	return freed == seen && freed >= m.readers && since >= m.every
}

// returnMemory runs until the node closes; n.loops counts it.
func (n *Node) returnMemory() {
	m := &n.memory
	t := time.NewTicker(m.quiet)
	defer t.Stop()
	var last time.Time
	seen := int64(0)
	for {
		select {
		case <-n.bgCtx.Done():
			return
		case <-t.C:
		}
		freed := m.freed.Load()
		due := m.due(freed, seen, time.Since(last))
		seen = freed
		if !due {
			continue
		}
		start := time.Now()
		debug.FreeOSMemory()
		last = time.Now()
		m.freed.Add(-freed)
		seen = m.freed.Load()
		m.returns.Add(1)
		n.log.Debug("returned free memory", "readers", freed, "took", last.Sub(start))
	}
}
