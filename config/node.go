package config

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Defaults of node.yaml, applied by Node.Default to the fields a file leaves
// out.
const (
	DefaultAPIListen     = ":8443"
	DefaultOpsListen     = "127.0.0.1:9090"
	DefaultNATSListen    = "127.0.0.1:4222"
	DefaultClusterName   = "mevents"
	DefaultClusterListen = "0.0.0.0:6222"
	DefaultDataDir       = "data"          // relative to node.yaml
	DefaultRegistry      = "registry.yaml" // relative to node.yaml
	DefaultMaxStore      = 10 << 30        // 10 GiB of JetStream file storage
	DefaultMaxMemory     = 256 << 20       // 256 MiB of JetStream memory storage
	DefaultLogLevel      = "info"
	// DefaultShutdownTimeout bounds a graceful stop (shutdownTimeout).
	DefaultShutdownTimeout = Duration(10 * time.Second)
)

// Node is the configuration of one node, read from its node.yaml. Build one
// with LoadNode, or in code followed by Default and Validate.
type Node struct {
	Node NodeSection `yaml:"node"`
	API  API         `yaml:"api"`
	Ops  Ops         `yaml:"ops"`
	// NATS is the operator port for the nats CLI; nil (no "nats" section)
	// means the node offers no such port.
	NATS *NATS `yaml:"nats,omitempty"`
	// Cluster is nil, or has no routes, on a single node (see SingleNode).
	Cluster   *Cluster  `yaml:"cluster,omitempty"`
	JetStream JetStream `yaml:"jetstream"`
	// Registry is the path of registry.yaml (default "registry.yaml").
	Registry string `yaml:"registry"`
	Log      Log    `yaml:"log"`
	// Delivery configures consumers; it must be the same on every node.
	Delivery Delivery `yaml:"delivery"`
	// ShutdownTimeout bounds a graceful stop after SIGINT/SIGTERM: the
	// process has ended when it has passed (default 10s).
	ShutdownTimeout Duration `yaml:"shutdownTimeout"`
}

// NodeSection names the node and its data.
type NodeSection struct {
	// Name is the NATS server name of the node, unique in the cluster: letters,
	// digits, '.', '_' and '-', at most 64 characters.
	Name string `yaml:"name"`
	// DataDir holds the node's JetStream storage (default "data").
	DataDir string `yaml:"dataDir"`
}

// API is the HTTPS gateway's listener. TLS is required: clients are
// identified by their certificates.
type API struct {
	Listen string `yaml:"listen"` // host:port, default ":8443"
	TLS    APITLS `yaml:"tls"`
}

// APITLS are the gateway's certificate and the CA its clients' certificates
// must chain to. All three are required.
type APITLS struct {
	Cert     string `yaml:"cert"`
	Key      string `yaml:"key"`
	ClientCA string `yaml:"clientCA"`
	// CRL, optional, is a certificate revocation list (PEM or DER) issued
	// by the client CA: certificates it revokes are refused in the TLS
	// handshake. It is read again on every reload.
	CRL string `yaml:"crl"`
}

// Ops is the plain-HTTP operations listener (/healthz, /readyz, /metrics).
type Ops struct {
	Listen string `yaml:"listen"` // host:port, default "127.0.0.1:9090"
	// Pprof serves Go's profiles under /debug/pprof/ (off by default: they
	// show the process's internals to whoever reaches the listener).
	Pprof bool `yaml:"pprof"`
}

// NATS is the NATS client port, for operators' nats CLI only. It always uses
// TLS (TLS.Cert and TLS.Key are required) because operators log in with a
// password; TLS.CA, when set, is the CA that a certificate an operator's
// client presents must chain to (a certificate is optional there; the
// password is not).
type NATS struct {
	Listen    string     `yaml:"listen"` // host:port, default "127.0.0.1:4222"
	TLS       TLS        `yaml:"tls"`
	Operators []Operator `yaml:"operators"` // at least one
}

// Operator is a user of the NATS port.
type Operator struct {
	User     string `yaml:"user"`
	Password string `yaml:"password"`
}

// Cluster is the node's place in a cluster: it listens for routes from its
// peers and connects to Routes (which may include the node itself).
type Cluster struct {
	Name   string   `yaml:"name"`   // default "mevents"; the same on every node
	Listen string   `yaml:"listen"` // host:port, default "0.0.0.0:6222"
	Routes []string `yaml:"routes"` // nats-route://host:port (also nats:// or tls://)
	// Advertise is the host:port peers are told to route to this node at
	// (route gossip); default: the listen address. For routes through
	// proxies or address translation.
	Advertise string `yaml:"advertise"`
	// TLS secures routes: Cert, Key and CA all set (each node verifies its
	// peers against CA), or none of them.
	TLS TLS `yaml:"tls"`
}

// TLS is a certificate, its key and the CA that peers' certificates must
// chain to.
type TLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	CA   string `yaml:"ca"`
}

// JetStream are the storage limits and the fsync policy of the node.
type JetStream struct {
	MaxStore  Size `yaml:"maxStore"`  // 10GiB when absent or 0
	MaxMemory Size `yaml:"maxMemory"` // 256MiB when absent or 0
	Sync      Sync `yaml:"sync"`      // default always
}

