// Package mevents is the event model of mevents: the CloudEvent a producer
// sends (Event, Attr), its parsing from the JSON format, single and batch
// (ParseEvent, ParseBatch) and from binary-mode attributes (NewEvent), the
// CloudEvents rules those apply, the problems and error codes they report
// (Problem, Error, Code) and the partitioning of keys (Partition). It knows
// neither NATS nor HTTP: package broker stores and delivers these events,
// package gateway speaks HTTP about them.
//
// It also holds the documents built into the binary: the API changelog
// (CHANGELOG.md), which the gateway serves at /changelog.
package mevents
