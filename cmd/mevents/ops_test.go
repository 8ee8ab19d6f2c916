package main

import (
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

// TestOperations runs the development system and checks what the wiring
// adds: /metrics on the ops listener from the node's own registry, and the
// admin reload calling Main.Reload.
func TestOperations(t *testing.T) {
	m, dir := runDevSystem(t)
	pki := filepath.Join(dir, "pki")

	tests := []struct {
		name   string
		client string // "" for the ops listener
		method string
		url    string
		status int
		want   string
	}{
		{"metrics", "", http.MethodGet, "http://" + m.Ops.Addr() + "/metrics", 200, "\nmevents_jetstream_ready 1\n"},
		{"process metrics", "", http.MethodGet, "http://" + m.Ops.Addr() + "/metrics", 200, "\ngo_goroutines "},
		{"reload by an admin", "demo-admin", http.MethodPost, "https://" + m.API.Addr() + "/v1/admin/reload", 200, `"reloaded":true`},
		{"reload by a producer", "demo-producer", http.MethodPost, "https://" + m.API.Addr() + "/v1/admin/reload", 403, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := http.DefaultClient
			if tt.client != "" {
				c = mtlsClient(t, pki, tt.client)
			}
			req, _ := http.NewRequest(tt.method, tt.url, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(string(b), tt.want) {
				t.Fatalf("status=%d, want %d; body lacks %q:\n%.2000s", resp.StatusCode, tt.status, tt.want, b)
			}
		})
	}
}

// TestReadyzFollowsTheAPI checks that /readyz says ready only while the API
// listens: not while a node is still starting (its NATS node may be ready
// long before its streams are loaded and its API listens), and yes once
// it serves.
func TestReadyzFollowsTheAPI(t *testing.T) {
	m, _ := runDevSystem(t)
	if err := NewMain(m.Config, nil).Ready(); !errors.Is(err, errNotServing) {
		t.Fatalf("Ready of a node that has not opened = %v, want %v", err, errNotServing)
	}
	resp, err := http.Get("http://" + m.Ops.Addr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz of a serving node: %d %s", resp.StatusCode, b)
	}
}
