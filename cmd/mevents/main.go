// Command mevents runs the mevents event exchange service: one process is
// one node (an embedded NATS JetStream server and the HTTPS gateway).
//
//	mevents dev [--dir DIR]            a complete single-node development system
//	mevents serve --config node.yaml   one node of a cluster
//	mevents certs ca|node|client …     issue certificates
//	mevents watch …                    print the events routed to a client
//	mevents bench …                    measure a running system
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/gin-gonic/gin"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	gin.SetMode(gin.ReleaseMode)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "mevents:", err)
		os.Exit(1)
	}
}

const usage = `mevents — event exchange service

Usage:
  mevents dev [--dir DIR]                          run a complete development system (default DIR .mevents-dev)
  mevents serve --config node.yaml                 run one node until SIGINT/SIGTERM; SIGHUP reloads the registry
  mevents certs ca --out DIR                       issue a CA: DIR/ca.pem, DIR/ca-key.pem
  mevents certs node --name N --hosts h1,h2 --out DIR [--ca DIR]
  mevents certs client --name C --out DIR [--ca DIR]
  mevents certs revoke --cert C.pem --crl crl.pem --ca DIR   add a certificate to the CRL (api.tls.crl)
  mevents watch [--group G] [--types a,b]          print the events routed to a client, acknowledging them (watch -h)
  mevents bench [flags]                            measure a running system through its public API (bench -h)
`

// run executes one command line; it is main without the process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "dev":
		return runDev(ctx, args[1:], stdout, stderr)
	case "certs":
		return runCerts(args[1:], stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "watch":
		return runWatch(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}
