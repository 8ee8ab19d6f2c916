package broker_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mevents/mevents/broker"
	"github.com/mevents/mevents/config"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// nextPort hands out ports in turn from a random start, so that no two
// calls in this test process return the same port.
var nextPort = func() *atomic.Int32 {
	var p atomic.Int32
	p.Store(int32(20000 + rand.IntN(10000)))
	return &p
}()

// freeAddr returns 127.0.0.1:port with a port that is free now, below
// the kernel's ephemeral range (32768 and up on Linux): a port of that range,
// once released, may be taken at any moment as the local port of some
// outgoing connection, and then the node that was to listen on it cannot.
func freeAddr(t testing.TB) string {
	t.Helper()
	for i := 0; i < 200; i++ {
		addr := fmt.Sprintf("127.0.0.1:%d", nextPort.Add(1))
		if ln, err := net.Listen("tcp", addr); err == nil {
			ln.Close()
			return addr
		}
	}
	t.Fatal("no free port below 32000")
	return ""
}

// freePort is the port of freeAddr.
func freePort(t testing.TB) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(freeAddr(t))
	n, _ := strconv.Atoi(p)
	return n
}

func openNode(t testing.TB, cfg broker.NodeConfig) *broker.Node {
	t.Helper()
	if cfg.StoreDir == "" {
		cfg.StoreDir = t.TempDir()
	}
	if cfg.Logger == nil && os.Getenv("MEVENTS_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	n := broker.NewNode(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Open(ctx); err != nil {
		t.Fatalf("open node %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// openCluster starts size nodes in this process, routed to each other, and
// waits until all of them have a meta leader.
func openCluster(t testing.TB, size int) []*broker.Node {
	t.Helper()
	return openClusterWith(t, size, func(*broker.NodeConfig) {})
}

// openClusterWith is openCluster with settings of the caller's own.
func openClusterWith(t testing.TB, size int, tune func(*broker.NodeConfig)) []*broker.Node {
	t.Helper()
	ports := make([]int, size)
	routes := make([]string, size)
	for i := range ports {
		ports[i] = freePort(t)
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", ports[i])
	}
	nodes := make([]*broker.Node, size)
	errs := make(chan error, size)
	for i := range nodes {
		cfg := broker.NodeConfig{
			Name: fmt.Sprintf("n%d", i+1), StoreDir: t.TempDir(),
			ClusterListen: fmt.Sprintf("127.0.0.1:%d", ports[i]), Routes: routes,
			SyncInterval: time.Minute, // fsync per write adds nothing to what these tests check
		}
		tune(&cfg)
		nodes[i] = broker.NewNode(cfg)
		t.Cleanup(func() { nodes[i].Close() })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, n := range nodes {
		go func() { errs <- n.Open(ctx) }()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Fatalf("open cluster: %v", err)
		}
	}
	return nodes
}

func testRegistry(types ...string) *broker.Registry {
	var ts []broker.EventType
	for _, name := range types {
		ts = append(ts, broker.EventType{Name: name, Schema: []byte(`true`)})
	}
	return broker.NewRegistry(ts, nil)
}

func event(t testing.TB, typ, source, id, key string) broker.Event {
	t.Helper()
	raw := fmt.Sprintf(`{"specversion":"1.0","type":%q,"source":%q,"id":%q,"data":{"n":1}`, typ, source, id)
	if key != "" {
		raw += fmt.Sprintf(`,"partitionkey":%q`, key)
	}
	e, problems := broker.ParseEvent([]byte(raw+"}"), 0)
	if len(problems) > 0 {
		t.Fatalf("parse %s: %+v", raw, problems)
	}
	return e
}

func streamMsgs(t testing.TB, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream info %s: %v", stream, err)
	}
	return info.State.Msgs
}

func streamInfo(t testing.TB, n *broker.Node, typ string) *jetstream.StreamInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := n.JetStream().Stream(ctx, broker.StreamName(typ))
	if err != nil {
		t.Fatalf("stream of %s: %v", typ, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream info of %s: %v", typ, err)
	}
	return info
}

func TestNames(t *testing.T) {
	tests := []struct{ typ, stream, subject, test string }{
		{"md.gov.person.registered", "EV_md_gov_person_registered", "ev.md.gov.person.registered.7", "evtest.c1.md.gov.person.registered.7"},
		{"a", "EV_a", "ev.a.7", "evtest.c1.a.7"},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			if got := broker.StreamName(tt.typ); got != tt.stream {
				t.Fatalf("StreamName=%q, want %q", got, tt.stream)
			}
			if got := broker.Subject(tt.typ, 7, ""); got != tt.subject {
				t.Fatalf("Subject=%q, want %q", got, tt.subject)
			}
			if got := broker.Subject(tt.typ, 7, "c1"); got != tt.test {
				t.Fatalf("test Subject=%q, want %q", got, tt.test)
			}
		})
	}
}

