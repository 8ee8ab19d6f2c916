package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Naming of streams and subjects. Every event type has one stream:
//
//	stream   EV_<type with "." replaced by "_">     md.gov.person.registered → EV_md_gov_person_registered
//	subjects ev.<type>.<partition>                   events:      ev.md.gov.person.registered.7
//	         evtest.<client>.<type>.<partition>      test events: evtest.demo-consumer.md.gov.person.registered.7
//	         evredo.<client>.<group>.<type>.<partition>  dead events sent back to one group (dead.go)
//
// Type names are dot-separated tokens of [A-Za-z0-9_-] (checked when the
// registry is loaded, which also rejects two types with one stream name), so
// a subject of one type never matches the subjects of another: the subjects
// of two types have different token counts or differ in a literal token.

// StreamName returns the name of the stream of event type t.
func StreamName(t string) string { return "EV_" + strings.ReplaceAll(t, ".", "_") }

// Subject returns the subject an event of type t in partition p is stored
// under; testFor, when not empty, is the client a test event belongs to.
func Subject(t string, p int, testFor string) string {
	if testFor != "" {
		return "evtest." + testFor + "." + t + "." + strconv.Itoa(p)
	}
	return "ev." + t + "." + strconv.Itoa(p)
}

func streamSubjects(t string) []string {
	return []string{"ev." + t + ".*", "evtest.*." + t + ".*", "evredo.*.*." + t + ".*"}
}

func (n *Node) streamConfig(t *EventType) jetstream.StreamConfig {
	replicas := t.Replicas
	if replicas == 0 {
		replicas = DefaultReplicas
	}
	if !n.cfg.Clustered() {
		replicas = 1
	}
	retention, dedup := t.Retention, t.DedupWindow
	if retention == 0 {
		retention = DefaultRetention
	}
	if dedup == 0 {
		dedup = DefaultDedupWindow
	}
	if dedup > retention {
		dedup = retention
	}
	return jetstream.StreamConfig{
		Name:        StreamName(t.Name),
		Description: "mevents event type " + t.Name,
		Subjects:    streamSubjects(t.Name),
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		MaxAge:      retention,
		Duplicates:  dedup,
		Discard:     jetstream.DiscardOld,
		Retention:   jetstream.LimitsPolicy,
		AllowDirect: true,
		// A request of one type is stored as one batch (publish_atomic.go).
		AllowAtomicPublish: true,
	}
}

// ApplyRegistry makes reg the node's registry: it creates the stream of
// every new event type and updates changed ones. Streams of types that left
// the registry are kept (their events stay until retention) and logged. On
// error the previous registry stays in force.
func (n *Node) ApplyRegistry(ctx context.Context, reg *Registry) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i := range reg.Types {
		if err := n.ensureStream(ctx, &reg.Types[i]); err != nil {
			return err
		}
	}
	n.registry.Store(reg)
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		ctx, cancel := context.WithTimeout(n.bgCtx, time.Minute)
		defer cancel()
		n.upgradeGroups(ctx, reg)
	}()
	return nil
}

// Registry returns the registry in force, or nil before ApplyRegistry.
func (n *Node) Registry() *Registry { return n.registry.Load() }

func (n *Node) ensureStream(ctx context.Context, t *EventType) error {
	want := n.streamConfig(t)
	// Nodes of a cluster apply the same registry at the same time; a
	// create that loses the race is retried as an update.
	err := attempts(ctx, func(ctx context.Context) error {
		s, err := n.js.Stream(ctx, want.Name)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			if _, err = n.js.CreateStream(ctx, want); err == nil {
				n.log.Info("stream created", "stream", want.Name, "type", t.Name, "replicas", want.Replicas)
			}
		case err == nil && !sameStream(s.CachedInfo().Config, want):
			if _, err = n.js.UpdateStream(ctx, want); err == nil {
				n.log.Info("stream updated", "stream", want.Name, "type", t.Name)
			}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("stream %s for event type %s: %w", want.Name, t.Name, err)
	}
	return nil
}

// apiAttempt bounds one attempt at a JetStream API request that attempts
// retries: a request JetStream never answers (seen right after a cluster
// formed) would otherwise wait out the caller's whole context.
const apiAttempt = 10 * time.Second

// attempts calls f, with a deadline of apiAttempt, until it returns nil,
// at most five times while ctx lasts, pausing 200 ms before the second and
// twice as long before each next (a cluster that has just formed refuses
// a stream for a moment: "no suitable peers for placement"); it returns
// f's last error, at once when that is one no retry can mend (permanent).
func attempts(ctx context.Context, f func(ctx context.Context) error) error {
	return attemptsPausing(ctx, 200*time.Millisecond, f)
}

// permanent says whether err is a JetStream API error that asking again
// within seconds cannot mend: a limit of the account or the server, or a
// configuration the server refuses. Anything else, "no suitable peers"
// included (a 400 as well), is worth another attempt.
func permanent(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	// nats-server's errors.json: JSMaximumConsumersLimitErr,
	// JSMaximumStreamsLimitErr, JSStorageResourcesExceededErr,
	// JSStreamInvalidConfigF, JSStreamReplicasNotSupportedErr,
	// JSStreamMaxBytesRequired, JSConsumerMaxPendingAckExcessErrF.
	switch apiErr.ErrorCode {
	case 10026, 10027, errCodeStorageExceeded, 10052, 10074, 10113, 10121:
		return true
	}
	return false
}

func attemptsPausing(ctx context.Context, pause time.Duration, f func(ctx context.Context) error) error {
	err := ctx.Err()
	for i := 0; i < 5 && ctx.Err() == nil; i++ {
		if i > 0 {
			select {
			case <-time.After(pause):
			case <-ctx.Done():
				return err
			}
			pause *= 2
		}
		actx, cancel := context.WithTimeout(ctx, apiAttempt)
		err = f(actx)
		cancel()
		if err == nil || permanent(err) {
			return err
		}
	}
	return err
}

func sameStream(a, b jetstream.StreamConfig) bool {
	return a.Replicas == b.Replicas && a.MaxAge == b.MaxAge && a.Duplicates == b.Duplicates &&
		a.AllowAtomicPublish == b.AllowAtomicPublish &&
		a.Description == b.Description && strings.Join(a.Subjects, " ") == strings.Join(b.Subjects, " ")
}
