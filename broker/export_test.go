package broker

import (
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

// MemberIDForTest returns the member id of a spread subscription.
func (s *Subscription) MemberIDForTest() string { return s.members.id }

// HubsForTest returns the number of membership hubs of the node.
func (n *Node) HubsForTest() int { return n.hubs.count() }
