package broker

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/mevents/mevents"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// ClusterStatus is what an operator sees of the cluster from one node.
type ClusterStatus struct {
	// Node is the name of the node that answered.
	Node string `json:"node"`
	// Cluster is the cluster's name; empty on a single node.
	Cluster string `json:"cluster,omitempty"`
	// MetaLeader is the node leading the JetStream meta group ("" while
	// there is none). On a single node it is the node itself.
	MetaLeader string `json:"metaLeader"`
	// Nodes are the JetStream peers this node knows, itself included.
	Nodes     []PeerStatus   `json:"nodes"`
	JetStream JetStreamUsage `json:"jetstream"`
	Version   string         `json:"version"`
	Uptime    string         `json:"uptime"`
	// Ready is what the answering node's /readyz says (see Node.Ready);
	// NotReady is the reason when it is false.
	Ready    bool   `json:"ready"`
	NotReady string `json:"notReady,omitempty"`
}

// PeerStatus is one node of the cluster as the answering node sees it.
type PeerStatus struct {
	Name string `json:"name"`
	// Current is true when the peer is seen and caught up with the meta group.
	Current bool `json:"current"`
	Offline bool `json:"offline"`
	Leader  bool `json:"leader"`
	// Lag is how many meta operations the peer is behind.
	Lag uint64 `json:"lag"`
	// LastSeen is how long ago the peer was last heard of (Go duration).
	LastSeen string `json:"lastSeen"`
}

// JetStreamUsage is the JetStream usage of the answering node.
type JetStreamUsage struct {
	Streams   int    `json:"streams"`
	Consumers int    `json:"consumers"`
	Messages  uint64 `json:"messages"`
	Bytes     uint64 `json:"bytes"`
	// Store and Memory are bytes in use; the Max… fields the configured limits.
	Store     uint64 `json:"store"`
	MaxStore  int64  `json:"maxStore"`
	Memory    uint64 `json:"memory"`
	MaxMemory int64  `json:"maxMemory"`
	// APIErrors counts JetStream API requests that failed since the start.
	APIRequests uint64 `json:"apiRequests"`
	APIErrors   uint64 `json:"apiErrors"`
}

// StreamStatus is the state of the stream of one event type.
type StreamStatus struct {
	Type      string `json:"type"`
	Stream    string `json:"stream"`
	Messages  uint64 `json:"messages"`
	Bytes     uint64 `json:"bytes"`
	FirstSeq  uint64 `json:"firstSeq"`
	LastSeq   uint64 `json:"lastSeq"`
	Consumers int    `json:"consumers"`
	// Leader is the node leading the stream's replicas.
	Leader string `json:"leader"`
	// Replicas are the configured count and the followers' state.
	Replicas  int            `json:"replicas"`
	Followers []StreamMember `json:"followers"`
	// Error is set, and the counts are zero, when the stream could not be read.
	Error string `json:"error,omitempty"`
}

// StreamMember is one follower of a stream.
type StreamMember struct {
	Name    string `json:"name"`
	Current bool   `json:"current"`
	Offline bool   `json:"offline"`
	Lag     uint64 `json:"lag"`
}

// ErrNotRunning is returned by the status methods before Open or after Close.
var ErrNotRunning = errors.New("node not running")

