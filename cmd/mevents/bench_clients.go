package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// latencies are samples, sorted before q is asked.
type latencies []time.Duration

func (l latencies) sort() { slices.Sort(l) }

// q returns the q-quantile (0 < q ≤ 1), or 0 without samples.
func (l latencies) q(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	i := int(q*float64(len(l))+0.5) - 1
	return l[max(0, min(i, len(l)-1))].Round(10 * time.Microsecond)
}

// benchEvent writes one structured event of about size bytes that the
// bench schema accepts; sentAt carries the send time for latency.
func benchEvent(buf *bytes.Buffer, typ, producer string, seq int, key string, size int, sentAt time.Time) {
	start := buf.Len()
	fmt.Fprintf(buf, `{"specversion":"1.0","type":%q,"source":"/mevents/bench/%s","id":"%s-%d-%d","partitionkey":%q,"data":{"seq":%d,"sentAt":%d,"producer":%q,"key":%q,"status":"STARTED","amount":1250.5,"currency":"MDL","createdAt":%q,"note":"mevents bench","padding":"`,
		typ, producer, producer, sentAt.UnixNano(), seq, key, seq, sentAt.UnixNano(), producer, key, sentAt.UTC().Format(time.RFC3339))
	if pad := size - (buf.Len() - start) - 3; pad > 0 {
		buf.WriteString(strings.Repeat("x", pad))
	}
	buf.WriteString(`"}}`)
}

// benchProducer posts batches over its own HTTP/2 connection.
type benchProducer struct {
	c         benchConfig
	name, url string
	client    *http.Client
	rng       *rand.Rand
	mu        sync.Mutex
	latencies latencies
}

func newProducer(c benchConfig, i int, api string) *benchProducer {
	return &benchProducer{c: c, name: "p" + strconv.Itoa(i), url: api + "/v1/events",
		client: httpClient(c.producerTLS), rng: rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))}
}

// run posts batches until the run's window ends (see pace).
func (p *benchProducer) run(ctx context.Context, r *benchRun) {
	defer p.client.CloseIdleConnections()
	c := r.c
	seq := 0
	pace(ctx, c, func(now time.Time) (func(), bool) {
		measured := r.measures(now)
		n := c.Batch
		if measured && c.Count > 0 {
			left := r.budget.Add(-int64(n))
			if left < 0 {
				n += int(left)
			}
		}
		if n <= 0 || measured && c.Count == 0 && now.After(r.until) {
			return nil, false
		}
		body, ct := p.batch(&seq, n, now)
		return func() { p.send(ctx, r, body, ct, n, now, measured) }, true
	})
}

// pace is one producer's request loop: without a rate, one request at a
// time, as fast as they are answered; with c.Rate, each request on its
// schedule (the rate is shared by c.Producers) with up to c.InFlight in
// flight, so a slow answer does not delay the next request (an open loop:
// what a rate asks for is what is offered). next is called at each
// request's time and returns the request, or false to stop; pace returns
// when every request it started has returned.
func pace(ctx context.Context, c benchConfig, next func(now time.Time) (func(), bool)) {
	var interval time.Duration
	inFlight := 1
	if c.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(c.Batch*c.Producers) / float64(c.Rate))
		inFlight = max(1, c.InFlight)
	}
	slots := make(chan struct{}, inFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	due := time.Now()
	for ctx.Err() == nil {
		if interval > 0 {
			if d := time.Until(due); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return
				}
			}
			due = due.Add(interval)
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		request, ok := next(time.Now())
		if !ok {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			request()
		}()
	}
}

// batch returns the body of a request of n events sent at now.
func (p *benchProducer) batch(seq *int, n int, now time.Time) ([]byte, string) {
	var buf bytes.Buffer
	ct := "application/cloudevents+json"
	if p.c.Batch > 1 {
		ct = "application/cloudevents-batch+json"
		buf.WriteByte('[')
	}
	for i := 0; i < n; i++ {
		if i > 0 {
			buf.WriteByte(',')
		}
		benchEvent(&buf, p.c.Type, p.name, *seq, "k"+strconv.Itoa(p.rng.IntN(p.c.Keys)), p.c.Size, now)
		*seq++
	}
	if p.c.Batch > 1 {
		buf.WriteByte(']')
	}
	return buf.Bytes(), ct
}