// Sync is the fsync policy of JetStream storage, "always" or a Go duration in
// YAML. SyncAlways (the zero value, and the default) writes every event to
// disk before it is acknowledged, so an acknowledged event survives power
// loss on all replicas at once; a positive interval syncs periodically
// instead, which is faster but may lose the last interval's events if every
// replica fails together.
type Sync time.Duration

// SyncAlways syncs every write.
const SyncAlways Sync = 0

// Always reports whether every write is synced.
func (s Sync) Always() bool { return s == SyncAlways }

// Interval is the time between syncs, 0 for Always.
func (s Sync) Interval() time.Duration { return time.Duration(s) }

func (s Sync) String() string {
	if s.Always() {
		return "always"
	}
	return time.Duration(s).String()
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Sync) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf(`want "always" or a duration, got a %s`, kindWord(n))
	}
	if n.Value == "always" {
		*s = SyncAlways
		return nil
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf(`%q is neither "always" nor a duration`, n.Value)
	}
	if d <= 0 {
		return fmt.Errorf(`%q: an interval must be positive (or use "always")`, n.Value)
	}
	*s = Sync(d)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (s Sync) MarshalYAML() (any, error) { return s.String(), nil }

// Delivery configures the delivery of events to consumers.
type Delivery struct {
	// AckTimeout is how long a delivered event may stay unacknowledged
	// before it is delivered again (default 30s). Each node applies its
	// own to the instances it serves, from its start (a reload does not
	// change it); keep it the same on every node.
	AckTimeout Duration `yaml:"ackTimeout"`
}

// DefaultAckTimeout is the default of delivery.ackTimeout.
const DefaultAckTimeout = Duration(30 * time.Second)

// Log configures the node's structured logs.
type Log struct {
	// Level is debug, info (the default), warn or error.
	Level string `yaml:"level"`
}

// SlogLevel returns Level as a slog.Level (info when Level is invalid; Validate reports that).
func (l Log) SlogLevel() slog.Level {
	var v slog.Level
	if v.UnmarshalText([]byte(l.Level)) != nil {
		return slog.LevelInfo
	}
	return v
}

// LoadNode reads, defaults and validates the node.yaml at path. Relative
// paths in it are resolved against the file's directory; the returned Node
// holds them absolute. Errors name the file, line, field and reason (see
// Error); all the problems of the file are reported together.
func LoadNode(path string) (*Node, error) {
	var n Node
	root, err := decodeFile(path, &n)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	n.Default()
	n.resolve(dir)
	if err := n.problems().inFile(path, root).err(); err != nil {
		return nil, err
	}
	return &n, nil
}

// Default fills every unset field with its default (see the Default…
// constants). It leaves NATS and Cluster nil when they are, and fills the
// defaults inside them when they are not.
func (n *Node) Default() {
	setDefault(&n.Node.DataDir, DefaultDataDir)
	setDefault(&n.API.Listen, DefaultAPIListen)
	setDefault(&n.Ops.Listen, DefaultOpsListen)
	if n.NATS != nil {
		setDefault(&n.NATS.Listen, DefaultNATSListen)
	}
	if n.Cluster != nil {
		setDefault(&n.Cluster.Name, DefaultClusterName)
		setDefault(&n.Cluster.Listen, DefaultClusterListen)
	}
	if n.JetStream.MaxStore == 0 {
		n.JetStream.MaxStore = DefaultMaxStore
	}
	if n.JetStream.MaxMemory == 0 {
		n.JetStream.MaxMemory = DefaultMaxMemory
	}
	setDefault(&n.Registry, DefaultRegistry)
	setDefault(&n.Log.Level, DefaultLogLevel)
	if n.Delivery.AckTimeout == 0 {
		n.Delivery.AckTimeout = DefaultAckTimeout
	}
	if n.ShutdownTimeout == 0 {
		n.ShutdownTimeout = DefaultShutdownTimeout
	}
}

func setDefault(field *string, value string) {
	if *field == "" {
		*field = value
	}
}

// SingleNode reports whether the node runs alone: no cluster section, or no
// routes. A single node stores one replica of each stream.
func (n *Node) SingleNode() bool { return n.Cluster == nil || len(n.Cluster.Routes) == 0 }

// RegistryOptions returns the options for loading this node's registry.
func (n *Node) RegistryOptions() RegistryOptions {
	return RegistryOptions{SingleNode: n.SingleNode()}
}

// resolve makes every path absolute, relative to dir (node.yaml's directory).
func (n *Node) resolve(dir string) {
	paths := []*string{&n.Node.DataDir, &n.Registry, &n.API.TLS.Cert, &n.API.TLS.Key, &n.API.TLS.ClientCA, &n.API.TLS.CRL}
	if n.NATS != nil {
		paths = append(paths, &n.NATS.TLS.Cert, &n.NATS.TLS.Key, &n.NATS.TLS.CA)
	}
	if n.Cluster != nil {
		paths = append(paths, &n.Cluster.TLS.Cert, &n.Cluster.TLS.Key, &n.Cluster.TLS.CA)
	}
	for _, p := range paths {
		*p = resolvePath(dir, *p)
	}
}