// ClusterStatus reports the nodes of the cluster, the meta leader and this
// node's JetStream usage. It does not block on the network.
func (n *Node) ClusterStatus(ctx context.Context) (ClusterStatus, error) {
	if !n.opened.Load() || n.closed.Load() {
		return ClusterStatus{}, &mevents.Error{Code: mevents.CodeUnavailable, Message: "the node is not running", Err: ErrNotRunning}
	}
	jsz, err := n.srv.Jsz(&server.JSzOptions{})
	if err != nil {
		return ClusterStatus{}, fmt.Errorf("jsz: %w", err)
	}
	vz, err := n.srv.Varz(nil)
	if err != nil {
		return ClusterStatus{}, fmt.Errorf("varz: %w", err)
	}
	st := ClusterStatus{
		Node:    n.cfg.Name,
		Version: vz.Version,
		Uptime:  time.Since(vz.Start).Truncate(time.Second).String(),
		JetStream: JetStreamUsage{
			Streams: jsz.Streams, Consumers: jsz.Consumers, Messages: jsz.Messages, Bytes: jsz.Bytes,
			Store: jsz.Store, MaxStore: jsz.Config.MaxStore, Memory: jsz.Memory, MaxMemory: jsz.Config.MaxMemory,
			APIRequests: jsz.API.Total, APIErrors: jsz.API.Errors,
		},
	}
	if err := n.Ready(); err != nil {
		st.NotReady = err.Error()
	} else {
		st.Ready = true
	}
	m := jsz.Meta
	if m == nil || !n.cfg.Clustered() {
		st.MetaLeader = n.cfg.Name
		st.Nodes = []PeerStatus{{Name: n.cfg.Name, Current: true, Leader: true, LastSeen: "0s"}}
		return st, nil
	}
	st.Cluster, st.MetaLeader = m.Name, m.Leader
	seen := map[string]bool{}
	add := func(p PeerStatus) {
		if p.Name != "" && !seen[p.Name] {
			seen[p.Name] = true
			p.Leader = p.Name == m.Leader
			st.Nodes = append(st.Nodes, p)
		}
	}
	if m.Leader != "" {
		add(PeerStatus{Name: m.Leader, Current: true, LastSeen: "0s"})
	}
	for _, p := range m.Replicas {
		add(PeerStatus{Name: p.Name, Current: p.Current, Offline: p.Offline, Lag: p.Lag,
			LastSeen: p.Active.Truncate(time.Millisecond).String()})
	}
	add(PeerStatus{Name: n.cfg.Name, Current: n.srv.JetStreamIsCurrent(), LastSeen: "0s"})
	sort.Slice(st.Nodes, func(i, j int) bool { return st.Nodes[i].Name < st.Nodes[j].Name })
	return st, nil
}

// StreamStatus reports the stream of every event type of the registry in
// force, in registry order. A stream that cannot be read is reported with
// its Error set; the error return is for a node that cannot answer at all.
// Blocks for at most a few seconds per stream (less if ctx says so).
func (n *Node) StreamStatus(ctx context.Context) ([]StreamStatus, error) {
	if !n.opened.Load() || n.closed.Load() {
		return nil, &mevents.Error{Code: mevents.CodeUnavailable, Message: "the node is not running", Err: ErrNotRunning}
	}
	reg := n.Registry()
	if reg == nil {
		return []StreamStatus{}, nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	out := make([]StreamStatus, 0, len(reg.Types))
	for _, t := range reg.Types {
		ss := StreamStatus{Type: t.Name, Stream: StreamName(t.Name), Followers: []StreamMember{}}
		s, err := n.js.Stream(ctx, ss.Stream)
		var info *jetstream.StreamInfo
		if err == nil {
			info, err = s.Info(ctx)
		}
		if err != nil {
			ss.Error = "stream unavailable: " + err.Error()
			out = append(out, ss)
			continue
		}
		ss.Messages, ss.Bytes = info.State.Msgs, info.State.Bytes
		ss.FirstSeq, ss.LastSeq, ss.Consumers = info.State.FirstSeq, info.State.LastSeq, info.State.Consumers
		ss.Replicas = info.Config.Replicas
		if c := info.Cluster; c != nil {
			ss.Leader = c.Leader
			for _, p := range c.Replicas {
				ss.Followers = append(ss.Followers, StreamMember{Name: p.Name, Current: p.Current, Offline: p.Offline, Lag: p.Lag})
			}
		}
		if ss.Leader == "" && !n.cfg.Clustered() {
			ss.Leader = n.cfg.Name
		}
		out = append(out, ss)
	}
	return out, nil
}
