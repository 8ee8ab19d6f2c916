package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"

	"github.com/mevents/mevents/gateway/client"
)

// Exit codes of mevents (documented in the usage and the README).
const (
	exitFailure  = 1 // the command failed: network, TLS, the service unavailable after retries
	exitUsage    = 2 // the command line is wrong
	exitRejected = 3 // the service refused the request (4xx): invalid events, not allowed, not found
)

// usageError is a wrong command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// exitCode maps an error of run to the process's exit status.
func exitCode(err error) int {
	var u *usageError
	var apiErr *client.Error
	switch {
	case errors.As(err, &u):
		return exitUsage
	case errors.As(err, &apiErr) && apiErr.Status >= 400 && apiErr.Status < 500 &&
		apiErr.Status != http.StatusTooManyRequests && apiErr.Status != http.StatusRequestTimeout:
		return exitRejected
	default:
		return exitFailure
	}
}

// apiFlags are the flags of the commands that call the API; the defaults
// point at `mevents dev`.
type apiFlags struct {
	api, ca, cert, key string
}

func (a *apiFlags) register(fs *flag.FlagSet, defaultClient string) {
	api := "https://localhost:8443"
	if v := os.Getenv("MEVENTS_API"); v != "" {
		api = v
	}
	fs.StringVar(&a.api, "api", api, "API base URL (default from $MEVENTS_API when set)")
	fs.StringVar(&a.ca, "ca", ".mevents-dev/pki/ca.pem", "CA certificate of the API (PEM)")
	fs.StringVar(&a.cert, "cert", ".mevents-dev/pki/"+defaultClient+".pem", "client certificate (PEM)")
	fs.StringVar(&a.key, "key", ".mevents-dev/pki/"+defaultClient+"-key.pem", "client key (PEM)")
}

func (a *apiFlags) client() (*client.Client, error) {
	c, err := client.New(client.Config{URL: a.api, TLSFiles: client.TLSFiles{CA: a.ca, Cert: a.cert, Key: a.key}})
	if errors.Is(err, fs.ErrNotExist) && strings.HasPrefix(a.cert, ".mevents-dev/") {
		err = fmt.Errorf("%w (run `mevents dev` in this directory first, or give --api, --ca, --cert and --key)", err)
	}
	return c, err
}

// parseFlags parses args, turning a flag error into a usage error.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err.Error()}
	}
	return nil
}
