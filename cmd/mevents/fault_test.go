package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/broker/brokertest"
	"github.com/mevents/mevents/config"
	"gopkg.in/yaml.v3"
)

var faultLong = flag.Bool("fault.long", false, "run the long form of the process-level fault suite (more rounds, longer load)")

// faultNode is one `mevents serve` process of the fault suite.
type faultNode struct {
	t    *testing.T
	bin  string
	path string // node.yaml
	cfg  *config.Node
	log  *os.File
	cmd  *exec.Cmd
	done chan struct{}
}

// newFaultNode writes cfg as DIR/<name>.yaml and returns the node that runs
// it with bin, its output in DIR/<name>.log. It is killed (after a SIGCONT,
// should a test have paused it) when the test ends; start starts it.
func newFaultNode(t *testing.T, bin, dir string, cfg *config.Node) *faultNode {
	t.Helper()
	data, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, cfg.Node.Name+".yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, cfg.Node.Name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	n := &faultNode{t: t, bin: bin, path: path, cfg: cfg, log: log}
	t.Cleanup(func() {
		if n.cmd != nil {
			_ = n.cmd.Process.Signal(syscall.SIGCONT)
		}
		n.stop(syscall.SIGKILL)
		log.Close()
	})
	return n
}

func (n *faultNode) start() {
	n.t.Helper()
	n.cmd = exec.Command(n.bin, "serve", "--config", n.path)
	n.cmd.Stdout, n.cmd.Stderr = n.log, n.log
	if err := n.cmd.Start(); err != nil {
		n.t.Fatalf("start %s: %v", n.cfg.Node.Name, err)
	}
	n.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(n.cmd, n.done)
}

// stop sends sig and waits for the process to end.
func (n *faultNode) stop(sig syscall.Signal) {
	n.t.Helper()
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(sig)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
		n.t.Errorf("%s did not stop on %v within 30s", n.cfg.Node.Name, sig)
	}
	n.cmd = nil
}

// waitReady polls /readyz until 200: JetStream current, this node's
// streams healthy (so a restarted node has caught up).
func (n *faultNode) waitReady() {
	n.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + n.cfg.Ops.Listen + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s not ready within 60s (see %s)", n.cfg.Node.Name, n.log.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// buildBinary compiles mevents once for the suite.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mevents")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// faultProducer produces numbered events in batches, spreading requests
// over the nodes and retrying a failed request unchanged on the next node
// until it is acknowledged, as a careful producer does.
type faultProducer struct {
	mu     sync.Mutex
	acked  map[string]bool
	errors int
}

