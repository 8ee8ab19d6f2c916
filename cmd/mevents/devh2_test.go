package main

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mevents/mevents/broker/brokertest"
	"github.com/mevents/mevents/config"
	"github.com/mevents/mevents/gateway/browsertest"
	"github.com/mevents/mevents/gateway/gatewaytest"
	"gopkg.in/yaml.v3"
)

// TestDevWebSocketOverHTTP2: `mevents dev`, a process of a stock build
// started without GODEBUG, offers WebSockets over HTTP/2 (it restarts
// itself with http2xconnect=1): headless Chromium, presenting the dev
// system's demo-consumer certificate, reads a page over HTTP/2 and opens
// new WebSocket(…) on it, and the dev log shows the session as an HTTP/2
// extended CONNECT (an HTTP/1.1 upgrade is a GET).
func TestDevWebSocketOverHTTP2(t *testing.T) {
	b := browsertest.New(t)
	dir := filepath.Join(t.TempDir(), ".mevents-dev")
	if _, err := writeDevSystem(dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "node.yaml")
	cfg, err := config.LoadNode(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.API.Listen, cfg.Ops.Listen, cfg.NATS.Listen = brokertest.FreeAddr(t), brokertest.FreeAddr(t), brokertest.FreeAddr(t)
	data, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var env []string // this test binary runs with GODEBUG=http2xconnect=1 (gatewaytest.Main)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GODEBUG=") {
			env = append(env, kv)
		}
	}
	logs := &gatewaytest.LogBuffer{}
	cmd := exec.Command(buildBinary(t), "dev", "--dir", dir)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + cfg.Ops.Listen + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("mevents dev not ready within 60s:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond) // polling a condition
	}
	url := "https://" + cfg.API.Listen
	pki := filepath.Join(dir, "pki")
	out := b.Run(t, browsertest.Page{URL: url + "/v1/whoami", Origin: url,
		CertFile: filepath.Join(pki, "demo-consumer.pem"), KeyFile: filepath.Join(pki, "demo-consumer-key.pem"), Script: `
return await page.evaluate(() => new Promise((resolve, reject) => {
  const ws = new WebSocket('wss://' + location.host + '/v1/subscription/ws?group=h2', 'cloudevents.json');
  const timer = setTimeout(() => reject(new Error('timeout')), 30000);
  ws.onerror = () => reject(new Error('websocket error'));
  ws.onopen = () => {
    clearTimeout(timer);
    const protocol = ws.protocol;
    ws.close(1000);
    resolve({protocol, pageProto: performance.getEntriesByType('navigation')[0].nextHopProtocol});
  };
}));`})
	var got struct{ Protocol, PageProto string }
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if got.Protocol != "cloudevents.json" || got.PageProto != "h2" {
		t.Fatalf("browser got %s", out)
	}
	for !strings.Contains(logs.String(), "CONNECT /v1/subscription/ws 200") {
		if time.Now().After(deadline) {
			t.Fatalf("no WebSocket over HTTP/2 in the dev log:\n%s", logs.String())
		}
		time.Sleep(100 * time.Millisecond) // polling a condition
	}
}
