// Package broker holds the vocabulary of mevents (events, event types,
// clients, problems and error codes) and the embedded NATS node that stores
// and delivers events: streams, publishing, consumer groups and dead events.
//
// broker hides NATS from the rest of the program: callers see Go types and
// methods that take a context, never a subject or a JetStream API.
package broker
