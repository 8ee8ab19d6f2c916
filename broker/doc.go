// Package broker holds the vocabulary of mevents (events, event types,
// clients, problems and error codes) and the embedded NATS node that stores
// and delivers events: streams, publishing, consumer groups and dead events.
//
// broker hides NATS from the rest of the program: callers see Go types and
// methods that take a context, never a subject or a JetStream API.
//
// Besides JetStream, nodes speak to each other on one core NATS subject
// family, _mevents.members.<client>.<group>: each node's hub of a consumer
// group announces the node's instances of the group there. The format is
// described in group_members.go; the nodes of a cluster must run the same
// version of it.
package broker
