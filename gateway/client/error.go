package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error is an answer of the API other than success: an RFC 9457 problem
// detail. Producing answers with one Problem per failing event.
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Type is the problem type, e.g. urn:mevents:error:invalid.
	Type   string
	Title  string
	Detail string
	// RequestID identifies the request in the service's logs.
	RequestID string
	// Problems lists each failing event of a produce request.
	Problems []Problem
	// RetryAfter is the server's Retry-After, or 0.
	RetryAfter time.Duration
}

// Problem is one failing event of a produce request.
type Problem struct {
	// Index is the event's position in the request, 0-based.
	Index   int    `json:"index"`
	ID      string `json:"id,omitempty"`
	Pointer string `json:"pointer,omitempty"`
	Keyword string `json:"keyword,omitempty"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", e.Status, http.StatusText(e.Status))
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	for i, p := range e.Problems {
		if i == 5 {
			fmt.Fprintf(&b, "; and %d more", len(e.Problems)-i)
			break
		}
		fmt.Fprintf(&b, "; event %d", p.Index)
		if p.ID != "" {
			fmt.Fprintf(&b, " (id %s)", p.ID)
		}
		if p.Pointer != "" {
			fmt.Fprintf(&b, " at %s", p.Pointer)
		}
		b.WriteString(": " + p.Message)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " [request %s]", e.RequestID)
	}
	return b.String()
}

// Temporary reports whether trying again later may succeed: 429 and 503
// (and other 5xx).
func (e *Error) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// StatusOf returns the HTTP status of an *Error in err's chain, or 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// responseError makes an *Error of a non-2xx answer.
func responseError(resp *http.Response, body []byte) *Error {
	e := &Error{Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
	var p struct {
		Type, Title, Detail, RequestID string
		Errors                         []Problem
	}
	if json.Unmarshal(body, &p) == nil {
		e.Type, e.Title, e.Detail, e.Problems = p.Type, p.Title, p.Detail, p.Errors
		if p.RequestID != "" {
			e.RequestID = p.RequestID
		}
	} else if s := strings.TrimSpace(string(body)); s != "" {
		e.Detail = s
		if len(e.Detail) > 300 {
			e.Detail = e.Detail[:300] + "…"
		}
	}
	if e.Title == "" {
		e.Title = http.StatusText(resp.StatusCode)
	}
	e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"))
	return e
}

// retryAfter reads a Retry-After value in seconds or as an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
