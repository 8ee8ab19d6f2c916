package broker

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestAttempts: each attempt has its own deadline within the caller's
// context, attempts stop at the first success or a permanent error, and a
// context that has ended makes none.
func TestAttempts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	var deadlines []time.Time
	err := attemptsPausing(ctx, time.Millisecond, func(ctx context.Context) error {
		d, _ := ctx.Deadline()
		deadlines = append(deadlines, d)
		if len(deadlines) < 3 {
			return errors.New("no answer")
		}
		return nil
	})
	if err != nil || len(deadlines) != 3 {
		t.Fatalf("got %v after %d attempts, want success at the third", err, len(deadlines))
	}
	for _, d := range deadlines {
		if left := time.Until(d); left > apiAttempt {
			t.Fatalf("an attempt had %v, want at most %v", left, apiAttempt)
		}
	}
	n := 0
	if err := attemptsPausing(ctx, time.Millisecond, func(context.Context) error { n++; return errors.New("no answer") }); err == nil || n != 5 {
		t.Fatalf("got %v after %d attempts, want the last error after 5", err, n)
	}
	// A limit or a refused configuration is not asked again; "no suitable
	// peers" (transient, right after a cluster formed) is.
	for _, c := range []struct {
		err  error
		want int
	}{
		{&jetstream.APIError{Code: 400, ErrorCode: 10026, Description: "maximum consumers limit reached"}, 1},
		{fmt.Errorf("consumer c on s: %w", &jetstream.APIError{Code: 500, ErrorCode: 10052, Description: "bad config"}), 1},
		{&jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement"}, 5},
	} {
		calls := 0
		if err := attemptsPausing(ctx, time.Millisecond, func(context.Context) error { calls++; return c.err }); !errors.Is(err, c.err) || calls != c.want {
			t.Fatalf("%v: got %v after %d attempts, want it after %d", c.err, err, calls, c.want)
		}
	}
	cancel()
	if err := attempts(ctx, func(context.Context) error { n++; return nil }); !errors.Is(err, context.Canceled) || n != 5 {
		t.Fatalf("after the context ended: %v, %d more attempts", err, n-5)
	}
}
