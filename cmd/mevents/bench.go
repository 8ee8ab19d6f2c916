package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
)

// benchConfig is what `mevents bench` measures and against what.
type benchConfig struct {
	APIs                          []string // base URLs, https://host:port
	CA, Cert, Key                 string   // the CA and the producer's certificate
	ConsumerCert, ConsumerKey     string
	Type                          string
	Group                         string // the consumers' group; "": a new one per run
	Producers, Consumers          int
	Batch, Size, Keys             int
	Duration                      time.Duration
	Count                         int // events to produce; 0: until Duration
	Rate                          int // events/s over all producers; 0: as fast as possible
	InFlight                      int // requests in flight per producer with a Rate
	Warmup                        time.Duration
	MaxInFlight                   int
	NATS, NATSUser, NATSPassword  string   // operator port, for the raw JetStream comparison
	Ops                           []string // the nodes' ops listeners, for their CPU and memory
	Progress                      io.Writer
	producerTLS, consumerTLS, raw *tls.Config
}

// benchUsage heads the help of `mevents bench`, before its flags.
const benchUsage = `Usage:
  mevents bench [flags]
      producers over HTTP/2 and WebSocket consumers in one group: throughput, latencies,
      with --nats JetStream itself for comparison, with --ops the nodes' CPU per event (and the bench's own)
  mevents bench --idle-groups N [--types a,b] [--joins 8] [--window 1m] [--settle 45s] [--scrape 15s] [--ops URLs] [flags]
      what idle consumer groups cost: the nodes' CPU and resident memory with nothing
      connected (baseline), then N new groups idle-<run>-<i>, a WebSocket each (round robin
      over --api, at most --joins dialing at once; their join times), connected and idle,
      then after they disconnect; each over --window, after --settle; every node's /metrics
      scraped every --scrape throughout; with --nats the groups are deleted afterwards

Flags:
`

// runBench parses the flags of `mevents bench` and runs it.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c benchConfig
	apis := fs.String("api", "https://localhost:8443", "comma-separated API base URLs; producers and consumers are spread over them")
	fs.StringVar(&c.CA, "ca", ".mevents-dev/pki/ca.pem", "CA certificate of the API and the NATS port")
	fs.StringVar(&c.Cert, "cert", ".mevents-dev/pki/demo-producer.pem", "producer's client certificate")
	fs.StringVar(&c.Key, "key", ".mevents-dev/pki/demo-producer-key.pem", "producer's client key")
	fs.StringVar(&c.ConsumerCert, "consumer-cert", ".mevents-dev/pki/demo-consumer.pem", "consumer's client certificate")
	fs.StringVar(&c.ConsumerKey, "consumer-key", ".mevents-dev/pki/demo-consumer-key.pem", "consumer's client key")
	fs.StringVar(&c.Type, "type", "org.mevents.bench", "event type to produce (its schema must accept the bench event, see devdata/schemas/bench.schema.json)")
	fs.IntVar(&c.Producers, "producers", 4, "concurrent producers (HTTP/2 connections)")
	fs.IntVar(&c.Consumers, "consumers", 3, "WebSocket consumers in one group (a new one unless --group; 0: produce only)")
	fs.StringVar(&c.Group, "group", "", "the consumers' group: empty, a new one each run (deleted afterwards with operator credentials); a name, that group from run to run, kept (so that runs without operator credentials do not each leave a group behind)")
	fs.IntVar(&c.Batch, "batch", 100, "events per request")
	fs.IntVar(&c.Size, "size", 1024, "approximate size of one event in bytes")
	fs.IntVar(&c.Keys, "keys", 1000, "distinct partition keys")
	fs.DurationVar(&c.Duration, "duration", 30*time.Second, "how long to produce")
	fs.IntVar(&c.Count, "count", 0, "events to produce (instead of --duration)")
	fs.IntVar(&c.Rate, "rate", 0, "target events/s over all producers (0: as fast as possible, one request at a time per producer)")
	fs.IntVar(&c.InFlight, "in-flight", 16, "with --rate: requests each producer may have in flight, so slow answers do not lower the rate offered")
	fs.DurationVar(&c.Warmup, "warmup", 5*time.Second, "run this long before measuring (connections, the group's first rebalance); its events are left out of the figures")
	fs.IntVar(&c.MaxInFlight, "max-in-flight", 1000, "maxInFlight of each WebSocket consumer")
	fs.StringVar(&c.NATS, "nats", "", "operator NATS URL (tls://host:4222) to measure JetStream itself too, with the same events and pace: publishing, and with consumers publishing and consuming at once (with --rate: their latencies)")
	fs.StringVar(&c.NATSUser, "nats-user", "ops", "operator user")
	fs.StringVar(&c.NATSPassword, "nats-password", "", "operator password")
	ops := fs.String("ops", "", "comma-separated base URLs of every node's ops listener (http://host:9090), to report the nodes' CPU per event and resident memory")
	summary := fs.String("summary", "", "also append the run's figures as a row of a markdown table to this file (with the table's header when the file is new or its last table is of the other mode)")
	idle := idleFlags(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	c.APIs, c.Ops = baseURLs(*apis), baseURLs(*ops)
	c.Progress = stderr
	if ic := idle(); ic.Groups != 0 {
		return runIdle(ctx, c, ic, *summary, stdout)
	}
	report, err := bench(ctx, c)
	if err != nil {
		return err
	}
	report.print(stdout)
	if *summary != "" {
		if err := appendSummary(*summary, report); err != nil {
			return fmt.Errorf("--summary: %w", err)
		}
	}
	return nil
}

