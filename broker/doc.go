// Package broker is the embedded NATS node that stores and delivers events:
// event types and clients (the registry), streams, publishing, consumer
// groups and dead events. The events themselves, their parsing and the
// error codes are package mevents's (the module's root).
//
// broker hides NATS from the rest of the program: callers see Go types and
// methods that take a context, never a subject or a JetStream API.
//
// Consumer groups keep their positions as cursors in the key-value bucket
// mevents_cursors (cursor.go). Besides JetStream, nodes speak to each other
// on two core NATS subject families: _mevents.members.<client>.<group>,
// where each node's hub of a consumer group announces the node's instances
// of the group (group_members.go), and _mevents.settle.<member>, where a
// node asks the instance that made a delivery to settle it
// (consume_settle.go). The nodes of a cluster must run the same version of
// both.
package broker
