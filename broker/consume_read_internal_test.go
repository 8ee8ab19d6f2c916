package broker

import (
	"testing"
	"time"
)

// TestNextWait: a new consumer's reader asks after firstCheck whether its
// first pull was lost; a reader that has read asks after stallCheck; none
// waits past its park delay.
func TestNextWait(t *testing.T) {
	for _, tt := range []struct {
		first     bool
		parkDelay time.Duration
		want      time.Duration
	}{
		{true, parkAfter, firstCheck},
		{false, parkAfter, stallCheck},
		{true, 200 * time.Millisecond, 200 * time.Millisecond},
		{false, 2 * time.Second, 2 * time.Second},
	} {
		if got := nextWait(tt.first, tt.parkDelay); got != tt.want {
			t.Errorf("nextWait(%v, %v) = %v, want %v", tt.first, tt.parkDelay, got, tt.want)
		}
	}
	if firstCheck >= stallCheck {
		t.Errorf("firstCheck %v is not shorter than stallCheck %v", firstCheck, stallCheck)
	}
}
