package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// DeadEvent is an event a consumer reported dead, or one delivered more
// than its maximum times.
type DeadEvent struct {
	ID     string `json:"id"`
	Group  string `json:"group"`
	Reason string `json:"reason"`
	// Origin is "consumer" or "maxDeliver".
	Origin        string          `json:"origin"`
	DeliveryCount int             `json:"deliveryCount"`
	DeadAt        time.Time       `json:"deadAt"`
	Event         json.RawMessage `json:"event"`
}

// DeadPage is one page of dead events, oldest first; Next is the cursor of
// the next page, "" on the last.
type DeadPage struct {
	Items []DeadEvent `json:"items"`
	Next  string      `json:"next"`
}

// ListDead returns a page of the caller's dead events: up to limit (0:
// the server's default of 100) from cursor ("" for the first page).
func (c *Client) ListDead(ctx context.Context, cursor string, limit int) (DeadPage, error) {
	q := url.Values{}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var page struct {
		Items []DeadEvent `json:"items"`
		Next  *string     `json:"next"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/v1/dead-events", q, "", nil, 0, &page); err != nil {
		return DeadPage{}, err
	}
	out := DeadPage{Items: page.Items}
	if page.Next != nil {
		out.Next = *page.Next
	}
	return out, nil
}

// RedeliverDead sends a dead event back to its group; it leaves the store.
// An unknown id is an *Error with Status 404.
func (c *Client) RedeliverDead(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodPost, "/v1/dead-events/"+url.PathEscape(id)+"/redeliver", nil, "", nil, 0, nil)
	return err
}

// DeleteDead discards a dead event. An unknown id is an *Error with Status 404.
func (c *Client) DeleteDead(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/v1/dead-events/"+url.PathEscape(id), nil, "", nil, 0, nil)
	return err
}
