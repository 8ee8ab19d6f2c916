package main

import (
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
