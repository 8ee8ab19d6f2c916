package broker

import "github.com/nats-io/nats.go/jetstream"

// JetStream exposes the node's JetStream context to tests, which inspect
// streams directly.
func (n *Node) JetStream() jetstream.JetStream { return n.js }
