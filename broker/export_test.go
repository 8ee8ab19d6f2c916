package broker

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream exposes the node's JetStream context to tests, which inspect
// streams directly.
func (n *Node) JetStream() jetstream.JetStream { return n.js }

// AppIdentityForTest exposes the in-process identity, so that a test can
// check the network refuses it.
func (n *Node) AppIdentityForTest() (string, nats.SignatureHandler) {
	return n.appUser.pub, n.appUser.sign
}

// MemberIDForTest returns the member id of a subscription.
func (s *Subscription) MemberIDForTest() string { return s.id }

// HubsForTest returns the number of membership hubs of the node.
func (n *Node) HubsForTest() int { return n.hubs.count() }

// OutForTest returns the number of deliveries of s out now.
func (s *Subscription) OutForTest() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outN
}

// DebugState describes what a subscription holds (for failing tests).
func (s *Subscription) DebugState() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := fmt.Sprintf("out %d ready %d held %d\n", s.outN, len(s.ready), s.heldN)
	for k, p := range s.parts {
		n := 0
		for _, e := range p.bySeq {
			if e.out {
				n++
			}
		}
		out += fmt.Sprintf("  %s/%d epoch %d readFrom %d to %d held %d out %d\n", k.typ, k.partition, p.epoch, p.readFrom, p.to, len(p.bySeq), n)
	}
	return out
}

// CrashForTest ends s as a crash would: its goroutines stop and it writes
// nothing more (its partitions stay its own in the cursors); it leaves the
// group's membership, as the members forget a process that died.
func (s *Subscription) CrashForTest() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	_ = s.settleSub.Unsubscribe()
	s.n.local.remove(s)
}

// WaitBackgroundForTest waits for the node's background work (the upgrade
// of earlier groups that applying a registry starts).
func (n *Node) WaitBackgroundForTest() { n.bg.Wait() }

// KillForTest stops the node's NATS server at once, without lame duck
// mode: its peers see its routes close, as when its process is killed.
func (n *Node) KillForTest() { n.srv.Shutdown() }

// ReaderHostForTest returns the node the reader of type t reads from, or "".
func (s *Subscription) ReaderHostForTest(t string) string {
	s.mu.Lock()
	r := s.readers[t]
	s.mu.Unlock()
	if r == nil {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.it == nil {
		return ""
	}
	return r.host
}

// SetParkAfterForTest sets how long the node's readers read nothing
// before they park; before any subscription.
func (n *Node) SetParkAfterForTest(d time.Duration) { n.parkAfter = d }

// ParkedForTest returns the number of readers parked on the node.
func (n *Node) ParkedForTest() int { return n.tails.parked() }

// WokenForTest returns the number of parked readers the node woke because
// a peer came back.
func (n *Node) WokenForTest() int {
	n.tails.mu.Lock()
	defer n.tails.mu.Unlock()
	return n.tails.woken
}

// ForgetLagForTest drops what the lag computation keeps between calls (the
// cursors read, the streams asked), so that the next reads it all again.
func (n *Node) ForgetLagForTest() {
	n.cursorSnap.mu.Lock()
	n.cursorSnap.byKey = nil
	n.cursorSnap.mu.Unlock()
	n.lagCache.mu.Lock()
	n.lagCache.counts.last, n.lagCache.stamps.last = nil, nil
	n.lagCache.mu.Unlock()
}

// PeersKnownForTest returns how many peers the node's peer watch has seen.
func (n *Node) PeersKnownForTest() int { return int(n.peersKnown.Load()) }

// OwnLeaseForTest is how long an owner delivers after its last write.
const OwnLeaseForTest = ownLease
