package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
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
)

// idleConfig is what `mevents bench --idle-groups` measures: what idle
// consumer groups cost the nodes.
type idleConfig struct {
	Groups int           // idle groups, a WebSocket each; 0: not this mode
	Types  []string      // the groups' event types; none: all routed to the consumer
	Joins  int           // WebSockets dialing at once
	Window time.Duration // of each measurement of the nodes
	Settle time.Duration // after the joins and after the disconnects, before measuring
	Scrape time.Duration // between scrapes of the nodes' /metrics throughout; 0: only the windows' own
}

// idleHandshake bounds one join, from dialing to the upgrade: the server
// subscribes the group to every partition of its types first.
const idleHandshake = 30 * time.Second

// idleFlags adds the flags of the idle mode to fs; the function returned
// gives their values once fs is parsed.
func idleFlags(fs *flag.FlagSet) func() idleConfig {
	var ic idleConfig
	fs.IntVar(&ic.Groups, "idle-groups", 0, "measure what N idle consumer groups cost instead of throughput (see above); uses --api, --ca, --consumer-cert, --consumer-key, --ops, and --nats to delete the groups afterwards")
	types := fs.String("types", "", "with --idle-groups: comma-separated event types of the idle groups (default: all routed to the consumer's client)")
	fs.IntVar(&ic.Joins, "joins", 8, "with --idle-groups: WebSockets dialing at once")
	fs.DurationVar(&ic.Window, "window", time.Minute, "with --idle-groups: length of each measurement of the nodes (baseline, connected, disconnected); hundredths of a core need a minute or more")
	fs.DurationVar(&ic.Settle, "settle", 45*time.Second, "with --idle-groups: pause after the joins (the groups' cursors and readers being made; idle readers park after 30 s) and after the disconnects, before measuring")
	fs.DurationVar(&ic.Scrape, "scrape", 15*time.Second, "with --idle-groups and --ops: scrape every node's /metrics this often from start to end, as a monitoring system would (each scrape computes the groups' lag, and its cost is in the windows); 0: only at each window's start and end")
	return func() idleConfig {
		for _, t := range strings.Split(*types, ",") {
			if t = strings.TrimSpace(t); t != "" {
				ic.Types = append(ic.Types, t)
			}
		}
		return ic
	}
}

// runIdle runs the idle mode and prints its report, also when it was
// interrupted after the joins.
func runIdle(ctx context.Context, c benchConfig, ic idleConfig, summary string, stdout io.Writer) error {
	rep, err := benchIdle(ctx, c, ic)
	if rep != nil {
		rep.print(stdout)
	}
	if err != nil {
		return err
	}
	if summary != "" {
		if err := appendIdleSummary(summary, rep); err != nil {
			return fmt.Errorf("--summary: %w", err)
		}
	}
	return nil
}

// idleReport holds the figures of one idle run.
type idleReport struct {
	Config        idleConfig
	RunID, Client string
	APIs, Routed  int      // API base URLs; types routed to the client
	Types         []string // the groups' types
	Join          latencies
	Failed        int
	FirstError    string
	Events        int64 // events delivered to the idle groups (not acknowledged)
	Dropped       int64 // connections the server closed before the bench did
	FirstDrop     string
	// The nodes in each window; nil when not measured.
	Baseline, Connected, Disconnected *usageWindow
	Groups                            string // what became of the groups
}

