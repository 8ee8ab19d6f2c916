package broker

import (
	"context"
	"fmt"
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

// DebugState describes what a subscription holds (for failing tests).
func (s *Subscription) DebugState() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := fmt.Sprintf("pending %d ready %d held %d\n", len(s.pending), len(s.ready), s.held)
	for id, ps := range s.parts {
		st := map[entryState]int{}
		for _, e := range ps.bySeq {
			st[e.state]++
		}
		if len(ps.bySeq) > 0 || ps.safe && ps.pinned {
			out += fmt.Sprintf("  %s safe=%v pinned=%v held=%d handed=%d released=%d\n", id, ps.safe, ps.pinned, st[held], st[handed], st[released])
		}
	}
	return out
}

// MemberIDForTest returns the member id of a spread subscription.
func (s *Subscription) MemberIDForTest() string { return s.members.id }

// HubsForTest returns the number of membership hubs of the node.
func (n *Node) HubsForTest() int { return n.hubs.count() }

// PinForgotten exposes pinForgotten; PriorityGroup is the group it looks at.
func PinForgotten(ctx context.Context, c jetstream.Consumer) bool { return pinForgotten(ctx, c) }

const PriorityGroup = priorityGroup
