package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mevents/mevents/gateway/gatewaytest"
)

// TestMain runs the tests with WebSockets over HTTP/2 enabled; with
// MEVENTS_TEST_MAIN=1 the test binary is mevents itself, for tests that
// run printed commands in a shell (see meventsOnPath).
func TestMain(m *testing.M) {
	if os.Getenv("MEVENTS_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(gatewaytest.Main(m))
}

// meventsOnPath puts a `mevents` that is this test binary first on PATH
// and returns the environment for commands.
func meventsOnPath(t *testing.T, api string) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	script := "#!/bin/sh\nMEVENTS_TEST_MAIN=1 exec " + exe + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "mevents"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "MEVENTS_API="+api)
}

// shell runs a command line in dir and returns its stdout; a failure
// fails the test unless wantExit says which status it must end with.
func shell(t *testing.T, dir string, env []string, line string, wantExit int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", line)
	cmd.Dir, cmd.Env = dir, env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	if code != wantExit {
		t.Fatalf("%s\nexited %d, want %d\nstdout: %s\nstderr: %s", line, code, wantExit, out, stderr.String())
	}
	return string(out)
}

// TestQuickStart runs the README's quick start in a directory whose
// .mevents-dev is a running development system: produce, consume and
// acknowledge, a dead event, its redelivery.
func TestQuickStart(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m, dir := runDevSystemIn(t, ".mevents-dev")
	env := meventsOnPath(t, "https://"+m.API.Addr())
	// The quick start's shell block that walks the client commands.
	text := string(readme)
	start := strings.Index(text, "<!-- quickstart-walk -->")
	if start < 0 {
		t.Fatal("README has no <!-- quickstart-walk --> block")
	}
	block := text[start:]
	block = block[strings.Index(block, "```sh\n")+6:]
	block = block[:strings.Index(block, "```")]
	var outputs []string
	ran := 0
	sc := bufio.NewScanner(strings.NewReader(block))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.Replace(line, "go run ./cmd/mevents ", "mevents ", 1)
		out := shell(t, filepath.Dir(dir), env, line, 0)
		outputs = append(outputs, out)
		ran++
	}
	if ran < 5 {
		t.Fatalf("ran %d commands of the quick start", ran)
	}
	all := strings.Join(outputs, "\n")
	for _, want := range []string{`"count":1`, `"ackid"`, `"reason"`, "redelivered"} {
		if !strings.Contains(all, want) {
			t.Fatalf("the quick start printed no %s:\n%s", want, all)
		}
	}
	// Nothing is left: the redelivered event was consumed and acknowledged.
	out := shell(t, filepath.Dir(dir), env, "mevents dead list", 0)
	if strings.TrimSpace(out) != "" {
		t.Fatalf("dead events left: %s", out)
	}
}

// TestConsumeExec: --exec acknowledges on 0, releases on failure (the
// event comes again), --no-ack leaves events to come again.
func TestConsumeExec(t *testing.T) {
	m, dir := runDevSystem(t)
	pki := filepath.Join(dir, "pki")
	env := meventsOnPath(t, "https://"+m.API.Addr())
	flags := func(name string) string {
		return " --ca " + filepath.Join(pki, "ca.pem") + " --cert " + filepath.Join(pki, name+".pem") + " --key " + filepath.Join(pki, name+"-key.pem")
	}
	data, err := os.ReadFile(filepath.Join(dir, "examples", "process-order-status.data.json"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, id := range []string{"e1", "e2"} {
		ev, _ := json.Marshal(map[string]any{"specversion": "1.0", "type": "com.example.mes.processorder.statuschanged",
			"source": "/t", "id": id, "partitionkey": "k", "data": json.RawMessage(data)})
		lines = append(lines, string(ev))
	}
	if err := os.WriteFile(filepath.Join(dir, "events.jsonl"), []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := shell(t, dir, env, "mevents produce --batch 1 < events.jsonl"+flags("demo-producer"), 0)
	if strings.Count(out, `"count":1`) != 2 {
		t.Fatalf("produce printed %q, want two requests of one event", out)
	}
	// The first attempt at e1 fails: it is released, e2 waits behind it.
	marker := filepath.Join(dir, "failed-once")
	cmd := `read ev; if [ "$MEVENTS_EVENT_ID" = e1 ] && [ ! -e ` + marker + ` ]; then touch ` + marker + `; exit 1; fi; echo "$MEVENTS_EVENT_ID $MEVENTS_DELIVERY_COUNT"`
	out = shell(t, dir, env, "mevents consume --group exec --types com.example.mes.processorder.statuschanged --max 2 --release-delay 10ms --exec '"+cmd+"'"+flags("demo-consumer"), 0)
	if !strings.HasPrefix(out, "e1 2\ne2 ") || strings.Count(out, "\n") != 2 {
		t.Fatalf("--exec printed %q, want e1 (its second delivery), then e2", out)
	}
	// --no-ack: printed, not acknowledged, so a new consume sees it again.
	for i := 0; i < 2; i++ {
		out = shell(t, dir, env, "mevents consume --group peek --types com.example.mes.processorder.statuschanged --max 1 --no-ack"+flags("demo-consumer"), 0)
		var ev map[string]any
		if err := json.Unmarshal([]byte(out), &ev); err != nil || ev["id"] != "e1" {
			t.Fatalf("consume --no-ack printed %q", out)
		}
	}
	// Readable refusals with exit status 3.
	shell(t, dir, env, "mevents consume --types no.such.type"+flags("demo-consumer"), 3)
	shell(t, dir, env, "mevents dead redeliver nope"+flags("demo-consumer"), 3)
	shell(t, dir, env, "mevents produce --type md.gov.person.registered --data '{}'"+flags("demo-producer"), 3)
	shell(t, dir, env, "mevents consume --bogus", 2)
}