// baseURLs splits a comma-separated list of base URLs.
func baseURLs(list string) []string {
	var out []string
	for _, a := range strings.Split(list, ",") {
		if a = strings.TrimRight(strings.TrimSpace(a), "/"); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// benchReport holds the figures of one run.
type benchReport struct {
	Config                     benchConfig
	Produced, Delivered        int64
	Requests, Errors           int64
	FirstErrors                []string
	ProduceTime, DeliverTime   time.Duration
	EndToEnd, Request          latencies
	Raw                        *rawReport   // nil when not measured
	Usage                      *usageWindow // the nodes' CPU in the window; nil when not measured
	Group                      string       // the consumers' group
	ProduceRate, DeliveredRate float64
}

func (r *benchReport) print(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "scenario   %d producers (HTTP/2), batch %d, ~%d B events, %d keys, %d WebSocket consumers, type %s\n",
		c.Producers, c.Batch, c.Size, c.Keys, c.Consumers, c.Type)
	fmt.Fprintf(w, "produced   %d events in %s: %.0f events/s (%d requests, %d errors)\n",
		r.Produced, r.ProduceTime.Round(time.Millisecond), r.ProduceRate, r.Requests, r.Errors)
	for _, e := range r.FirstErrors {
		fmt.Fprintf(w, "  error: %s\n", e)
	}
	fmt.Fprintf(w, "request    latency p50 %s  p90 %s  p99 %s\n", r.Request.q(0.5), r.Request.q(0.9), r.Request.q(0.99))
	if c.Consumers > 0 {
		fmt.Fprintf(w, "delivered  %d events in %s: %.0f events/s\n", r.Delivered, r.DeliverTime.Round(time.Millisecond), r.DeliveredRate)
		fmt.Fprintf(w, "end-to-end latency p50 %s  p90 %s  p99 %s\n", r.EndToEnd.q(0.5), r.EndToEnd.q(0.9), r.EndToEnd.q(0.99))
	}
	raw := r.Raw
	switch {
	case raw == nil:
	case c.Rate > 0:
		// At a rate the rates are the same; the latencies compare.
		fmt.Fprintf(w, "raw        JetStream at the same rate, publishing alone (R%d): %.0f events/s, request latency p50 %s  p90 %s  p99 %s\n",
			raw.Replicas, raw.Publish, raw.PublishLatency.q(0.5), raw.PublishLatency.q(0.9), raw.PublishLatency.q(0.99))
		if raw.Consumed > 0 {
			fmt.Fprintf(w, "raw        JetStream at the same rate, publishing and consuming (%d partition consumers, acks): %.0f events/s, request latency p50 %s  p90 %s  p99 %s, end-to-end latency p50 %s  p90 %s  p99 %s\n",
				mevents.Partitions, raw.Published, raw.PublishedLatency.q(0.5), raw.PublishedLatency.q(0.9), raw.PublishedLatency.q(0.99),
				raw.EndToEnd.q(0.5), raw.EndToEnd.q(0.9), raw.EndToEnd.q(0.99))
		}
	default:
		fmt.Fprintf(w, "raw        JetStream async publish of the same events (R%d): %.0f events/s; gateway/raw = %.2f\n",
			raw.Replicas, raw.Publish, r.ProduceRate/raw.Publish)
		if raw.Consumed > 0 {
			fmt.Fprintf(w, "raw        JetStream publishing and consuming (%d partition consumers, acks) at once: %.0f events/s published, %.0f consumed; gateway/raw end to end = %.2f\n",
				mevents.Partitions, raw.Published, raw.Consumed, min(r.ProduceRate, r.DeliveredRate)/min(raw.Published, raw.Consumed))
		}
	}
	if u := r.Usage; u != nil {
		mib := make([]string, len(u.RSS))
		for i, b := range u.RSS {
			mib[i] = strconv.Itoa(int(b / (1 << 20)))
		}
		self := ""
		if u.SelfKnown {
			self = fmt.Sprintf("; the bench process %.2f cores", u.selfCores())
		}
		fmt.Fprintf(w, "nodes      CPU %.2f cores, %s per event produced; resident memory %s MiB%s\n",
			u.cores(), u.perEvent(), strings.Join(mib, ", "), self)
	}
	if raw != nil && (raw.PublishUsage != nil || raw.PublishedUsage != nil) {
		var parts []string
		if u := raw.PublishUsage; u != nil {
			parts = append(parts, fmt.Sprintf("publishing alone %.2f cores, %s per event", u.cores(), u.perEvent()))
		}
		if u := raw.PublishedUsage; u != nil {
			parts = append(parts, fmt.Sprintf("publishing and consuming %.2f cores, %s per event", u.cores(), u.perEvent()))
		}
		fmt.Fprintf(w, "raw nodes  CPU %s\n", strings.Join(parts, "; "))
	}
}

// benchRun is the state of one run that producers and consumers share.
// Its window starts at from, after the warm-up (connections, the group's
// consumers and the first rebalance), and, without --count, producing
// stops at until. Only events sent in the window count in the figures.
type benchRun struct {
	c                        benchConfig
	from, until              time.Time
	budget                   atomic.Int64 // events left to produce in the window, with --count
	produced, requests, errs atomic.Int64
	delivered                atomic.Int64
	warmProduced             atomic.Int64 // events of the warm-up, left out
	warmDelivered            atomic.Int64

	mu          sync.Mutex
	firstErrors []string
}

func (r *benchRun) measures(t time.Time) bool { return !t.Before(r.from) }

// fail records an error; the first few are reported.
func (r *benchRun) fail(msg string) {
	r.errs.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.firstErrors) < 5 {
		r.firstErrors = append(r.firstErrors, msg)
	}
}

