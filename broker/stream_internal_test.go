package broker

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestAttempts: each attempt has its own deadline within the caller's
// context, attempts stop at the first success, and a context that has
// ended makes none.
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
	cancel()
	if err := attempts(ctx, func(context.Context) error { n++; return nil }); !errors.Is(err, context.Canceled) || n != 5 {
		t.Fatalf("after the context ended: %v, %d more attempts", err, n-5)
	}
}
