package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/mevents/mevents/config"
)

// runCerts issues and revokes certificates: `mevents certs ca|node|client|revoke`.
func runCerts(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("certs: say ca, node, client or revoke")
	}
	fs := flag.NewFlagSet("certs "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "directory to write the files to (required)")
	ca := fs.String("ca", "", "directory holding ca.pem and ca-key.pem (default: --out)")
	name := fs.String("name", "", "node or client name")
	hosts := fs.String("hosts", "", "comma-separated DNS names and IP addresses of the node")
	cert := fs.String("cert", "", "revoke: the certificate to revoke")
	crl := fs.String("crl", "", "revoke: the CRL file to add it to (created if absent)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if args[0] == "revoke" {
		if *cert == "" || *crl == "" || *ca == "" {
			return errors.New("certs revoke: --cert, --crl and --ca are required")
		}
		if err := config.Revoke(*ca, *crl, *cert); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s in %s; reload the nodes (SIGHUP) to apply it\n", *cert, *crl)
		return nil
	}
	if *out == "" {
		return fmt.Errorf("certs %s: --out is required", args[0])
	}
	if *ca == "" {
		*ca = *out
	}
	switch args[0] {
	case "ca":
		if err := config.IssueCA(*out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s/ca.pem and %s/ca-key.pem\n", *out, *out)
	case "node", "client":
		if *name == "" {
			return fmt.Errorf("certs %s: --name is required", args[0])
		}
		var err error
		if args[0] == "node" {
			var hs []string
			for _, h := range strings.Split(*hosts, ",") {
				if h = strings.TrimSpace(h); h != "" {
					hs = append(hs, h)
				}
			}
			err = config.IssueNode(*ca, *out, *name, hs)
		} else {
			err = config.IssueClient(*ca, *out, *name)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s/%s.pem and %s/%s-key.pem\n", *out, *name, *out, *name)
	default:
		return fmt.Errorf("certs: unknown kind %q: say ca, node, client or revoke", args[0])
	}
	return nil
}