// send posts one request and records it: in the figures when it was sent
// in the measurement window, as warm-up otherwise. Errors count either way.
func (p *benchProducer) send(ctx context.Context, r *benchRun, body []byte, ct string, n int, sent time.Time, measured bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		r.fail(err.Error())
		return
	}
	req.Header.Set("Content-Type", ct)
	resp, err := p.client.Do(req)
	if measured {
		r.requests.Add(1)
	}
	if err != nil {
		if ctx.Err() == nil {
			r.fail(err.Error())
		}
		return
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		r.fail(fmt.Sprintf("%s: %.300s", resp.Status, b))
		return
	}
	if !measured {
		r.warmProduced.Add(int64(n))
		return
	}
	p.mu.Lock()
	p.latencies = append(p.latencies, time.Since(sent))
	p.mu.Unlock()
	r.produced.Add(int64(n))
}

// benchDelivery is what the bench reads of a delivered event.
type benchDelivery struct {
	AckID string `json:"ackid"`
	Data  struct {
		SentAt int64 `json:"sentAt"`
	} `json:"data"`
}

// benchConsumer is one WebSocket instance of the bench group.
type benchConsumer struct {
	conn      *websocket.Conn
	latencies latencies
	err       error
	closeOnce sync.Once
}

func dialConsumer(ctx context.Context, c benchConfig, api, group string) (*benchConsumer, error) {
	conn, err := dialSubscription(ctx, c.consumerTLS, api, url.Values{"group": {group}, "types": {c.Type}, "start": {"latest"},
		"maxInFlight": {strconv.Itoa(c.MaxInFlight)}}, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return &benchConsumer{conn: conn}, nil
}

// dialSubscription opens a WebSocket subscription at the API base URL api
// with the query q; it returns once the server has upgraded, which it does
// after subscribing.
func dialSubscription(ctx context.Context, t *tls.Config, api string, q url.Values, timeout time.Duration) (*websocket.Conn, error) {
	u, err := url.Parse(api)
	if err != nil {
		return nil, err
	}
	u.Scheme, u.Path, u.RawQuery = "wss", "/v1/subscription/ws", q.Encode()
	d := websocket.Dialer{TLSClientConfig: t.Clone(), Subprotocols: []string{"cloudevents.json"}, HandshakeTimeout: timeout}
	conn, resp, err := d.DialContext(ctx, u.String(), nil)
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			return nil, fmt.Errorf("%s: %w: %s", u.Host, err, body)
		}
		return nil, err
	}
	return conn, nil
}

// run reads events until the connection closes. A writer acknowledges
// them as soon as it can: what arrives while it writes goes in its next
// frame, so acks batch by themselves under load and wait for no timer.
func (b *benchConsumer) run(r *benchRun) {
	from := r.from.UnixNano()
	var (
		mu      sync.Mutex
		pending []string
		kick    = make(chan struct{}, 1)
		done    = make(chan struct{})
	)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-kick:
			}
			mu.Lock()
			ids := pending
			pending = nil
			mu.Unlock()
			if len(ids) == 0 {
				continue
			}
			frame, _ := json.Marshal(map[string]any{"op": "ack", "ackIds": ids})
			_ = b.conn.WriteMessage(websocket.TextMessage, frame)
		}
	}()
	defer func() { close(done); wg.Wait() }()
	for {
		_, msg, err := b.conn.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure) && !strings.Contains(err.Error(), "use of closed") {
				b.err = err
			}
			return
		}
		now := time.Now()
		var ev benchDelivery
		if err := json.Unmarshal(msg, &ev); err != nil || ev.AckID == "" {
			continue // a control reply
		}
		if ev.Data.SentAt >= from {
			b.latencies = append(b.latencies, now.Sub(time.Unix(0, ev.Data.SentAt)))
			r.delivered.Add(1)
		} else {
			r.warmDelivered.Add(1)
		}
		mu.Lock()
		pending = append(pending, ev.AckID)
		mu.Unlock()
		select {
		case kick <- struct{}{}:
		default:
		}
	}
}

func (b *benchConsumer) close() {
	b.closeOnce.Do(func() {
		_ = b.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bench done"), time.Now().Add(time.Second))
		_ = b.conn.Close()
	})
}

