package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// devHandler writes the development system's log for a person reading a
// terminal: one short line per record, a request as
//
//	12:04:05.123 INFO  POST /v1/events 202 3.1ms client=demo-producer events=1
//
// and nats-server's routine notices (its start banner among them) at
// debug level, below the default. `mevents serve` keeps JSON lines.
type devHandler struct {
	mu    *sync.Mutex
	w     io.Writer
	level slog.Leveler
	attrs []slog.Attr
	nats  bool // the records of the component "nats"
}

func newDevHandler(w io.Writer, level slog.Leveler) *devHandler {
	return &devHandler{mu: &sync.Mutex{}, w: w, level: level}
}

// levelOf demotes nats-server's notices to debug.
func (h *devHandler) levelOf(l slog.Level) slog.Level {
	if h.nats && l == slog.LevelInfo {
		return slog.LevelDebug
	}
	return l
}

func (h *devHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.levelOf(l) >= h.level.Level()
}

func (h *devHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	for _, a := range attrs {
		if a.Key == "component" && a.Value.String() == "nats" {
			c.nats = true
		}
	}
	return &c
}

// WithGroup is not used by mevents' logs; attributes stay flat.
func (h *devHandler) WithGroup(string) slog.Handler { return h }

func (h *devHandler) Handle(_ context.Context, r slog.Record) error {
	attrs := append([]slog.Attr(nil), h.attrs...)
	r.Attrs(func(a slog.Attr) bool { attrs = append(attrs, a); return true })
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-5s ", r.Time.Format("15:04:05.000"), h.levelOf(r.Level))
	skip := map[string]bool{"component": true}
	if r.Message == "request" {
		get := func(k string) string {
			for _, a := range attrs {
				if a.Key == k {
					if a.Value.Kind() == slog.KindDuration {
						return roundDuration(a.Value.Duration()).String()
					}
					return a.Value.String()
				}
			}
			return ""
		}
		fmt.Fprintf(&b, "%s %s %s %s", get("method"), get("path"), get("status"), get("latency"))
		for _, k := range []string{"method", "path", "status", "latency", "proto", "requestId"} {
			skip[k] = true
		}
	} else {
		for _, a := range attrs {
			if a.Key == "component" {
				fmt.Fprintf(&b, "[%s] ", a.Value.String())
			}
		}
		b.WriteString(r.Message)
	}
	for _, a := range attrs {
		if !skip[a.Key] {
			v := a.Value.String()
			if strings.ContainsAny(v, " \t\"=") || v == "" {
				v = fmt.Sprintf("%q", v)
			}
			fmt.Fprintf(&b, " %s=%s", a.Key, v)
		}
	}
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

// roundDuration keeps three significant digits or so: 3.142ms, 12.3s.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}