func (p *faultProducer) run(ctx context.Context, t *testing.T, client *http.Client, apis []string) {
	for batch := 0; ctx.Err() == nil; batch++ {
		var events, ids []string
		for i := 0; i < 10; i++ {
			id := fmt.Sprintf("b%d-%d", batch, i)
			ids = append(ids, id)
			events = append(events, fmt.Sprintf(`{"specversion":"1.0","type":"org.example.order.changed","source":"/erp","id":%q,"partitionkey":"o%d","data":{"orderId":"o%d"}}`, id, i, i))
		}
		body := "[" + strings.Join(events, ",") + "]"
		giveUp := time.Now().Add(90 * time.Second) // longer than a whole-cluster restart
		for attempt := 0; ; attempt++ {
			api := apis[(batch+attempt)%len(apis)]
			rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			req, _ := http.NewRequestWithContext(rctx, http.MethodPost, "https://"+api+"/v1/events", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/cloudevents-batch+json")
			resp, err := client.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			cancel()
			if err == nil && resp.StatusCode == http.StatusAccepted {
				p.mu.Lock()
				for _, id := range ids {
					p.acked[id] = true
				}
				p.mu.Unlock()
				break
			}
			if err == nil && resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("produce: status %d", resp.StatusCode)
				return
			}
			p.mu.Lock()
			p.errors++
			p.mu.Unlock()
			if time.Now().After(giveUp) {
				t.Errorf("produce: batch %d not acknowledged after %d attempts: %v", batch, attempt, err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// faultConsumer is one WebSocket instance of a group that reconnects to
// the next node whenever its connection breaks, and records what it got.
type faultConsumer struct {
	mu       sync.Mutex
	received map[string]bool
}

func (fc *faultConsumer) run(ctx context.Context, t *testing.T, tlsConfig *tls.Config, apis []string, first int) {
	for i := first; ctx.Err() == nil; i++ {
		d := websocket.Dialer{TLSClientConfig: tlsConfig, Subprotocols: []string{"cloudevents.json"}, HandshakeTimeout: 5 * time.Second}
		conn, _, err := d.DialContext(ctx, "wss://"+apis[i%len(apis)]+"/v1/subscription/ws?group=faults&maxInFlight=50", nil)
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		for {
			var ev struct {
				ID    string `json:"id"`
				AckID string `json:"ackid"`
			}
			if err := conn.ReadJSON(&ev); err != nil {
				break
			}
			if ev.AckID == "" {
				continue
			}
			fc.mu.Lock()
			fc.received[ev.ID] = true
			fc.mu.Unlock()
			if err := conn.WriteJSON(map[string]any{"op": "ack", "ackIds": []string{ev.AckID}}); err != nil {
				break
			}
		}
		stop()
		conn.Close()
	}
}

// TestFaultsProcesses runs three real `mevents serve` processes under
// produce and consume load and kills each in turn with SIGKILL, restarts
// it, then stops and starts the whole cluster: every acknowledged event is
// stored exactly once and delivered to the consumers' group, whose
// instances reconnect elsewhere (and one of which dies for good, its
// partitions resuming on the other), and every node rejoins and catches up.
func TestFaultsProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("process-level fault suite: not in -short")
	}
	rounds, load := 1, 2*time.Second
	if *faultLong {
		rounds, load = 3, 10*time.Second
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	cfgs := clusterConfigs(t, dir, 3)
	var nodes []*faultNode
	var apis []string
	for _, cfg := range cfgs {
		cfg.API.Listen, cfg.Ops.Listen, cfg.NATS.Listen = brokertest.FreeAddr(t), brokertest.FreeAddr(t), brokertest.FreeAddr(t)
		cfg.JetStream.Sync = config.SyncAlways // the product's default: kill -9 must lose nothing
		n := newFaultNode(t, bin, dir, cfg)
		nodes = append(nodes, n)
		apis = append(apis, cfg.API.Listen)
	}
	for _, n := range nodes {
		n.start()
	}
	for _, n := range nodes {
		n.waitReady()
	}

	// Two consumer instances of one group, on different nodes, through
	// every fault: together they must receive every acknowledged event.
	cctx, ccancel := context.WithCancel(context.Background())
	fc := &faultConsumer{received: map[string]bool{}}
	var cwg sync.WaitGroup
	consumerTLS := clientTLS(t, filepath.Join(dir, "pki"), "consumer")
	// Instance 0 dies (its connection drops without a close frame, as when
	// its process is killed) after the node faults; instance 1 must then
	// take over its partitions.
	c0ctx, killConsumer := context.WithCancel(cctx)
	defer killConsumer()
	for i := 0; i < 2; i++ {
		ictx := cctx
		if i == 0 {
			ictx = c0ctx
		}
		cwg.Add(1)
		go func() { defer cwg.Done(); fc.run(ictx, t, consumerTLS, apis, i) }()
	}
	defer func() { ccancel(); cwg.Wait() }()

	ctx, cancel := context.WithCancel(context.Background())
	p := &faultProducer{acked: map[string]bool{}}
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run(ctx, t, mtlsClient(t, filepath.Join(dir, "pki"), "producer"), apis)
		}()
	}
	pause := func(d time.Duration) {
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
	pause(load / 2)
	for r := 0; r < rounds; r++ {
		for _, n := range nodes {
			t.Logf("round %d: kill -9 %s", r, n.cfg.Node.Name)
			n.stop(syscall.SIGKILL)
			pause(load)
			n.start()
			n.waitReady()
			pause(load / 2)
		}
	}
	t.Log("killing a consumer instance")
	killConsumer()
	pause(load)
	t.Log("stopping the whole cluster")
	var swg sync.WaitGroup
	for _, n := range nodes {
		swg.Add(1)
		go func() { defer swg.Done(); n.stop(syscall.SIGTERM) }()
	}
	swg.Wait()
	for _, n := range nodes {
		n.start()
	}
	for _, n := range nodes {
		n.waitReady()
	}
	pause(load / 2)
	cancel()
	wg.Wait()

	// Every acknowledged event is delivered to the group.
	deadline := time.Now().Add(90 * time.Second)
	for {
		p.mu.Lock()
		fc.mu.Lock()
		missing := 0
		for id := range p.acked {
			if !fc.received[id] {
				missing++
			}
		}
		fc.mu.Unlock()
		p.mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d acknowledged events were never delivered", missing)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Every acknowledged event is stored once, on every node.
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.acked) == 0 {
		t.Fatal("nothing was acknowledged")
	}
	t.Logf("%d events acknowledged, %d failed attempts retried", len(p.acked), p.errors)
	for _, n := range nodes {
		js := operatorJSAt(t, n.cfg, n.cfg.NATS.Listen)
		info := streamInfo(t, js, "org.example.order.changed")
		stream, err := js.Stream(context.Background(), broker.StreamName("org.example.order.changed"))
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
			msg, err := stream.GetMsg(context.Background(), seq)
			if err != nil {
				t.Fatalf("%s: read event %d: %v", n.cfg.Node.Name, seq, err)
			}
			var ev struct{ ID string }
			if err := json.Unmarshal(msg.Data, &ev); err != nil {
				t.Fatal(err)
			}
			count[ev.ID]++
		}
		for id := range p.acked {
			if count[id] != 1 {
				t.Fatalf("%s: acknowledged event %s stored %d times", n.cfg.Node.Name, id, count[id])
			}
		}
		for id, c := range count {
			if c != 1 {
				t.Fatalf("%s: event %s stored %d times", n.cfg.Node.Name, id, c)
			}
		}
		if info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
			t.Fatalf("%s: stream has no full replica set: %+v", n.cfg.Node.Name, info.Cluster)
		}
	}
}