// operatorJetStream connects to the operator port with the operator's
// credentials; the caller closes the connection.
func (c benchConfig) operatorJetStream(opts ...jetstream.JetStreamOpt) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(c.NATS, nats.UserInfo(c.NATSUser, c.NATSPassword), nats.Secure(c.raw.Clone()), nats.Name("mevents bench"))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc, opts...)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// deleteGroups deletes the groups whose names match, through the operator
// port: a group is its cursors (one key of the cursor bucket per type and
// partition), so it purges those. It returns how many it purged. An
// instance that has not yet seen its WebSocket close may write a cursor
// again, so what is back a moment later is purged again.
func deleteGroups(ctx context.Context, c benchConfig, match func(group string) bool) (int, error) {
	nc, js, err := c.operatorJetStream()
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, broker.CursorBucket)
	if err != nil {
		return 0, fmt.Errorf("cursor bucket: %w", err)
	}
	purged := 0
	for round := range 2 {
		if round > 0 {
			if err := sleep(ctx, 3*time.Second); err != nil {
				return purged, err
			}
		}
		keys, err := kv.ListKeys(ctx)
		if err != nil {
			return purged, err
		}
		for key := range keys.Keys() {
			if _, g, ok := broker.CursorGroup(key); ok && match(g) {
				if err := kv.Purge(ctx, key); err != nil {
					return purged, err
				}
				purged++
			}
		}
	}
	return purged, nil
}

// rawReport is what JetStream itself does with the bench's events.
type rawReport struct {
	Replicas int
	// Publish is events/s published alone.
	Publish float64
	// Published and Consumed are events/s while publishing and consuming
	// at once (with consumers; 0 otherwise).
	Published, Consumed float64
	// PublishLatency is each batch's, from its publishing to its last
	// acknowledgement, published alone; PublishedLatency while consumed
	// too; EndToEnd each event's, from its publishing to its receipt.
	PublishLatency, PublishedLatency, EndToEnd latencies
	// PublishUsage and PublishedUsage are the nodes' CPU in each phase;
	// nil when not measured.
	PublishUsage, PublishedUsage *usageWindow
}

// rawRates publishes the bench's events straight to JetStream, on a
// scratch stream with the replicas and deduplication window of the type's
// stream, asynchronously with deduplication ids as the gateway does, paced
// like the bench's producers (as fast as acknowledged, or at the rate):
// first alone, then, with consumers, while the same number of consumers
// take them from durable consumers like a group's (one per partition, the
// stream's replicas, explicit acks, 128 unacknowledged at most) and
// acknowledge each. The stream is deleted afterwards.
func rawRates(ctx context.Context, c benchConfig) (*rawReport, error) {
	nc, js, err := c.operatorJetStream(jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	typeStream, err := js.Stream(ctx, broker.StreamName(c.Type))
	if err != nil {
		return nil, fmt.Errorf("stream of %s: %w", c.Type, err)
	}
	tc := typeStream.CachedInfo().Config
	id := randomHex(4)
	cfg := jetstream.StreamConfig{Name: "BENCH_RAW_" + id, Subjects: []string{"benchraw." + id + ".*"},
		Storage: jetstream.FileStorage, Replicas: tc.Replicas, MaxAge: time.Hour, Duplicates: tc.Duplicates}
	stream, err := js.CreateStream(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = js.DeleteStream(dctx, cfg.Name)
	}()
	rep := &rawReport{Replicas: cfg.Replicas}
	duration := min(c.Duration, 10*time.Second)
	fmt.Fprintf(c.Progress, "raw JetStream: publishing to scratch stream %s (R%d) for %s\n", cfg.Name, cfg.Replicas, duration)
	meter := newUsageMeter(ctx, c.Ops)
	published, lat, err := rawPublish(ctx, js, c, id, "a", duration)
	if err != nil {
		return nil, err
	}
	rep.PublishUsage = meter.end(ctx, published, c.Progress)
	rep.Publish, rep.PublishLatency = float64(published)/duration.Seconds(), lat
	rep.PublishLatency.sort()
	if c.Consumers == 0 {
		return rep, nil
	}

	fmt.Fprintf(c.Progress, "raw JetStream: publishing and consuming with %d consumers for %s\n", c.Consumers, duration)
	var (
		consumed atomic.Int64
		mu       sync.Mutex
		e2e      latencies
		ccs      []jetstream.ConsumeContext
	)
	defer func() {
		for _, cc := range ccs {
			cc.Stop()
		}
	}()
	for p := 0; p < mevents.Partitions; p++ {
		cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "raw" + strconv.Itoa(p),
			FilterSubject: "benchraw." + id + "." + strconv.Itoa(p), DeliverPolicy: jetstream.DeliverNewPolicy,
			AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 128, Replicas: cfg.Replicas, AckWait: 30 * time.Second})
		if err != nil {
			return nil, err
		}
		cc, err := cons.Consume(func(m jetstream.Msg) {
			now := time.Now()
			var d benchDelivery
			_ = json.Unmarshal(m.Data(), &d)
			if m.Ack() == nil {
				consumed.Add(1)
				mu.Lock()
				e2e = append(e2e, now.Sub(time.Unix(0, d.Data.SentAt)))
				mu.Unlock()
			}
		}, jetstream.PullMaxMessages(128))
		if err != nil {
			return nil, err
		}
		ccs = append(ccs, cc)
	}
	start := time.Now()
	meter = newUsageMeter(ctx, c.Ops)
	published, lat, err = rawPublish(ctx, js, c, id, "b", duration)
	if err != nil {
		return nil, err
	}
	rep.PublishedUsage = meter.end(ctx, published, c.Progress)
	rep.Published, rep.PublishedLatency = float64(published)/duration.Seconds(), lat
	rep.PublishedLatency.sort()
	last, lastChange := consumed.Load(), time.Now()
	for consumed.Load() < published && time.Since(lastChange) < 5*time.Second && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
		if n := consumed.Load(); n != last {
			last, lastChange = n, time.Now()
		}
	}
	rep.Consumed = float64(consumed.Load()) / time.Since(start).Seconds()
	for _, cc := range ccs {
		cc.Stop()
	}
	ccs = nil
	mu.Lock()
	rep.EndToEnd = slices.Clone(e2e)
	mu.Unlock()
	rep.EndToEnd.sort()
	return rep, nil
}

