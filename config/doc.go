// Package config reads the files operators write and the PKI they issue:
//
//   - node.yaml, the settings of one node (LoadNode, Node);
//   - registry.yaml, the event types and clients shared by every node
//     (LoadRegistry, which returns a *broker.Registry);
//   - the certificates of a deployment: a CA, node certificates and client
//     certificates (IssueCA, IssueNode, IssueClient, and the in-memory CA that
//     tests use).
//
// Both YAML files are decoded strictly: an unknown field, a value of the
// wrong kind or an invalid value is an *Error naming the file, the line, the
// field path (like "clients[2].produce[0]") and the reason, and every problem
// of a file is reported at once. Relative paths in a file are relative to the
// directory of that file; the loaders return them absolute.
//
// Durations are Go durations ("120h", "10m"). Sizes are plain bytes or a
// number with a unit: KiB, MiB, GiB, TiB (powers of 1024) or KB, MB, GB, TB
// (powers of 1000), e.g. "1MiB", "1.5GiB", "1048576".
package config
