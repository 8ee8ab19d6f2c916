package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mevents/mevents/gateway/client"
)

// runProduce publishes events: one built from flags, or those of a file
// or of stdin (JSON lines, JSON objects or arrays of them), in batches:
// `mevents produce`.
func runProduce(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("produce", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a apiFlags
	a.register(fs, "demo-producer")
	typ := fs.String("type", "", "event type: publish one event built from the flags")
	source := fs.String("source", "/cli", "source of the event built from the flags")
	id := fs.String("id", "", "id of the event built from the flags (default: random)")
	subject := fs.String("subject", "", "subject of the event built from the flags")
	key := fs.String("partitionkey", "", "partition key of the event built from the flags")
	data := fs.String("data", "", "data of the event built from the flags: JSON, or @FILE")
	file := fs.String("file", "", "publish the events of FILE (- for stdin): JSON lines, objects or arrays")
	batch := fs.Int("batch", 100, "events per request")
	test := fs.Bool("test", false, "publish test events (POST /v1/test-events)")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage:
  mevents produce --type T [--source S] [--id ID] [--partitionkey K] [--subject S] [--data JSON|@FILE]
  mevents produce --file FILE          events of a file: JSON lines, objects or arrays
  mevents produce < events.jsonl       events from stdin
Prints {"count":n,"ids":[…]} per request. Exit status 3 when the service refuses
events (each problem is printed), 1 when it cannot be reached.

`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("produce: unexpected argument %q", fs.Arg(0))
	}
	if *batch < 1 {
		return usagef("produce: --batch must be at least 1")
	}
	c, err := a.client()
	if err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	defer c.Close()
	p := c.Producer(client.ProducerOptions{Test: *test})
	send := func(events []any) error {
		res, err := p.Publish(ctx, events...)
		if err != nil {
			return fmt.Errorf("produce: %w", err)
		}
		out, _ := json.Marshal(res)
		fmt.Fprintf(stdout, "%s\n", out)
		return nil
	}
	if *typ != "" {
		if *file != "" {
			return usagef("produce: --type builds one event; --file reads events: give one of them")
		}
		ev, err := flagEvent(*typ, *source, *id, *subject, *key, *data)
		if err != nil {
			return err
		}
		return send([]any{ev})
	}
	var in io.Reader = stdin
	switch *file {
	case "", "-":
		if *file == "" {
			if f, ok := stdin.(*os.File); ok {
				if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
					return usagef("produce: give --type, --file, or events on stdin (produce -h)")
				}
			}
		}
	default:
		f, err := os.Open(*file)
		if err != nil {
			return fmt.Errorf("produce: %w", err)
		}
		defer f.Close()
		in = f
	}
	dec := json.NewDecoder(bufio.NewReader(in))
	var pending []any
	n := 0
	for ; ; n++ {
		var v json.RawMessage
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return usagef("produce: the input is not JSON events: %v", err)
		}
		var events []json.RawMessage
		if strings.HasPrefix(strings.TrimSpace(string(v)), "[") {
			if err := json.Unmarshal(v, &events); err != nil {
				return usagef("produce: %v", err)
			}
		} else {
			events = []json.RawMessage{v}
		}
		for _, ev := range events {
			pending = append(pending, ev)
			if len(pending) == *batch {
				if err := send(pending); err != nil {
					return err
				}
				pending = nil
			}
		}
	}
	if n == 0 {
		return usagef("produce: no events in the input")
	}
	if len(pending) > 0 {
		return send(pending)
	}
	return nil
}

// flagEvent builds one structured event.
func flagEvent(typ, source, id, subject, key, data string) (json.RawMessage, error) {
	if id == "" {
		var b [12]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	ev := map[string]any{"specversion": "1.0", "type": typ, "source": source, "id": id}
	if subject != "" {
		ev["subject"] = subject
	}
	if key != "" {
		ev["partitionkey"] = key
	}
	if data != "" {
		raw := []byte(data)
		if name, ok := strings.CutPrefix(data, "@"); ok {
			b, err := os.ReadFile(name)
			if err != nil {
				return nil, fmt.Errorf("produce: --data: %w", err)
			}
			raw = b
		}
		if !json.Valid(raw) {
			return nil, usagef("produce: --data is not JSON")
		}
		ev["datacontenttype"] = "application/json"
		ev["data"] = json.RawMessage(raw)
	}
	return json.Marshal(ev)
}