func TestPartition(t *testing.T) {
	// Reference values of FNV-1a 32 mod 12.
	tests := map[string]int{"": 2166136261 % 12, "a": 0xe40c292c % 12, "foobar": 0xbf9cf968 % 12}
	for key, want := range tests {
		if got := broker.Partition(key); got != want {
			t.Fatalf("Partition(%q)=%d, want %d", key, got, want)
		}
	}
}

// operatorNode opens a single node with an operator port over TLS.
func operatorNode(t *testing.T) (*broker.Node, *config.CA) {
	t.Helper()
	ca, err := config.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.IssueTLS(config.IssueOptions{Name: "n1", Hosts: []string{"127.0.0.1"}, Server: true, Client: true})
	if err != nil {
		t.Fatal(err)
	}
	n := openNode(t, broker.NodeConfig{
		Name: "n1", OperatorListen: "127.0.0.1:0",
		OperatorTLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		Operators:   []broker.Operator{{User: "ops", Password: "s3cret"}},
	})
	return n, ca
}

func operatorJS(t *testing.T, n *broker.Node, ca *config.CA, opts ...nats.Option) (jetstream.JetStream, error) {
	t.Helper()
	opts = append(opts, nats.Secure(&tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}), nats.MaxReconnects(0))
	nc, err := nats.Connect("tls://"+n.OperatorAddr(), opts...)
	if err != nil {
		return nil, err
	}
	t.Cleanup(nc.Close)
	return jetstream.New(nc)
}

func TestSingleNodePublish(t *testing.T) {
	n, ca := operatorNode(t)
	ctx := context.Background()
	const typ = "md.gov.person.registered"
	if err := n.ApplyRegistry(ctx, testRegistry(typ, "md.gov.person.deceased")); err != nil {
		t.Fatal(err)
	}
	js, err := operatorJS(t, n, ca, nats.UserInfo("ops", "s3cret"))
	if err != nil {
		t.Fatalf("operator connect: %v", err)
	}
	// Streams and their settings.
	s, err := js.Stream(ctx, broker.StreamName(typ))
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	if cfg.Replicas != 1 || cfg.MaxAge != broker.DefaultRetention || cfg.Duplicates != broker.DefaultDedupWindow || cfg.Storage != jetstream.FileStorage {
		t.Fatalf("stream config = R%d age %v dup %v storage %v", cfg.Replicas, cfg.MaxAge, cfg.Duplicates, cfg.Storage)
	}

	pub := broker.Publication{Producer: "civil-registry", Events: []broker.Event{
		event(t, typ, "/reg", "1", "2000000000001"),
		event(t, typ, "/reg", "2", "2000000000001"),
		event(t, typ, "/reg", "3", ""),
	}}
	if err := n.Publish(ctx, pub); err != nil {
		t.Fatal(err)
	}
	if got := streamMsgs(t, js, broker.StreamName(typ)); got != 3 {
		t.Fatalf("stored %d events, want 3", got)
	}
	// The same source and id again: answered, stored once.
	again := broker.Publication{Producer: "civil-registry", Events: []broker.Event{event(t, typ, "/reg", "1", "2000000000001")}}
	if err := n.Publish(ctx, again); err != nil {
		t.Fatal(err)
	}
	if got := streamMsgs(t, js, broker.StreamName(typ)); got != 3 {
		t.Fatalf("after a repeat, stored %d events, want 3", got)
	}
	// The stored form: subject by partition, stamped attributes.
	m, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := broker.Subject(typ, broker.Partition("2000000000001"), ""); m.Subject != want {
		t.Fatalf("subject %q, want %q", m.Subject, want)
	}
	stored, problems := broker.ParseEvent(m.Data, 0)
	if len(problems) > 0 {
		t.Fatalf("stored event does not parse: %+v", problems)
	}
	if got := stored.StringAttr("authid"); got != "civil-registry" {
		t.Fatalf("authid=%q", got)
	}
	if got := stored.StringAttr("authtype"); got != broker.AuthTypeClient {
		t.Fatalf("authtype=%q", got)
	}
	if _, err := time.Parse(time.RFC3339Nano, stored.StringAttr("recordedtime")); err != nil {
		t.Fatalf("recordedtime: %v", err)
	}

	// Test events: stored under the client's test subject, marked.
	test := broker.Publication{Producer: "c1", Test: true, Events: []broker.Event{event(t, typ, "/reg", "1", "k")}}
	if err := n.Publish(ctx, test); err != nil {
		t.Fatal(err)
	}
	m, err = s.GetLastMsgForSubject(ctx, "evtest.c1."+typ+".*")
	if err != nil {
		t.Fatalf("test event not stored: %v", err)
	}
	stored, _ = broker.ParseEvent(m.Data, 0)
	if v, _ := stored.Attr("testevent"); string(v) != "true" {
		t.Fatalf("testevent=%s", v)
	}
}

