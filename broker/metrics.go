package broker

import (
	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector returns a Prometheus collector of the node's JetStream and
// cluster health, read from the embedded server at each scrape:
//
//	mevents_jetstream_ready            1 when Ready() is nil
//	mevents_jetstream_meta_leader      1 when the meta group has a leader
//	mevents_jetstream_is_meta_leader   1 on the meta leader
//	mevents_cluster_peers{state}       peers known, by current/lagging/offline
//	mevents_jetstream_store_bytes      bytes in file storage on this node
//	mevents_jetstream_streams          streams on this node
//	mevents_jetstream_messages         messages on this node
//	mevents_jetstream_api_errors_total failed JetStream API requests
//	mevents_readers_parked             idle readers parked on this node
//
// Register it on the node's own registry, never the global one.
func (n *Node) Collector() prometheus.Collector { return nodeCollector{n} }

type nodeCollector struct{ n *Node }

var (
	descReady     = prometheus.NewDesc("mevents_jetstream_ready", "1 when JetStream is current, a meta leader is known and this node's streams are healthy.", nil, nil)
	descLeader    = prometheus.NewDesc("mevents_jetstream_meta_leader", "1 when the JetStream meta group has a leader.", nil, nil)
	descIsLeader  = prometheus.NewDesc("mevents_jetstream_is_meta_leader", "1 when this node leads the JetStream meta group.", nil, nil)
	descPeers     = prometheus.NewDesc("mevents_cluster_peers", "JetStream peers this node knows, by state (current, lagging, offline).", []string{"state"}, nil)
	descStore     = prometheus.NewDesc("mevents_jetstream_store_bytes", "Bytes of JetStream file storage used on this node.", nil, nil)
	descStreams   = prometheus.NewDesc("mevents_jetstream_streams", "JetStream streams on this node.", nil, nil)
	descMessages  = prometheus.NewDesc("mevents_jetstream_messages", "Messages in the JetStream streams on this node.", nil, nil)
	descAPIErrors = prometheus.NewDesc("mevents_jetstream_api_errors_total", "JetStream API requests that failed on this node.", nil, nil)
	descParked    = prometheus.NewDesc("mevents_readers_parked", "Readers of consumer instances on this node parked while idle: they hold no JetStream consumer until an event of their partitions is published.", nil, nil)
	allNodeDescs  = []*prometheus.Desc{descReady, descLeader, descIsLeader, descPeers, descStore, descStreams, descMessages, descAPIErrors, descParked}
	gaugeOf       = func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
)

func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allNodeDescs {
		ch <- d
	}
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, gaugeOf(n.Ready() == nil))
	ch <- prometheus.MustNewConstMetric(descParked, prometheus.GaugeValue, float64(n.tails.parked()))
	if !n.opened.Load() || n.closed.Load() {
		return
	}
	jsz, err := n.srv.Jsz(&server.JSzOptions{})
	if err != nil {
		return
	}
	leader, isLeader := true, true
	current, lagging, offline := 1.0, 0.0, 0.0 // this node
	if m := jsz.Meta; m != nil && n.cfg.Clustered() {
		leader, isLeader = m.Leader != "", m.Leader == n.cfg.Name
		if !n.srv.JetStreamIsCurrent() {
			current, lagging = 0, 1
		}
		for _, p := range m.Replicas {
			switch {
			case p.Name == n.cfg.Name:
			case p.Offline:
				offline++
			case p.Current:
				current++
			default:
				lagging++
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(descLeader, prometheus.GaugeValue, gaugeOf(leader))
	ch <- prometheus.MustNewConstMetric(descIsLeader, prometheus.GaugeValue, gaugeOf(isLeader))
	ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, current, "current")
	ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, lagging, "lagging")
	ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, offline, "offline")
	ch <- prometheus.MustNewConstMetric(descStore, prometheus.GaugeValue, float64(jsz.Store))
	ch <- prometheus.MustNewConstMetric(descStreams, prometheus.GaugeValue, float64(jsz.Streams))
	ch <- prometheus.MustNewConstMetric(descMessages, prometheus.GaugeValue, float64(jsz.Messages))
	ch <- prometheus.MustNewConstMetric(descAPIErrors, prometheus.CounterValue, float64(jsz.API.Errors))
}
