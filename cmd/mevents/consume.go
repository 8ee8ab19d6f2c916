package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mevents/mevents/gateway/client"
)

// runConsume prints the events routed to a client as JSON lines and
// acknowledges them, or runs a command per event: `mevents consume`
// (and `mevents watch`, its former name, with group "watch").
func runConsume(ctx context.Context, name, defaultGroup string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a apiFlags
	a.register(fs, "demo-consumer")
	group := fs.String("group", defaultGroup, "consumer group (a new group starts at the oldest retained event, or at --start)")
	start := fs.String("start", "", "where a new group starts: latest or an RFC 3339 time (default: the oldest retained event)")
	types := fs.String("types", "", "comma-separated event types (default: all routed to the client)")
	maxEvents := fs.Int("max", 0, "stop after this many events (0: until interrupted)")
	noAck := fs.Bool("no-ack", false, "do not acknowledge: the events are delivered again after the ack timeout")
	execCmd := fs.String("exec", "", "run this shell command per event, the event's JSON on its stdin; exit 0 acknowledges, --dead-exit reports it dead, anything else releases")
	deadExit := fs.Int("dead-exit", 100, "the exit status of --exec that reports the event dead (to the dead-event store)")
	inFlight := fs.Int("max-in-flight", 100, "events held unsettled at once (credit)")
	releaseDelay := fs.Duration("release-delay", 5*time.Second, "how long a failed event waits before it comes again")
	longPoll := fs.Bool("long-poll", false, "long-poll over HTTPS instead of a WebSocket")
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: mevents %s [flags]
Prints each event as one JSON line and acknowledges it; with --exec, runs the
command per event instead (events of one partition key one at a time, in order;
other keys concurrently) and acknowledges on exit status 0, reports the event dead
on --dead-exit (100), releases it otherwise.
Runs until interrupted or --max events. Exit status 3 when the service refuses
the subscription, 1 when it cannot be reached.

`, name)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q", name, fs.Arg(0))
	}
	if *maxEvents < 0 || *inFlight < 1 {
		return usagef("%s: --max must be 0 or more, --max-in-flight 1 or more", name)
	}
	c, err := a.client()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer c.Close()
	o := client.ConsumerOptions{Group: *group, Start: *start, MaxInFlight: *inFlight, NoAck: *noAck,
		ReleaseDelay: *releaseDelay, LongPolling: *longPoll}
	if *types != "" {
		o.Types = strings.Split(*types, ",")
	}
	if *maxEvents > 0 {
		o.MaxInFlight = min(o.MaxInFlight, *maxEvents)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	handled := 0
	once := sync.Once{}
	o.OnConnect = func(proto string) {
		once.Do(func() {
			fmt.Fprintf(stderr, "consuming group %q at %s over %s (Ctrl-C to stop)\n", *group, a.api, proto)
		})
	}
	errMax := errors.New("past --max: released")
	err = c.Consumer(o).Consume(ctx, func(hctx context.Context, e *client.Event) error {
		mu.Lock()
		if *maxEvents > 0 && handled >= *maxEvents {
			mu.Unlock()
			return errMax
		}
		mu.Unlock()
		var result error
		if *execCmd != "" {
			result = runEventCommand(hctx, *execCmd, e, stdout, stderr)
			var exit *exec.ExitError
			switch {
			case result == nil:
			case errors.As(result, &exit) && exit.ExitCode() == *deadExit:
				fmt.Fprintf(stderr, "%s: event %s: %v; reported dead\n", name, e.ID, result)
				result = client.Poison(fmt.Sprintf("--exec %q exited %d", *execCmd, *deadExit), nil)
			default:
				fmt.Fprintf(stderr, "%s: event %s: %v; released\n", name, e.ID, result)
				return result
			}
		} else {
			mu.Lock()
			fmt.Fprintf(stdout, "%s\n", e.Raw)
			mu.Unlock()
		}
		// Acknowledged or dead: the event is done with.
		mu.Lock()
		handled++
		if *maxEvents > 0 && handled == *maxEvents {
			cancel()
		}
		mu.Unlock()
		return result
	})
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// runEventCommand runs command with the event on stdin and its attributes
// in MEVENTS_EVENT_* variables.
func runEventCommand(ctx context.Context, command string, e *client.Event, stdout, stderr io.Writer) error {
	cmd := exec.CommandContext(ctx, "sh", "-c", command)
	cmd.Stdin = bytes.NewReader(append(append([]byte(nil), e.Raw...), '\n'))
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Env = append(os.Environ(),
		"MEVENTS_EVENT_ID="+e.ID, "MEVENTS_EVENT_SOURCE="+e.Source, "MEVENTS_EVENT_TYPE="+e.Type,
		"MEVENTS_EVENT_SUBJECT="+e.Subject, "MEVENTS_PARTITION_KEY="+e.PartitionKey,
		"MEVENTS_DELIVERY_COUNT="+strconv.Itoa(e.DeliveryCount))
	return cmd.Run()
}
