// Command mevents runs the mevents event exchange service: one process is
// one node (an embedded NATS JetStream server and the HTTPS gateway).
//
//	mevents dev [--dir DIR]            a complete single-node development system
//	mevents serve --config node.yaml   one node of a cluster
//	mevents certs ca|node|client …     issue certificates
//	mevents produce …                  publish events
//	mevents consume …                  print (or handle) the events routed to a client
//	mevents dead list|redeliver|delete manage the client's dead events
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
	"strings"
	"syscall"

	"github.com/gin-gonic/gin"
	"github.com/mevents/mevents/gateway"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "serve" || os.Args[1] == "dev") {
		enableExtendedConnect()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	gin.SetMode(gin.ReleaseMode)
	err := runIO(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "mevents:", err)
		os.Exit(exitCode(err))
	}
}

// enableExtendedConnect starts the process again with
// GODEBUG=http2xconnect=1 unless it is set: Go's HTTP/2 server offers
// WebSockets over HTTP/2 (RFC 8441) only with it, and reads it only when
// the process starts (see gateway.ExtendedConnectEnv). The process is
// replaced (same pid, arguments, descriptors), so supervisors see no
// difference. An operator's http2xconnect=0 is kept.
func enableExtendedConnect() {
	env, changed := gateway.ExtendedConnectEnv(os.Environ())
	if !changed {
		return
	}
	err := syscall.Exec("/proc/self/exe", os.Args, env)
	// Only when exec fails: serve on, without WebSockets over HTTP/2.
	fmt.Fprintln(os.Stderr, "mevents: WebSockets over HTTP/2 are off: cannot restart with GODEBUG=http2xconnect=1:", err)
}

const usage = `mevents — event exchange service

Usage:
  mevents dev [--dir DIR]                          run a complete development system (default DIR .mevents-dev)
  mevents serve --config node.yaml                 run one node until SIGINT/SIGTERM; SIGHUP reloads the registry
  mevents certs ca --out DIR                       issue a CA: DIR/ca.pem, DIR/ca-key.pem
  mevents certs node --name N --hosts h1,h2 --out DIR [--ca DIR]
  mevents certs client --name C --out DIR [--ca DIR]
  mevents certs revoke --cert C.pem --crl crl.pem --ca DIR   add a certificate to the CRL (api.tls.crl)
  mevents produce --type T [--data JSON|@FILE]     publish one event; or --file FILE, or JSON lines on stdin (produce -h)
  mevents consume [--group G] [--types a,b]        print the events routed to a client as JSON lines and acknowledge
                  [--max N] [--no-ack] [--exec CMD]  them; --exec runs CMD per event, acks on exit 0 (consume -h)
  mevents dead list|redeliver|delete [ID…|--all]   the client's dead events (dead -h)
  mevents watch …                                  the former name of consume (its default group: watch)
  mevents bench [flags]                            measure a running system through its public API (bench -h)

produce, consume and dead default to the development system (https://localhost:8443, .mevents-dev/pki).
Exit status: 0 success · 1 failure (network, TLS, service unavailable) · 2 wrong command line ·
3 the service refused the request (invalid events, not allowed, not found).
`

// run executes one command line with nothing on stdin.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runIO(ctx, args, strings.NewReader(""), stdout, stderr)
}

// runIO executes one command line; it is main without the process.
func runIO(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usagef("no command given")
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
	case "produce":
		return runProduce(ctx, args[1:], stdin, stdout, stderr)
	case "consume":
		return runConsume(ctx, "consume", "default", args[1:], stdout, stderr)
	case "watch":
		return runConsume(ctx, "watch", "watch", args[1:], stdout, stderr)
	case "dead":
		return runDead(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return usagef("unknown command %q", args[0])
	}
}