// rawPublish publishes for d with as many publishers as the gateway run
// has producers, each paced like a producer (see pace), a batch published
// asynchronously and waited for as the gateway publishes a request. It
// returns the events acknowledged and each batch's latency.
func rawPublish(ctx context.Context, js jetstream.JetStream, c benchConfig, id, phase string, d time.Duration) (int64, latencies, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	var (
		acked    atomic.Int64
		mu       sync.Mutex
		lat      latencies
		firstErr error
		wg       sync.WaitGroup
	)
	for w := 0; w < c.Producers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			producer := "raw" + phase + strconv.Itoa(w)
			var buf bytes.Buffer
			seq := 0
			pace(ctx, c, func(now time.Time) (func(), bool) {
				if now.Sub(start) >= d {
					return nil, false
				}
				msgs := make([]*nats.Msg, c.Batch)
				for i := range msgs {
					buf.Reset()
					key := "k" + strconv.Itoa(rng.IntN(c.Keys))
					benchEvent(&buf, c.Type, producer, seq, key, c.Size, now)
					msgs[i] = &nats.Msg{Subject: "benchraw." + id + "." + strconv.Itoa(mevents.Partition(key)),
						Data: bytes.Clone(buf.Bytes()), Header: nats.Header{jetstream.MsgIDHeader: {producer + "-" + strconv.Itoa(seq)}}}
					seq++
				}
				return func() {
					n, err := publishBatch(ctx, js, msgs)
					acked.Add(n)
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						if firstErr == nil {
							firstErr = err
						}
						cancel()
						return
					}
					if n == int64(len(msgs)) {
						lat = append(lat, time.Since(now))
					}
				}, true
			})
		}()
	}
	wg.Wait()
	return acked.Load(), lat, firstErr
}

// publishBatch publishes msgs asynchronously and waits for their
// acknowledgements; it returns how many were acknowledged, and the first
// error (not ctx's).
func publishBatch(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg) (int64, error) {
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			return 0, err
		}
		futures = append(futures, f)
	}
	var n int64
	for _, f := range futures {
		select {
		case <-f.Ok():
			n++
		case err := <-f.Err():
			return n, err
		case <-ctx.Done():
			return n, nil
		}
	}
	return n, nil
}
