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
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// benchConfig is what `mevents bench` measures and against what.
type benchConfig struct {
	APIs                          []string // base URLs, https://host:port
	CA, Cert, Key                 string   // the CA and the producer's certificate
	ConsumerCert, ConsumerKey     string
	Type                          string
	Producers, Consumers          int
	Batch, Size, Keys             int
	Duration                      time.Duration
	Count                         int // events to produce; 0: until Duration
	Rate                          int // events/s over all producers; 0: as fast as possible
	MaxInFlight                   int
	NATS, NATSUser, NATSPassword  string // operator port, for the raw JetStream comparison
	Progress                      io.Writer
	producerTLS, consumerTLS, raw *tls.Config
}

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
	fs.IntVar(&c.Consumers, "consumers", 3, "WebSocket consumers in one new group (0: produce only)")
	fs.IntVar(&c.Batch, "batch", 100, "events per request")
	fs.IntVar(&c.Size, "size", 1024, "approximate size of one event in bytes")
	fs.IntVar(&c.Keys, "keys", 1000, "distinct partition keys")
	fs.DurationVar(&c.Duration, "duration", 30*time.Second, "how long to produce")
	fs.IntVar(&c.Count, "count", 0, "events to produce (instead of --duration)")
	fs.IntVar(&c.Rate, "rate", 0, "target events/s over all producers (0: as fast as possible)")
	fs.IntVar(&c.MaxInFlight, "max-in-flight", 1000, "maxInFlight of each WebSocket consumer")
	fs.StringVar(&c.NATS, "nats", "", "operator NATS URL (tls://host:4222) to measure raw JetStream publishing too")
	fs.StringVar(&c.NATSUser, "nats-user", "ops", "operator user")
	fs.StringVar(&c.NATSPassword, "nats-password", "", "operator password")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, a := range strings.Split(*apis, ",") {
		if a = strings.TrimRight(strings.TrimSpace(a), "/"); a != "" {
			c.APIs = append(c.APIs, a)
		}
	}
	c.Progress = stderr
	report, err := bench(ctx, c)
	if err != nil {
		return err
	}
	report.print(stdout)
	return nil
}

// benchReport holds the figures of one run.
type benchReport struct {
	Config                     benchConfig
	Produced, Delivered        int64
	Requests, Errors           int64
	FirstErrors                []string
	ProduceTime, DeliverTime   time.Duration
	EndToEnd, Request          latencies
	RawRate                    float64 // events/s; 0 when not measured
	RawReplicas                int
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
	if r.RawRate > 0 {
		fmt.Fprintf(w, "raw        JetStream async publish of the same events (R%d): %.0f events/s; gateway/raw = %.2f\n",
			r.RawReplicas, r.RawRate, r.ProduceRate/r.RawRate)
	}
}

// bench runs one measurement: optionally the raw JetStream rate, then
// consumers in a new group and producers at the same time.
func bench(ctx context.Context, c benchConfig) (*benchReport, error) {
	if err := c.load(); err != nil {
		return nil, err
	}
	r := &benchReport{Config: c}
	if c.NATS != "" {
		rate, replicas, err := rawPublishRate(ctx, c)
		if err != nil {
			return nil, fmt.Errorf("raw JetStream measurement: %w", err)
		}
		r.RawRate, r.RawReplicas = rate, replicas
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var delivered atomic.Int64
	var consumers []*benchConsumer
	group := "bench-" + randomHex(4)
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
	var cwg sync.WaitGroup
	for _, bc := range consumers {
		cwg.Add(1)
		go func() { defer cwg.Done(); bc.run(&delivered) }()
	}
	defer func() {
		for _, bc := range consumers {
			bc.close()
		}
		cwg.Wait()
	}()

	var produced, requests, errs atomic.Int64
	var errMu sync.Mutex
	var firstErrors []string
	recordErr := func(msg string) {
		errs.Add(1)
		errMu.Lock()
		if len(firstErrors) < 5 {
			firstErrors = append(firstErrors, msg)
		}
		errMu.Unlock()
	}
	deadline := time.Now().Add(c.Duration)
	var budget atomic.Int64 // events left to produce when --count is set
	budget.Store(int64(c.Count))
	start := time.Now()
	producers := make([]*benchProducer, c.Producers)
	var pwg sync.WaitGroup
	for i := range producers {
		producers[i] = newProducer(c, i, c.APIs[i%len(c.APIs)])
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			producers[i].run(ctx, deadline, &budget, &produced, &requests, recordErr)
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
			case <-t.C:
				p, d := produced.Load(), delivered.Load()
				fmt.Fprintf(c.Progress, "%5.0fs  produced %9d (%7d/s)  delivered %9d (%7d/s)  errors %d\n",
					time.Since(start).Seconds(), p, p-lastP, d, d-lastD, errs.Load())
				lastP, lastD = p, d
			}
		}
	}()
	pwg.Wait()
	r.ProduceTime = time.Since(start)
	r.Produced, r.Requests, r.Errors = produced.Load(), requests.Load(), errs.Load()
	// Wait for the consumers to catch up, as long as they make progress.
	if c.Consumers > 0 {
		last, lastChange := delivered.Load(), time.Now()
		for delivered.Load() < r.Produced && time.Since(lastChange) < 10*time.Second && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
			if d := delivered.Load(); d != last {
				last, lastChange = d, time.Now()
			}
		}
	}
	r.DeliverTime = time.Since(start)
	close(stopProgress)
	<-progressDone
	r.Delivered = delivered.Load()
	r.FirstErrors = firstErrors
	for _, p := range producers {
		r.Request = append(r.Request, p.latencies...)
	}
	for _, bc := range consumers {
		bc.close()
	}
	cwg.Wait()
	for _, bc := range consumers {
		r.EndToEnd = append(r.EndToEnd, bc.latencies...)
		if bc.err != nil && r.Delivered < r.Produced {
			r.FirstErrors = append(r.FirstErrors, "consumer: "+bc.err.Error())
		}
	}
	consumers = nil
	r.Request.sort()
	r.EndToEnd.sort()
	r.ProduceRate = float64(r.Produced) / r.ProduceTime.Seconds()
	r.DeliveredRate = float64(r.Delivered) / r.DeliverTime.Seconds()
	return r, nil
}

// load reads the TLS files.
func (c *benchConfig) load() error {
	if len(c.APIs) == 0 {
		return errors.New("bench: no --api given")
	}
	if c.Producers < 1 || c.Batch < 1 || c.Keys < 1 || c.Size < 1 {
		return errors.New("bench: --producers, --batch, --keys and --size must be positive")
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
