package main

import (
	"bytes"
	"log/slog"
	"regexp"
	"testing"
	"time"
)

// The dev system's log: a request is one readable line, nats-server's
// notices (its banner) stay below the default level.
func TestDevLog(t *testing.T) {
	tests := []struct {
		name  string
		level slog.Level
		log   func(l *slog.Logger)
		want  string // a regexp of the whole output; "" for nothing
	}{
		{"request", slog.LevelInfo, func(l *slog.Logger) {
			l.With("component", "gateway").Info("request", "requestId", "ab12", "method", "POST", "path", "/v1/events",
				"status", 202, "latency", 3141592*time.Nanosecond, "proto", "HTTP/2.0", "client", "demo-producer", "events", 1)
		}, `^\d\d:\d\d:\d\d\.\d{3} INFO  POST /v1/events 202 3\.14ms client=demo-producer events=1\n$`},
		{"nats banner hidden", slog.LevelInfo, func(l *slog.Logger) {
			l.With("component", "nats").Info("Starting nats-server")
		}, ""},
		{"nats banner at debug", slog.LevelDebug, func(l *slog.Logger) {
			l.With("component", "nats").Info("Starting nats-server")
		}, `^\S+ DEBUG \[nats\] Starting nats-server\n$`},
		{"nats warning", slog.LevelInfo, func(l *slog.Logger) {
			l.With("component", "nats").Warn("JetStream has not established contact with a meta leader")
		}, `^\S+ WARN  \[nats\] JetStream has not established contact with a meta leader\n$`},
		{"attributes", slog.LevelInfo, func(l *slog.Logger) {
			l.With("component", "broker").Info("node ready", "name", "dev", "note", "two words")
		}, `^\S+ INFO  \[broker\] node ready name=dev note="two words"\n$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			tt.log(slog.New(newDevHandler(&out, tt.level)))
			if tt.want == "" {
				if out.Len() != 0 {
					t.Fatalf("logged %q, want nothing", out.String())
				}
				return
			}
			if !regexp.MustCompile(tt.want).Match(out.Bytes()) {
				t.Fatalf("logged %q, want %s", out.String(), tt.want)
			}
		})
	}
}