func TestOperatorPort(t *testing.T) {
	n, ca := operatorNode(t)
	tests := []struct {
		name string
		opts []nats.Option
		ok   bool
	}{
		{"operator", []nats.Option{nats.UserInfo("ops", "s3cret")}, true},
		{"system account operator", []nats.Option{nats.UserInfo("ops-sys", "s3cret")}, true},
		{"wrong password", []nats.Option{nats.UserInfo("ops", "nope")}, false},
		{"anonymous", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := operatorJS(t, n, ca, tt.opts...)
			if (err == nil) != tt.ok {
				t.Fatalf("connect err=%v, want ok=%v", err, tt.ok)
			}
		})
	}
	t.Run("the application's in-process identity", func(t *testing.T) {
		pub, sign := n.AppIdentityForTest()
		if _, err := operatorJS(t, n, ca, nats.Nkey(pub, sign)); err == nil {
			t.Fatal("the in-process identity logged in over the network")
		}
	})
	t.Run("operator lists the streams", func(t *testing.T) {
		if err := n.ApplyRegistry(context.Background(), testRegistry("org.example.listed")); err != nil {
			t.Fatal(err)
		}
		js, err := operatorJS(t, n, ca, nats.UserInfo("ops", "s3cret"))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		lister := js.StreamNames(context.Background())
		for name := range lister.Name() {
			names = append(names, name)
		}
		if lister.Err() != nil || !slices.Contains(names, broker.StreamName("org.example.listed")) {
			t.Fatalf("stream ls = %v (%v)", names, lister.Err())
		}
	})
	t.Run("plain TCP", func(t *testing.T) {
		nc, err := nats.Connect("nats://"+n.OperatorAddr(), nats.UserInfo("ops", "s3cret"), nats.MaxReconnects(0))
		if err == nil {
			nc.Close()
			t.Fatal("a connection without TLS was accepted")
		}
	})
}

func TestClusterSurvivesLeaderLoss(t *testing.T) {
	nodes := openCluster(t, 3)
	ctx := context.Background()
	const typ = "org.example.order.changed"
	reg := broker.NewRegistry([]broker.EventType{{Name: typ, Schema: []byte(`true`), Replicas: 3}}, nil)
	for _, n := range nodes {
		if err := n.ApplyRegistry(ctx, reg); err != nil {
			t.Fatal(err)
		}
	}
	publish := func(n *broker.Node, from, to int) {
		t.Helper()
		var events []broker.Event
		for i := from; i < to; i++ {
			events = append(events, event(t, typ, "/orders", fmt.Sprint(i), fmt.Sprint("order-", i%7)))
		}
		// A publish may fail while a new leader is elected; the producer
		// retries with the same ids, which deduplication makes safe.
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := n.Publish(ctx, broker.Publication{Producer: "p", Events: events})
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("publish %d..%d: %v", from, to, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	publish(nodes[0], 0, 200)

	info := streamInfo(t, nodes[0], typ)
	if info.Config.Replicas != 3 {
		t.Fatalf("replicas=%d, want 3", info.Config.Replicas)
	}
	leader := info.Cluster.Leader
	var survivors []*broker.Node
	for _, n := range nodes {
		if n.Name() == leader {
			n.Close()
		} else {
			survivors = append(survivors, n)
		}
	}
	if len(survivors) != 2 {
		t.Fatalf("leader %q not among the nodes", leader)
	}
	publish(survivors[0], 200, 400)
	publish(survivors[1], 100, 300) // repeats: stored once
	deadline := time.Now().Add(20 * time.Second)
	for {
		info := streamInfo(t, survivors[1], typ)
		if info.State.Msgs == 400 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream holds %d events, want 400", info.State.Msgs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