// benchIdle measures what idle consumer groups cost: the nodes with no
// bench connection at all; then ic.Groups new groups, each with one
// WebSocket, are joined (at most ic.Joins dialing at once, round robin
// over the APIs) and the nodes measured while they are connected and idle;
// then again after they have disconnected. The groups' JetStream consumers
// are deleted afterwards with operator credentials.
func benchIdle(ctx context.Context, c benchConfig, ic idleConfig) (*idleReport, error) {
	if err := c.loadIdle(ic); err != nil {
		return nil, err
	}
	client, routed, err := whoami(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("bench: whoami with the consumer's certificate: %w", err)
	}
	rep := &idleReport{Config: ic, RunID: randomHex(4), Client: client, APIs: len(c.APIs), Routed: len(routed), Types: ic.Types}
	if len(rep.Types) == 0 {
		rep.Types = routed
	}
	for _, t := range rep.Types {
		if !slices.Contains(routed, t) {
			return nil, fmt.Errorf("bench: --types: %s is not routed to client %s", t, client)
		}
	}
	if len(rep.Types) == 0 {
		return nil, fmt.Errorf("bench: no event types are routed to client %s", client)
	}
	prefix := "idle-" + rep.RunID + "-"
	if err := broker.ValidGroup(prefix + strconv.Itoa(ic.Groups-1)); err != nil {
		return nil, fmt.Errorf("bench: --idle-groups: %w", err)
	}
	if len(c.Ops) > 0 {
		if _, err := scrapeUsage(ctx, c.Ops); err != nil {
			return nil, fmt.Errorf("--ops: %w", err)
		}
		stop := scrapeEvery(ctx, c.Ops, ic.Scrape)
		defer func() {
			if n, err := stop(); err != nil {
				fmt.Fprintf(c.Progress, "%d of the scrapes between the windows failed, the first: %v\n", n, err)
			}
		}()
	} else {
		fmt.Fprintln(c.Progress, "no --ops: the nodes are not measured, only the joins")
	}

	if rep.Baseline, err = idleWindow(ctx, c, ic, "baseline, nothing connected"); err != nil {
		return nil, err
	}
	// Deferred in this order, the connections are closed before the
	// groups are deleted.
	defer func() { rep.Groups = cleanUpIdle(ctx, c, prefix) }()
	conns := &idleConns{}
	defer conns.close()
	fmt.Fprintf(c.Progress, "joining %d groups %s0 … %s%d, at most %d at once\n", ic.Groups, prefix, prefix, ic.Groups-1, ic.Joins)
	idleJoin(ctx, c, ic, rep, conns, prefix)
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	// The joins leave work behind (each group's cursors and readers are
	// made as its instance takes its partitions): the window measures
	// the groups idle, after it.
	fmt.Fprintf(c.Progress, "settling for %s\n", ic.Settle)
	if err := sleep(ctx, ic.Settle); err != nil {
		return rep, err
	}
	if len(c.Ops) == 0 {
		// The connections are still held for a window: they should stay up.
		fmt.Fprintf(c.Progress, "connected and idle for %s\n", ic.Window)
		err = sleep(ctx, ic.Window)
	} else {
		rep.Connected, err = idleWindow(ctx, c, ic, "connected and idle")
	}
	conns.close()
	rep.Events, rep.Dropped, rep.FirstDrop = conns.events.Load(), conns.dropped.Load(), conns.firstDrop
	if err != nil {
		return rep, err
	}
	if len(c.Ops) > 0 {
		fmt.Fprintf(c.Progress, "disconnected: waiting %s\n", max(ic.Settle, 2*time.Second))
		if err := sleep(ctx, max(ic.Settle, 2*time.Second)); err != nil {
			return rep, err
		}
		if rep.Disconnected, err = idleWindow(ctx, c, ic, "disconnected"); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// loadIdle checks the idle mode's flags and reads the consumer's TLS files.
func (c *benchConfig) loadIdle(ic idleConfig) error {
	switch {
	case len(c.APIs) == 0:
		return errors.New("bench: no --api given")
	case ic.Groups < 1:
		return errors.New("bench: --idle-groups must be positive")
	case ic.Joins < 1:
		return errors.New("bench: --joins must be positive")
	case ic.Window <= 0:
		return errors.New("bench: --window must be positive")
	case ic.Scrape < 0:
		return errors.New("bench: --scrape must not be negative")
	}
	var err error
	if c.consumerTLS, err = clientTLSFiles(c.CA, c.ConsumerCert, c.ConsumerKey); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	c.raw = c.consumerTLS.Clone()
	c.raw.Certificates = nil
	return nil
}

// whoami asks the first API who the consumer's certificate is and which
// types are routed to it; its connection is closed before returning.
func whoami(ctx context.Context, c benchConfig) (string, []string, error) {
	hc := httpClient(c.consumerTLS)
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.APIs[0]+"/v1/whoami", nil)
	if err != nil {
		return "", nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return "", nil, fmt.Errorf("%s: %.300s", resp.Status, b)
	}
	var id struct {
		ClientID string   `json:"clientId"`
		Consume  []string `json:"consume"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&id); err != nil {
		return "", nil, err
	}
	return id.ClientID, id.Consume, nil
}

// scrapeEvery scrapes every node's /metrics each d until the function it
// returns is called, as a monitoring system would: the nodes then do at
// each scrape what they do in production, and what a change leaves to the
// next scrape (the cursors rewritten when the groups disconnect, read by
// the lag computation) is done within d of it, not in the first window
// after it. stop waits for the scraping to end and returns how many
// scrapes failed, with the first error; d 0 scrapes nothing.
func scrapeEvery(ctx context.Context, urls []string, d time.Duration) (stop func() (int, error)) {
	if d <= 0 {
		return func() (int, error) { return 0, nil }
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	var failed int
	var first error
	go func() {
		defer close(done)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, err := scrapeUsage(ctx, urls); err != nil && ctx.Err() == nil {
					if failed++; first == nil {
						first = err
					}
				}
			}
		}
	}()
	return func() (int, error) {
		cancel()
		<-done
		return failed, first
	}
}

// idleWindow measures the nodes for the window; nil without --ops or when
// a node did not answer (said on c.Progress).
func idleWindow(ctx context.Context, c benchConfig, ic idleConfig, what string) (*usageWindow, error) {
	if len(c.Ops) == 0 {
		return nil, nil
	}
	fmt.Fprintf(c.Progress, "%s: measuring the nodes for %s\n", what, ic.Window)
	m := newUsageMeter(ctx, c.Ops)
	if err := sleep(ctx, ic.Window); err != nil {
		return nil, err
	}
	return m.end(ctx, 0, c.Progress), nil
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// idleJoin dials a WebSocket for each group, at most ic.Joins at once,
// and times each from dialing to the upgrade; the connections go to conns.
// It prints the joins' progress each second.
func idleJoin(ctx context.Context, c benchConfig, ic idleConfig, rep *idleReport, conns *idleConns, prefix string) {
	var (
		next, done, failed atomic.Int64
		mu                 sync.Mutex
		wg                 sync.WaitGroup
	)
	types := strings.Join(rep.Types, ",")
	start := time.Now()
	for range min(ic.Joins, ic.Groups) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= ic.Groups {
					return
				}
				group := prefix + strconv.Itoa(i)
				q := url.Values{"group": {group}, "types": {types}, "start": {"latest"}}
				t := time.Now()
				conn, err := dialSubscription(ctx, c.consumerTLS, c.APIs[i%len(c.APIs)], q, idleHandshake)
				d := time.Since(t)
				mu.Lock()
				if err != nil {
					failed.Add(1)
					if rep.FirstError == "" {
						rep.FirstError = group + ": " + err.Error()
					}
				} else {
					rep.Join = append(rep.Join, d)
				}
				mu.Unlock()
				done.Add(1)
				if conn != nil {
					conns.add(conn)
				}
			}
		}()
	}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				fmt.Fprintf(c.Progress, "%5.0fs  joined %d/%d  failed %d\n", now.Sub(start).Seconds(), done.Load()-failed.Load(), ic.Groups, failed.Load())
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-stopped
	rep.Failed = int(failed.Load())
	rep.Join.sort()
}

// idleConns are the idle WebSockets, each kept alive by a reader (which
// also answers the server's pings) that discards what arrives: an idle
// group acknowledges nothing.
type idleConns struct {
	mu        sync.Mutex
	conns     []*websocket.Conn
	readers   sync.WaitGroup
	closing   atomic.Bool
	events    atomic.Int64
	dropped   atomic.Int64
	firstDrop string // under mu
}

// add starts conn's reader; not after close.
func (s *idleConns) add(conn *websocket.Conn) {
	s.mu.Lock()
	s.conns = append(s.conns, conn)
	s.mu.Unlock()
	s.readers.Add(1)
	go func() {
		defer s.readers.Done()
		for {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				if !s.closing.Load() {
					s.dropped.Add(1)
					s.mu.Lock()
					if s.firstDrop == "" {
						s.firstDrop = err.Error()
					}
					s.mu.Unlock()
				}
				return
			}
			var ev benchDelivery
			if json.Unmarshal(msg, &ev) == nil && ev.AckID != "" {
				s.events.Add(1)
			}
		}
	}()
}

// close closes every connection and waits for their readers.
func (s *idleConns) close() {
	s.closing.Store(true)
	s.mu.Lock()
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	bye := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bench done")
	for _, conn := range conns {
		_ = conn.WriteControl(websocket.CloseMessage, bye, time.Now().Add(time.Second))
		_ = conn.Close()
	}
	s.readers.Wait()
}

// cleanUpIdle deletes the idle groups (their cursors) with the operator
// credentials and says what became of the groups.
func cleanUpIdle(ctx context.Context, c benchConfig, prefix string) string {
	left := fmt.Sprintf("left: their cursors (%s*) stay in the cursor bucket", prefix)
	switch {
	case c.NATS == "":
		return left + " (--nats deletes them)"
	case ctx.Err() != nil:
		return left + " (interrupted)"
	}
	fmt.Fprintf(c.Progress, "deleting groups %s*\n", prefix)
	n, err := deleteGroups(ctx, c, func(g string) bool { return strings.HasPrefix(g, prefix) })
	if err != nil {
		return fmt.Sprintf("%d cursors deleted, then: %v; %s", n, err, left)
	}
	return fmt.Sprintf("deleted afterwards (%d cursors)", n)
}

// scraped says how often the nodes were scraped besides the windows.
func scraped(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return fmt.Sprintf(", /metrics scraped every %s throughout", d)
}

// print writes the report: the joins, then the nodes in each window and
// how they differ from the baseline (CPU in cores, of all nodes and of
// each, resident memory in MiB of each node at the window's end).
func (r *idleReport) print(w io.Writer) {
	ic := r.Config
	types := strings.Join(r.Types, ", ")
	if len(ic.Types) == 0 {
		types = fmt.Sprintf("all %d routed to %s (%s)", r.Routed, r.Client, types)
	}
	fmt.Fprintf(w, "scenario      %s (idle-%s-0 … %d), a WebSocket each, round robin over %s, at most %d joining at once; types %s; windows of %s%s\n",
		count(ic.Groups, "idle group"), r.RunID, ic.Groups-1, count(r.APIs, "API"), ic.Joins, types, ic.Window, scraped(ic.Scrape))
	fmt.Fprintf(w, "join          %d joined, %d failed: p50 %s  p99 %s  max %s\n", len(r.Join), r.Failed, r.Join.q(0.5), r.Join.q(0.99), r.Join.q(1))
	if r.FirstError != "" {
		fmt.Fprintf(w, "  error: %s\n", r.FirstError)
	}
	fmt.Fprintf(w, "idle          %d events delivered (not acknowledged), %d connections closed by the server\n", r.Events, r.Dropped)
	if r.FirstDrop != "" {
		fmt.Fprintf(w, "  error: %s\n", r.FirstDrop)
	}
	if r.Baseline == nil && r.Connected == nil && r.Disconnected == nil {
		fmt.Fprintln(w, "nodes         not measured")
	}
	for _, p := range []struct {
		name string
		u    *usageWindow
	}{{"baseline", r.Baseline}, {"connected", r.Connected}, {"disconnected", r.Disconnected}} {
		if p.u == nil {
			continue
		}
		cpu, mem := usageFigures(p.u, nil)
		fmt.Fprintf(w, "%-13s nodes CPU %s; resident memory %s\n", p.name, cpu, mem)
		if p.u != r.Baseline && r.Baseline != nil {
			cpu, mem = usageFigures(p.u, r.Baseline)
			fmt.Fprintf(w, "  vs baseline %s, %s", cpu, mem)
			if mc, kib, ok := r.perGroup(); ok && p.u == r.Connected {
				fmt.Fprintf(w, "; a group %+.2f millicores, %+.0f KiB (all nodes)", mc, kib)
			}
			fmt.Fprintln(w)
		}
	}
	if r.Groups != "" {
		fmt.Fprintf(w, "groups        %s\n", r.Groups)
	}
}
