package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/mevents/mevents"
	"github.com/nats-io/nats.go/jetstream"
)

// Maintenance mode is kept in the JetStream key-value bucket AdminBucket
// (replicated like the event streams: R3 in a cluster, R1 on a single node)
// under the key maintenanceKey, so that every node learns a change within
// moments of it being made on any node.
const (
	AdminBucket    = "mevents_admin"
	maintenanceKey = "maintenance"
)

// Maintenance is the cluster-wide maintenance mode. In maintenance,
// producers and consumers are refused (503) with Message; admins and
// the ops listener are not.
type Maintenance struct {
	Enabled bool   `json:"enabled"`
	Message string `json:"message"`
	// Since is when the mode was last changed; By names the admin client.
	Since time.Time `json:"since"`
	By    string    `json:"by,omitempty"`
}

func (n *Node) adminKV(ctx context.Context) (jetstream.KeyValue, error) {
	return n.bucket(ctx, &n.kv, jetstream.KeyValueConfig{Bucket: AdminBucket, Description: "mevents cluster-wide admin state",
		History: 5, Storage: jetstream.FileStorage}, "the admin state store is unavailable")
}

// bucket returns the key-value bucket cfg describes, creating it (with the
// cluster's replicas) on first use and keeping it in *slot.
func (n *Node) bucket(ctx context.Context, slot *jetstream.KeyValue, cfg jetstream.KeyValueConfig, unavailable string) (jetstream.KeyValue, error) {
	if !n.opened.Load() || n.closed.Load() {
		return nil, &mevents.Error{Code: mevents.CodeUnavailable, Message: "the node is not running", Err: ErrNotRunning}
	}
	select {
	case n.kvLock <- struct{}{}:
	case <-ctx.Done():
		return nil, &mevents.Error{Code: mevents.CodeUnavailable, Message: unavailable, Err: ctx.Err()}
	}
	defer func() { <-n.kvLock }()
	if *slot != nil {
		return *slot, nil
	}
	cfg.Replicas = DefaultReplicas
	if !n.cfg.Clustered() {
		cfg.Replicas = 1
	}
	// Nodes of a cluster start together; a create that loses the race is retried.
	err := attempts(ctx, func(ctx context.Context) error {
		kv, err := n.js.CreateOrUpdateKeyValue(ctx, cfg)
		if err == nil {
			*slot = kv
		}
		return err
	})
	if err != nil {
		return nil, &mevents.Error{Code: mevents.CodeUnavailable, Message: unavailable, Err: fmt.Errorf("key-value bucket %s: %w", cfg.Bucket, err)}
	}
	return *slot, nil
}

// SetMaintenance stores m as the cluster's maintenance mode; it returns
// once a quorum of the bucket's replicas has it. Errors are *Error with
// CodeUnavailable.
func (n *Node) SetMaintenance(ctx context.Context, m Maintenance) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultPublishTimeout)
		defer cancel()
	}
	kv, err := n.adminKV(ctx)
	if err != nil {
		return err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("maintenance: %w", err)
	}
	if _, err := kv.Put(ctx, maintenanceKey, b); err != nil {
		return &mevents.Error{Code: mevents.CodeUnavailable, Message: "the admin state store is unavailable", Err: fmt.Errorf("put maintenance: %w", err)}
	}
	return nil
}

// MaintenanceWatch follows the maintenance mode; Stop ends it.
type MaintenanceWatch struct {
	w    jetstream.KeyWatcher
	done chan struct{}
	once sync.Once
}

// Stop ends the watch and waits until the callback is no longer called.
func (w *MaintenanceWatch) Stop() {
	w.once.Do(func() {
		_ = w.w.Stop()
		<-w.done
	})
}

// WatchMaintenance calls fn with the current maintenance mode (the zero
// Maintenance when none was ever set) once the current value is known, and
// again on every change, from one goroutine, until Stop. It creates the
// admin bucket if needed; ctx bounds that and the first read only.
func (n *Node) WatchMaintenance(ctx context.Context, fn func(Maintenance)) (*MaintenanceWatch, error) {
	kv, err := n.adminKV(ctx)
	if err != nil {
		return nil, err
	}
	// The watch outlives ctx: it ends with Stop.
	kw, err := kv.Watch(context.WithoutCancel(ctx), maintenanceKey)
	if err != nil {
		return nil, &mevents.Error{Code: mevents.CodeUnavailable, Message: "the admin state store is unavailable", Err: fmt.Errorf("watch maintenance: %w", err)}
	}
	w := &MaintenanceWatch{w: kw, done: make(chan struct{})}
	initial := make(chan struct{})
	go func() {
		defer close(w.done)
		first, seen := true, false
		for e := range kw.Updates() {
			if e == nil { // the end of the current values
				if first {
					if !seen {
						fn(Maintenance{})
					}
					first = false
					close(initial)
				}
				continue
			}
			seen = true
			var m Maintenance // a deleted or purged key: off
			if e.Operation() == jetstream.KeyValuePut {
				if err := json.Unmarshal(e.Value(), &m); err != nil {
					n.log.Error("maintenance value unreadable; treated as off", "err", err)
					m = Maintenance{}
				}
			}
			fn(m)
		}
		if first {
			close(initial)
		}
	}()
	select {
	case <-initial:
		return w, nil
	case <-ctx.Done():
		w.Stop()
		return nil, &mevents.Error{Code: mevents.CodeUnavailable, Message: "the admin state store is unavailable", Err: fmt.Errorf("watch maintenance: %w", ctx.Err())}
	}
}
