// Package browsertest runs scripts in a real headless Chromium for tests,
// in the spirit of net/http/httptest: a test hands it a page to open, a
// client certificate to present and a few lines of JavaScript, and gets
// back what the script returned.
//
// It drives Debian's chromium through npm's playwright-core, both found on
// the machine (.ci/run installs them):
//
//	MEVENTS_CHROMIUM    the browser; default /usr/bin/chromium, then chromium on PATH
//	MEVENTS_PLAYWRIGHT  the playwright-core package directory;
//	                    default $HOME/.cache/mevents-browser/node_modules/playwright-core
//	MEVENTS_BROWSER     "require": a missing browser fails the test instead of skipping it
//
// A script is the body of an async function of (page, context, input);
// what it returns comes back as JSON. Playwright presents the client
// certificate itself (its clientCertificates option), so the browser
// needs no certificate store, and it keeps the connection's protocol:
// a page served over HTTP/2 is read over HTTP/2.
package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Version is the playwright-core version .ci/run installs.
const Version = "1.64.1"

// Browser is a Chromium that scripts run in, each in a browser of its own.
type Browser struct {
	node, chromium, playwright string
}

// New finds the browser, or skips the test (fails it with
// MEVENTS_BROWSER=require) when something is missing.
func New(t testing.TB) *Browser {
	t.Helper()
	b, missing := find()
	if missing != "" {
		msg := "browser test: " + missing + " (.ci/run installs it; see the README)"
		if os.Getenv("MEVENTS_BROWSER") == "require" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return b
}

func find() (*Browser, string) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, "node is not installed"
	}
	chromium := os.Getenv("MEVENTS_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
		if _, err := os.Stat(chromium); err != nil {
			if chromium, err = exec.LookPath("chromium"); err != nil {
				return nil, "chromium is not installed"
			}
		}
	}
	pw := os.Getenv("MEVENTS_PLAYWRIGHT")
	if pw == "" {
		home, _ := os.UserHomeDir()
		pw = filepath.Join(home, ".cache", "mevents-browser", "node_modules", "playwright-core")
	}
	if _, err := os.Stat(filepath.Join(pw, "package.json")); err != nil {
		return nil, "playwright-core is not installed in " + pw
	}
	return &Browser{node: node, chromium: chromium, playwright: pw}, ""
}

// Page is what one run opens.
type Page struct {
	// URL is opened before the script runs; empty opens nothing.
	URL string
	// CertFile and KeyFile (PEM) are presented to Origin
	// (https://host:port) when it asks for a client certificate.
	Origin, CertFile, KeyFile string
	// Input is handed to the script as input, as JSON.
	Input any
	// Script is the body of an async function (page, context, input).
	Script string
	// Screenshot, when set, is where a PNG of the page is written after
	// the script.
	Screenshot string
	// Timeout bounds the whole run; default 60 s.
	Timeout time.Duration
}

// runner launches Chromium, opens the page and runs the script; its one
// argument is the run's JSON, its output the script's result as JSON.
const runner = `
const fs = require('fs');
const run = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const { chromium } = require(run.playwright);
(async () => {
  const browser = await chromium.launch({ executablePath: run.chromium, args: ['--no-sandbox',
    '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'] });
  try {
    const options = { ignoreHTTPSErrors: true };
    if (run.origin) options.clientCertificates = [{ origin: run.origin, certPath: run.cert, keyPath: run.key }];
    const context = await browser.newContext(options);
    const page = await context.newPage();
    if (run.url) await page.goto(run.url);
    const f = new (Object.getPrototypeOf(async function () {}).constructor)('page', 'context', 'input', run.script);
    const result = await f(page, context, run.input);
    if (run.screenshot) await page.screenshot({ path: run.screenshot, fullPage: true });
    process.stdout.write(JSON.stringify(result === undefined ? null : result));
  } finally {
    await browser.close();
  }
})().catch((e) => { process.stderr.write(String(e && e.stack || e)); process.exit(1); });
`

// Run runs p in a fresh browser and returns what its script returned;
// the test fails when the script throws or the run takes too long.
func (b *Browser) Run(t testing.TB, p Page) json.RawMessage {
	t.Helper()
	timeout := p.Timeout
	if timeout == 0 {
		timeout = time.Minute
	}
	dir := t.TempDir()
	input, err := json.Marshal(map[string]any{
		"playwright": b.playwright, "chromium": b.chromium, "url": p.URL, "origin": p.Origin,
		"cert": p.CertFile, "key": p.KeyFile, "input": p.Input, "script": p.Script, "screenshot": p.Screenshot,
	})
	if err != nil {
		t.Fatal(err)
	}
	runFile, script := filepath.Join(dir, "run.json"), filepath.Join(dir, "runner.js")
	if err := os.WriteFile(runFile, input, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(script, []byte(runner), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.node, script, runFile)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir) // a profile of its own
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("browser: %v\n%s", err, stderr.Bytes())
	}
	return stdout.Bytes()
}
