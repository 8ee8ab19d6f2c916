package broker

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// GroupLag is the backlog of one client's group on one event type, summed
// over the type's partitions, as JetStream's consumers report it.
type GroupLag struct {
	Client string `json:"client"`
	Group  string `json:"group"`
	Type   string `json:"type"`
	// Pending are events not yet delivered to the group.
	Pending uint64 `json:"pending"`
	// AckPending are events delivered and not yet acknowledged.
	AckPending uint64 `json:"ackPending"`
	// Redelivering are events waiting to be delivered again.
	Redelivering uint64 `json:"redelivering"`
	// OldestUnacked is the age (since it was accepted) of the oldest event
	// delivered and not acknowledged; 0 when there is none.
	OldestUnacked Duration `json:"oldestUnacked"`
}

// Duration is a time.Duration that marshals to JSON as "1.5s".
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(strconv.Quote(time.Duration(d).String())), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("duration %s: %w", b, err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Lag reports the backlog of every client's group on every registered
// event type, sorted by client, group and type. It reads the state of the
// groups' consumers (one JetStream API request per 256 consumers of a
// stream, and one per partition with unacknowledged events).
func (n *Node) Lag(ctx context.Context) ([]GroupLag, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	reg := n.Registry()
	if reg == nil || !n.opened.Load() {
		return nil, Errorf(CodeUnavailable, "the node is starting")
	}
	var out []GroupLag
	now := time.Now()
	for _, t := range reg.Types {
		stream, err := n.js.Stream(ctx, StreamName(t.Name))
		if err != nil {
			return nil, &Error{Code: CodeUnavailable, Message: "stream status unavailable", Err: fmt.Errorf("stream %s: %w", t.Name, err)}
		}
		byGroup := map[[2]string]*GroupLag{}
		infos := stream.ListConsumers(ctx)
		for ci := range infos.Info() {
			client, group, _, ok := parseConsumerName(ci.Name)
			if !ok {
				continue
			}
			k := [2]string{client, group}
			l := byGroup[k]
			if l == nil {
				l = &GroupLag{Client: client, Group: group, Type: t.Name}
				byGroup[k] = l
			}
			l.Pending += ci.NumPending
			l.AckPending += uint64(ci.NumAckPending)
			l.Redelivering += uint64(ci.NumRedelivered)
			if ci.NumAckPending > 0 && len(ci.Config.FilterSubjects) > 0 {
				// The oldest unacknowledged event is the first of the
				// partition after the ack floor.
				m, err := stream.GetMsg(ctx, ci.AckFloor.Stream+1, jetstream.WithGetMsgSubject(ci.Config.FilterSubjects[0]))
				if err == nil {
					if age := Duration(now.Sub(m.Time)); age > l.OldestUnacked {
						l.OldestUnacked = age
					}
				}
			}
		}
		if err := infos.Err(); err != nil {
			return nil, &Error{Code: CodeUnavailable, Message: "consumer status unavailable", Err: fmt.Errorf("consumers of %s: %w", t.Name, err)}
		}
		for _, l := range byGroup {
			out = append(out, *l)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Client != b.Client {
			return a.Client < b.Client
		}
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		return a.Type < b.Type
	})
	return out, nil
}

var (
	descPending    = prometheus.NewDesc("mevents_pending_events", "Events not yet delivered to a group.", []string{"client", "group", "type"}, nil)
	descAckPending = prometheus.NewDesc("mevents_ack_pending_events", "Events delivered to a group and not yet acknowledged.", []string{"client", "group", "type"}, nil)
	descOldest     = prometheus.NewDesc("mevents_oldest_unacked_seconds", "Age since acceptance of a group's oldest unacknowledged event.", []string{"client", "group", "type"}, nil)
)

// LagCollector returns a Prometheus collector of Lag, read at each scrape
// (bounded to 5 s). Only the meta leader reports, so that summing over the
// nodes of a cluster counts each group once.
func (n *Node) LagCollector() prometheus.Collector { return lagCollector{n} }

type lagCollector struct{ n *Node }

func (c lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPending
	ch <- descAckPending
	ch <- descOldest
}

func (c lagCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	if !n.opened.Load() || n.closed.Load() || (n.cfg.Clustered() && !n.srv.JetStreamIsLeader()) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	lags, err := n.Lag(ctx)
	if err != nil {
		n.log.Warn("lag metrics", "err", err)
		return
	}
	for _, l := range lags {
		ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(l.Pending), l.Client, l.Group, l.Type)
		ch <- prometheus.MustNewConstMetric(descAckPending, prometheus.GaugeValue, float64(l.AckPending), l.Client, l.Group, l.Type)
		ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, time.Duration(l.OldestUnacked).Seconds(), l.Client, l.Group, l.Type)
	}
}
