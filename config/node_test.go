package config

import (
	"errors"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func abs(t *testing.T, path string) string {
	t.Helper()
	p, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadNode(t *testing.T) {
	n, err := LoadNode("testdata/node/valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := abs(t, "testdata/node")
	p := func(rel string) string { return filepath.Join(dir, rel) }
	want := &Node{
		Node: NodeSection{Name: "n1", DataDir: p("data/n1")},
		API:  API{Listen: "0.0.0.0:8443", TLS: APITLS{Cert: p("pki/n1.pem"), Key: p("pki/n1-key.pem"), ClientCA: p("pki/ca.pem")}},
		Ops:  Ops{Listen: "127.0.0.1:9090"},
		NATS: &NATS{
			Listen:    "127.0.0.1:4222",
			TLS:       TLS{Cert: p("pki/n1.pem"), Key: p("pki/n1-key.pem"), CA: p("pki/ca.pem")},
			Operators: []Operator{{User: "ops", Password: "s3cret"}},
		},
		Cluster: &Cluster{
			Name:   "mevents",
			Listen: "0.0.0.0:6222",
			Routes: []string{"nats-route://n1.example:6222", "nats-route://n2.example:6222", "nats-route://n3.example:6222"},
			TLS:    TLS{Cert: p("pki/n1.pem"), Key: p("pki/n1-key.pem"), CA: p("pki/ca.pem")},
		},
		JetStream:       JetStream{MaxStore: 100 << 30, MaxMemory: 1 << 30, Sync: SyncAlways},
		Registry:        p("registry.yaml"),
		Log:             Log{Level: "debug"},
		Delivery:        Delivery{AckTimeout: DefaultAckTimeout},
		ShutdownTimeout: DefaultShutdownTimeout,
	}
	if !reflect.DeepEqual(n, want) {
		t.Fatalf("LoadNode=\n%+v\nwant\n%+v", n, want)
	}
	if n.SingleNode() {
		t.Fatal("SingleNode()=true with three routes")
	}
	if n.RegistryOptions().SingleNode {
		t.Fatal("RegistryOptions().SingleNode=true with three routes")
	}
	if got := n.Log.SlogLevel(); got != slog.LevelDebug {
		t.Fatalf("SlogLevel()=%v, want debug", got)
	}
}

func TestLoadNodeDefaults(t *testing.T) {
	n, err := LoadNode("testdata/node/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := abs(t, "testdata/node")
	want := &Node{
		Node: NodeSection{Name: "dev", DataDir: filepath.Join(dir, "data")},
		API: API{Listen: ":8443", TLS: APITLS{
			Cert:     "/etc/mevents/dev.pem",
			Key:      "/etc/mevents/dev-key.pem",
			ClientCA: filepath.Join(filepath.Dir(dir), "ca.pem"),
		}},
		Ops:             Ops{Listen: "127.0.0.1:9090"},
		JetStream:       JetStream{MaxStore: 10 << 30, MaxMemory: 256 << 20, Sync: SyncAlways},
		Registry:        filepath.Join(dir, "registry.yaml"),
		Log:             Log{Level: "info"},
		Delivery:        Delivery{AckTimeout: DefaultAckTimeout},
		ShutdownTimeout: DefaultShutdownTimeout,
	}
	if !reflect.DeepEqual(n, want) {
		t.Fatalf("LoadNode=\n%+v\nwant\n%+v", n, want)
	}
	if !n.SingleNode() || !n.RegistryOptions().SingleNode {
		t.Fatal("SingleNode()=false without a cluster section")
	}
	if got := n.Log.SlogLevel(); got != slog.LevelInfo {
		t.Fatalf("SlogLevel()=%v, want info", got)
	}
}

func TestLoadNodeInvalid(t *testing.T) {
	testInvalid(t, "testdata/node/invalid", func(path string) error {
		_, err := LoadNode(path)
		return err
	})
}

func TestLoadNodeMissingFile(t *testing.T) {
	_, err := LoadNode(filepath.Join(t.TempDir(), "node.yaml"))
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("LoadNode: %v, want no such file", err)
	}
}

// validNode is a minimal valid Node built in code, as tests of other
// packages build theirs.
func validNode() Node {
	n := Node{
		Node: NodeSection{Name: "n1"},
		API:  API{TLS: APITLS{Cert: "n1.pem", Key: "n1-key.pem", ClientCA: "ca.pem"}},
	}
	n.Default()
	return n
}

func TestNodeValidate(t *testing.T) {
	for _, tt := range []struct {
		name   string
		modify func(n *Node)
		want   string // "" for valid
	}{
		{"defaults", func(n *Node) {}, ""},
		{"port 0", func(n *Node) { n.API.Listen = "127.0.0.1:0"; n.Ops.Listen = "[::1]:0" }, ""},
		{"sync interval", func(n *Node) { n.JetStream.Sync = Sync(time.Second) }, ""},
		{"negative sync", func(n *Node) { n.JetStream.Sync = Sync(-time.Second) }, `jetstream.sync: must be "always" or a positive duration`},
		{"negative size", func(n *Node) { n.JetStream.MaxStore = -1 }, "jetstream.maxStore: must be positive"},
		{"port range", func(n *Node) { n.API.Listen = ":65536" }, `api.listen: ":65536": port "65536" is not a number from 0 to 65535`},
		{"missing listen", func(n *Node) { n.Ops.Listen = "" }, "ops.listen: required"},
		{"empty cluster", func(n *Node) { n.Cluster = &Cluster{} }, "cluster.name: required"},
		{"cluster defaults", func(n *Node) { n.Cluster = &Cluster{}; n.Default() }, ""},
		{"route with tls scheme", func(n *Node) {
			n.Cluster = &Cluster{Routes: []string{"tls://10.0.0.1:6222", "nats://[::1]:6222"}}
			n.Default()
		}, ""},
		{"route port 0", func(n *Node) { n.Cluster = &Cluster{Routes: []string{"nats-route://n1:0"}}; n.Default() }, `port "0" is not a number from 1 to 65535`},
		{"route path", func(n *Node) { n.Cluster = &Cluster{Routes: []string{"nats-route://n1:6222/x"}}; n.Default() }, "a route has no path"},
		{"nats defaults", func(n *Node) {
			n.NATS = &NATS{TLS: TLS{Cert: "a", Key: "b"}, Operators: []Operator{{User: "a", Password: "b"}}}
			n.Default()
		}, ""},
		{"long name", func(n *Node) { n.Node.Name = strings.Repeat("n", 65) }, "at most 64 characters"},
		{"no registry", func(n *Node) { n.Registry = "" }, "registry: required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := validNode()
			tt.modify(&n)
			err := n.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate: %v, want an error containing %q", err, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.File != "" || e.Line != 0 {
				t.Fatalf("Validate: %#v, want an *Error without file", err)
			}
		})
	}
}

func TestNodeValidateAllProblems(t *testing.T) {
	var n Node
	err := n.Validate()
	for _, want := range []string{"node.name: required", "node.dataDir: required", "api.listen: required", "api.tls.cert: required", "log.level"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want it to report %q", err, want)
		}
	}
}

func TestSingleNode(t *testing.T) {
	for _, tt := range []struct {
		cluster *Cluster
		want    bool
	}{
		{nil, true},
		{&Cluster{Name: "c"}, true},
		{&Cluster{Routes: []string{"nats-route://n1:6222"}}, false},
	} {
		n := Node{Cluster: tt.cluster}
		if got := n.SingleNode(); got != tt.want {
			t.Errorf("SingleNode() with %+v = %v, want %v", tt.cluster, got, tt.want)
		}
	}
}
