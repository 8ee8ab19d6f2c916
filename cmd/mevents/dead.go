package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/mevents/mevents/gateway/client"
)

// runDead lists, redelivers and deletes the client's dead events:
// `mevents dead list|redeliver|delete`.
func runDead(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const usage = `Usage:
  mevents dead list [--limit N]          print the client's dead events as JSON lines, oldest first
  mevents dead redeliver ID… | --all     send dead events back to their group
  mevents dead delete ID… | --all        discard dead events
Flags --api --ca --cert --key as for consume (default: the dev system's demo-consumer).
Exit status 3 when an id is unknown (404), 1 when the service cannot be reached.
`
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return usagef("dead: list, redeliver or delete?")
		}
		return flag.ErrHelp
	}
	sub := args[0]
	fs := flag.NewFlagSet("dead "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	var a apiFlags
	a.register(fs, "demo-consumer")
	limit := fs.Int("limit", 0, "list: at most this many (0: all)")
	all := fs.Bool("all", false, "redeliver or delete: every dead event of the client")
	// Ids and flags in any order.
	var ids []string
	for rest := args[1:]; ; {
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		ids, rest = append(ids, fs.Arg(0)), fs.Args()[1:]
	}
	c, err := a.client()
	if err != nil {
		return fmt.Errorf("dead: %w", err)
	}
	defer c.Close()
	// each calls f for every dead event, page by page, up to max (0: all).
	each := func(max int, f func(client.DeadEvent) error) error {
		n := 0
		for cursor := ""; ; {
			page, err := c.ListDead(ctx, cursor, 0)
			if err != nil {
				return err
			}
			for _, d := range page.Items {
				if max > 0 && n == max {
					return nil
				}
				n++
				if err := f(d); err != nil {
					return err
				}
			}
			if cursor = page.Next; cursor == "" {
				return nil
			}
		}
	}
	var act func(context.Context, string) error
	verb := ""
	switch sub {
	case "list":
		if len(ids) > 0 || *all {
			return usagef("dead list takes no ids")
		}
		err := each(*limit, func(d client.DeadEvent) error {
			b, _ := json.Marshal(d)
			_, err := fmt.Fprintf(stdout, "%s\n", b)
			return err
		})
		if err != nil {
			return fmt.Errorf("dead list: %w", err)
		}
		return nil
	case "redeliver":
		act, verb = c.RedeliverDead, "redelivered"
	case "delete":
		act, verb = c.DeleteDead, "deleted"
	default:
		fmt.Fprint(stderr, usage)
		return usagef("dead: unknown command %q", sub)
	}
	if *all == (len(ids) > 0) {
		return usagef("dead %s: give dead-event ids or --all", sub)
	}
	if *all {
		// Collect first: acting while paging would move the cursor.
		if err := each(0, func(d client.DeadEvent) error { ids = append(ids, d.ID); return nil }); err != nil {
			return fmt.Errorf("dead %s: %w", sub, err)
		}
	}
	for _, id := range ids {
		if err := act(ctx, id); err != nil {
			return fmt.Errorf("dead %s %s: %w", sub, id, err)
		}
		fmt.Fprintf(stdout, "%s %s\n", verb, id)
	}
	return nil
}