func resolvePath(dir, p string) string {
	if p == "" {
		return ""
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	return filepath.Clean(p)
}

// Validate reports every invalid or missing value of n as an *Error, joined
// with errors.Join, or nil. Call Default first: Validate does not fill in
// defaults, so a field left to its default is reported missing.
func (n *Node) Validate() error { return n.problems().err() }

// names are NATS server and cluster names: no spaces, nothing a file name or
// a subject would choke on.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

func (n *Node) problems() problems {
	var p problems
	if n.Node.Name == "" {
		p.add("node.name", "required")
	} else if !namePattern.MatchString(n.Node.Name) {
		p.add("node.name", "%q: a node name is letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64 characters", n.Node.Name)
	}
	required(&p, "node.dataDir", n.Node.DataDir)
	if n.Delivery.AckTimeout < Duration(time.Second) {
		p.add("delivery.ackTimeout", "%s: must be at least 1s", n.Delivery.AckTimeout)
	}
	if n.ShutdownTimeout < Duration(time.Second) {
		p.add("shutdownTimeout", "%s: must be at least 1s", n.ShutdownTimeout)
	}

	checkListen(&p, "api.listen", n.API.Listen)
	required(&p, "api.tls.cert", n.API.TLS.Cert)
	required(&p, "api.tls.key", n.API.TLS.Key)
	required(&p, "api.tls.clientCA", n.API.TLS.ClientCA)

	checkListen(&p, "ops.listen", n.Ops.Listen)

	if s := n.NATS; s != nil {
		checkListen(&p, "nats.listen", s.Listen)
		required(&p, "nats.tls.cert", s.TLS.Cert)
		required(&p, "nats.tls.key", s.TLS.Key)
		if len(s.Operators) == 0 {
			p.add("nats.operators", "at least one operator is required")
		}
		users := map[string]int{}
		for i, o := range s.Operators {
			field := fmt.Sprintf("nats.operators[%d]", i)
			if o.User == "" {
				p.add(field+".user", "required")
			} else if j, dup := users[o.User]; dup {
				p.add(field+".user", "%q is already used by nats.operators[%d]", o.User, j)
			} else {
				users[o.User] = i
			}
			if o.Password == "" {
				p.add(field+".password", "required")
			}
		}
	}

	if c := n.Cluster; c != nil {
		if c.Name == "" {
			p.add("cluster.name", "required")
		} else if !namePattern.MatchString(c.Name) {
			p.add("cluster.name", "%q: a cluster name is letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64 characters", c.Name)
		}
		checkListen(&p, "cluster.listen", c.Listen)
		if c.Advertise != "" {
			checkListen(&p, "cluster.advertise", c.Advertise)
		}
		for i, r := range c.Routes {
			checkRoute(&p, fmt.Sprintf("cluster.routes[%d]", i), r)
		}
		if t := c.TLS; t.Cert != "" || t.Key != "" || t.CA != "" {
			required(&p, "cluster.tls.cert", t.Cert)
			required(&p, "cluster.tls.key", t.Key)
			required(&p, "cluster.tls.ca", t.CA)
		}
	}

	if n.JetStream.MaxStore <= 0 {
		p.add("jetstream.maxStore", "must be positive")
	}
	if n.JetStream.MaxMemory <= 0 {
		p.add("jetstream.maxMemory", "must be positive")
	}
	if n.JetStream.Sync < 0 {
		p.add("jetstream.sync", `must be "always" or a positive duration`)
	}

	required(&p, "registry", n.Registry)
	switch n.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		p.add("log.level", "%q is not one of debug, info, warn, error", n.Log.Level)
	}
	return p
}

func required(p *problems, field, value string) {
	if value == "" {
		p.add(field, "required")
	}
}

// checkListen checks a listen address: host:port, where the host may be
// empty (every interface) and port 0 picks a free port.
func checkListen(p *problems, field, addr string) {
	if addr == "" {
		p.add(field, "required")
		return
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		p.add(field, "%q is not host:port", addr)
		return
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (port != "0" && n == 0) {
		p.add(field, "%q: port %q is not a number from 0 to 65535", addr, port)
	}
}

// checkRoute checks the URL of a route to a peer.
func checkRoute(p *problems, field, route string) {
	u, err := url.Parse(route)
	if err != nil || u.Host == "" {
		p.add(field, "%q is not a URL like nats-route://host:6222", route)
		return
	}
	switch u.Scheme {
	case "nats-route", "nats", "tls":
	default:
		p.add(field, "%q: scheme %q is not nats-route, nats or tls", route, u.Scheme)
		return
	}
	if u.Port() == "" || strings.HasSuffix(u.Host, ":") {
		p.add(field, "%q: a route needs a port", route)
	} else if n, err := strconv.ParseUint(u.Port(), 10, 16); err != nil || n == 0 {
		p.add(field, "%q: port %q is not a number from 1 to 65535", route, u.Port())
	}
	if u.Path != "" && u.Path != "/" {
		p.add(field, "%q: a route has no path", route)
	}
}