// bench runs one measurement: optionally the raw JetStream rates, then
// consumers in a new group and producers at the same time.
func bench(ctx context.Context, c benchConfig) (*benchReport, error) {
	if err := c.load(); err != nil {
		return nil, err
	}
	rep := &benchReport{Config: c, Group: c.Group}
	if rep.Group == "" {
		rep.Group = "bench-" + randomHex(4)
	}
	if len(c.Ops) > 0 {
		if _, err := scrapeUsage(ctx, c.Ops); err != nil {
			return nil, fmt.Errorf("--ops: %w", err)
		}
	}
	if c.NATS != "" {
		raw, err := rawRates(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("raw JetStream measurement: %w", err)
		}
		rep.Raw = raw
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var consumers []*benchConsumer
	group := rep.Group
	for i := 0; i < c.Consumers; i++ {
		bc, err := dialConsumer(ctx, c, c.APIs[i%len(c.APIs)], group)
		if err != nil {
			for _, b := range consumers {
				b.close()
			}
			return nil, fmt.Errorf("consumer %d: %w", i, err)
		}
		consumers = append(consumers, bc)
	}
	if c.Warmup > 0 {
		fmt.Fprintf(c.Progress, "warming up for %s: its events are left out of the figures\n", c.Warmup)
	}
	start := time.Now()
	r := &benchRun{c: c, from: start.Add(c.Warmup)}
	r.until = r.from.Add(c.Duration)
	r.budget.Store(int64(c.Count))
	var cwg sync.WaitGroup
	for _, bc := range consumers {
		cwg.Add(1)
		go func() { defer cwg.Done(); bc.run(r) }()
	}
	defer func() {
		for _, bc := range consumers {
			bc.close()
		}
		cwg.Wait()
	}()

	producers := make([]*benchProducer, c.Producers)
	var pwg sync.WaitGroup
	for i := range producers {
		producers[i] = newProducer(c, i, c.APIs[i%len(c.APIs)])
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			producers[i].run(ctx, r)
		}()
	}
	stopProgress := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var lastP, lastD int64
		for {
			select {
			case <-stopProgress:
				return
			case now := <-t.C:
				p := r.produced.Load() + r.warmProduced.Load()
				d := r.delivered.Load() + r.warmDelivered.Load()
				phase := ""
				if !r.measures(now) {
					phase = "  (warm-up)"
				}
				fmt.Fprintf(c.Progress, "%5.0fs  produced %9d (%7d/s)  delivered %9d (%7d/s)  errors %d%s\n",
					now.Sub(start).Seconds(), p, p-lastP, d, d-lastD, r.errs.Load(), phase)
				lastP, lastD = p, d
			}
		}
	}()
	// The nodes' CPU is measured over the window, from its start to the
	// end of producing.
	meter := make(chan *usageMeter, 1)
	if len(c.Ops) == 0 {
		meter <- nil
	} else {
		go func() {
			select {
			case <-time.After(time.Until(r.from)):
			case <-ctx.Done():
			}
			meter <- newUsageMeter(ctx, c.Ops)
		}()
	}
	pwg.Wait()
	rep.ProduceTime = time.Since(r.from)
	rep.Produced, rep.Requests, rep.Errors = r.produced.Load(), r.requests.Load(), r.errs.Load()
	rep.Usage = (<-meter).end(ctx, rep.Produced, c.Progress)
	// Wait for the consumers to catch up, as long as they make progress.
	if c.Consumers > 0 {
		last, lastChange := r.delivered.Load(), time.Now()
		for r.delivered.Load() < rep.Produced && time.Since(lastChange) < 10*time.Second && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
			if d := r.delivered.Load(); d != last {
				last, lastChange = d, time.Now()
			}
		}
	}
	rep.DeliverTime = time.Since(r.from)
	close(stopProgress)
	<-progressDone
	rep.Delivered = r.delivered.Load()
	r.mu.Lock()
	rep.FirstErrors = r.firstErrors
	r.mu.Unlock()
	for _, p := range producers {
		rep.Request = append(rep.Request, p.latencies...)
	}
	for _, bc := range consumers {
		bc.close()
	}
	cwg.Wait()
	for _, bc := range consumers {
		rep.EndToEnd = append(rep.EndToEnd, bc.latencies...)
		if bc.err != nil && rep.Delivered < rep.Produced {
			rep.FirstErrors = append(rep.FirstErrors, "consumer: "+bc.err.Error())
		}
	}
	consumers = nil
	if c.NATS != "" && c.Consumers > 0 && c.Group == "" {
		// The group's cursors would otherwise stay in the cursor bucket.
		// A group named with --group is for the next run.
		if _, err := deleteGroups(ctx, c, func(g string) bool { return g == group }); err != nil {
			fmt.Fprintf(c.Progress, "bench group %s not deleted: %v\n", group, err)
		}
	}
	rep.Request.sort()
	rep.EndToEnd.sort()
	rep.ProduceRate = float64(rep.Produced) / rep.ProduceTime.Seconds()
	rep.DeliveredRate = float64(rep.Delivered) / rep.DeliverTime.Seconds()
	return rep, nil
}

