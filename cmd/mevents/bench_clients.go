package main

import (
	"bytes"
	"context"
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
	latencies latencies
}

func newProducer(c benchConfig, i int, api string) *benchProducer {
	return &benchProducer{c: c, name: "p" + strconv.Itoa(i), url: api + "/v1/events",
		client: httpClient(c.producerTLS), rng: rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))}
}

func (p *benchProducer) run(ctx context.Context, deadline time.Time, budget *atomic.Int64, produced, requests *atomic.Int64, fail func(string)) {
	defer p.client.CloseIdleConnections()
	var interval time.Duration
	if p.c.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(p.c.Batch*p.c.Producers) / float64(p.c.Rate))
	}
	next := time.Now()
	var buf bytes.Buffer
	for seq := 0; ctx.Err() == nil; {
		n := p.c.Batch
		if p.c.Count > 0 {
			left := budget.Add(-int64(n))
			if left < 0 {
				n += int(left)
			}
			if n <= 0 {
				return
			}
		} else if time.Now().After(deadline) {
			return
		}
		if interval > 0 {
			if d := time.Until(next); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return
				}
			}
			next = next.Add(interval)
		}
		buf.Reset()
		ct := "application/cloudevents+json"
		now := time.Now()
		if p.c.Batch > 1 {
			ct = "application/cloudevents-batch+json"
			buf.WriteByte('[')
		}
		for i := 0; i < n; i++ {
			if i > 0 {
				buf.WriteByte(',')
			}
			benchEvent(&buf, p.c.Type, p.name, seq, "k"+strconv.Itoa(p.rng.IntN(p.c.Keys)), p.c.Size, now)
			seq++
		}
		if p.c.Batch > 1 {
			buf.WriteByte(']')
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(buf.Bytes()))
		if err != nil {
			fail(err.Error())
			return
		}
		req.Header.Set("Content-Type", ct)
		resp, err := p.client.Do(req)
		requests.Add(1)
		if err != nil {
			if ctx.Err() == nil {
				fail(err.Error())
			}
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			fail(fmt.Sprintf("%s: %.300s", resp.Status, body))
			continue
		}
		p.latencies = append(p.latencies, time.Since(now))
		produced.Add(int64(n))
	}
}

// benchConsumer is one WebSocket instance of the bench group.
type benchConsumer struct {
	conn      *websocket.Conn
	latencies latencies
	err       error
	closeOnce sync.Once
}

func dialConsumer(ctx context.Context, c benchConfig, api, group string) (*benchConsumer, error) {
	u, err := url.Parse(api)
	if err != nil {
		return nil, err
	}
	u.Scheme = "wss"
	u.Path = "/v1/subscription/ws"
	u.RawQuery = url.Values{"group": {group}, "types": {c.Type}, "start": {"latest"},
		"maxInFlight": {strconv.Itoa(c.MaxInFlight)}}.Encode()
	d := websocket.Dialer{TLSClientConfig: c.consumerTLS.Clone(), Subprotocols: []string{"cloudevents.json"},
		HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.DialContext(ctx, u.String(), nil)
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			return nil, fmt.Errorf("%s: %w: %s", u.Host, err, body)
		}
		return nil, err
	}
	return &benchConsumer{conn: conn}, nil
}

// run reads events until the connection closes. A writer acknowledges
// them as soon as it can: what arrives while it writes goes in its next
// frame, so acks batch by themselves under load and wait for no timer.
func (b *benchConsumer) run(delivered *atomic.Int64) {
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
		var ev struct {
			Op    string `json:"op"`
			AckID string `json:"ackid"`
			Data  struct {
				SentAt int64 `json:"sentAt"`
			} `json:"data"`
		}
		if err := json.Unmarshal(msg, &ev); err != nil || ev.AckID == "" {
			continue // a control reply
		}
		if ev.Data.SentAt > 0 {
			b.latencies = append(b.latencies, now.Sub(time.Unix(0, ev.Data.SentAt)))
		}
		delivered.Add(1)
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

// rawPublishRate publishes the bench's events straight to JetStream, on a
// scratch stream with the replicas of the type's stream, asynchronously
// with deduplication ids as the gateway does, and returns events/s.
func rawPublishRate(ctx context.Context, c benchConfig) (float64, int, error) {
	nc, err := nats.Connect(c.NATS, nats.UserInfo(c.NATSUser, c.NATSPassword), nats.Secure(c.raw.Clone()), nats.Name("mevents bench"))
	if err != nil {
		return 0, 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return 0, 0, err
	}
	typeStream, err := js.Stream(ctx, broker.StreamName(c.Type))
	if err != nil {
		return 0, 0, fmt.Errorf("stream of %s: %w", c.Type, err)
	}
	tc := typeStream.CachedInfo().Config
	id := randomHex(4)
	cfg := jetstream.StreamConfig{Name: "BENCH_RAW_" + id, Subjects: []string{"benchraw." + id + ".*"},
		Storage: jetstream.FileStorage, Replicas: tc.Replicas, MaxAge: time.Hour, Duplicates: tc.Duplicates}
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		return 0, 0, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = js.DeleteStream(dctx, cfg.Name)
	}()

	duration := min(c.Duration, 10*time.Second)
	fmt.Fprintf(c.Progress, "raw JetStream: publishing to scratch stream %s (R%d) for %s\n", cfg.Name, cfg.Replicas, duration)
	// As many publishers as the gateway run has producers, each with a
	// batch in flight at a time, as the gateway publishes a request.
	start := time.Now()
	var acked atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for w := 0; w < c.Producers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf bytes.Buffer
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			producer := "raw" + strconv.Itoa(w)
			for seq := 0; time.Since(start) < duration && ctx.Err() == nil; {
				futures := make([]jetstream.PubAckFuture, 0, c.Batch)
				for i := 0; i < c.Batch; i++ {
					buf.Reset()
					key := "k" + strconv.Itoa(rng.IntN(c.Keys))
					benchEvent(&buf, c.Type, producer, seq, key, c.Size, time.Now())
					msg := &nats.Msg{Subject: "benchraw." + id + "." + strconv.Itoa(broker.Partition(key)),
						Data: bytes.Clone(buf.Bytes()), Header: nats.Header{jetstream.MsgIDHeader: {producer + "-" + strconv.Itoa(seq)}}}
					f, err := js.PublishMsgAsync(msg)
					if err != nil {
						errOnce.Do(func() { firstErr = err })
						return
					}
					futures = append(futures, f)
					seq++
				}
				for _, f := range futures {
					select {
					case <-f.Ok():
						acked.Add(1)
					case err := <-f.Err():
						errOnce.Do(func() { firstErr = err })
						return
					case <-ctx.Done():
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, 0, firstErr
	}
	return float64(acked.Load()) / time.Since(start).Seconds(), cfg.Replicas, nil
}
