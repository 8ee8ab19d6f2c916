package broker

import (
	"strconv"
	"sync"
	"time"

	"github.com/mevents/mevents"
	"github.com/nats-io/nats.go/jetstream"
)

// Consumer groups. A group is an independent position of one client over
// the types routed to it: one cursor per type and partition (cursor.go),
// read and written by the instance of the group that owns the partition
// (consume.go). MaxDeliver is enforced by that instance, so that an event
// delivered too often moves to the dead-event store (dead.go).

// DefaultGroup is the group of a client that names none.
const DefaultGroup = "default"

// DefaultAckTimeout is how long a delivery may stay unacknowledged.
const DefaultAckTimeout = 30 * time.Second

// validGroupName reports whether g is 1 to 64 of A-Z a-z 0-9 _ -.
func validGroupName(g string) bool {
	if len(g) == 0 || len(g) > 64 {
		return false
	}
	for i := 0; i < len(g); i++ {
		switch c := g[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// ValidGroup returns an *Error (CodeInvalid) unless g is a valid group name.
func ValidGroup(g string) error {
	if !validGroupName(g) {
		return mevents.Errorf(mevents.CodeInvalid, "group %q is not valid: use 1 to 64 of A-Z a-z 0-9 _ -", g)
	}
	return nil
}

// Start says where a new group begins; the zero value is the oldest
// retained event. It applies only when the group is first used.
type Start struct {
	Latest bool      // only events accepted after the group was created
	Time   time.Time // events accepted at or after Time
}

func redoSubject(client, group, t string, p int) string {
	return "evredo." + client + "." + group + "." + t + "." + strconv.Itoa(p)
}

// groupCache remembers the dead-event stream (dead.go).
type groupCache struct {
	mu   sync.Mutex
	dead jetstream.Stream
}

func (n *Node) ackTimeout() time.Duration {
	if n.cfg.AckTimeout > 0 {
		return n.cfg.AckTimeout
	}
	return DefaultAckTimeout
}