// load reads the TLS files.
func (c *benchConfig) load() error {
	if len(c.APIs) == 0 {
		return errors.New("bench: no --api given")
	}
	if c.Producers < 1 || c.Batch < 1 || c.Keys < 1 || c.Size < 1 {
		return errors.New("bench: --producers, --batch, --keys and --size must be positive")
	}
	if c.Group != "" {
		if err := broker.ValidGroup(c.Group); err != nil {
			return fmt.Errorf("bench: --group: %w", err)
		}
	}
	var err error
	if c.producerTLS, err = clientTLSFiles(c.CA, c.Cert, c.Key); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	if c.Consumers > 0 {
		if c.consumerTLS, err = clientTLSFiles(c.CA, c.ConsumerCert, c.ConsumerKey); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	c.raw = &tls.Config{RootCAs: c.producerTLS.RootCAs, MinVersion: tls.VersionTLS12}
	return nil
}

// clientTLSFiles is the TLS configuration of an API client: the CA that
// signs the server's certificate, and the client's certificate and key.
func clientTLSFiles(caFile, certFile, keyFile string) (*tls.Config, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	kp, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// httpClient returns an HTTP/2 client of its own connection.
func httpClient(t *tls.Config) *http.Client {
	return &http.Client{
		Transport: &http.Transport{TLSClientConfig: t.Clone(), ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 4},
		Timeout:   30 * time.Second,
	}
}
