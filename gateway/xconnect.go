package gateway

import "strings"

// xconnectSetting turns on the extended CONNECT method (RFC 8441) in Go's
// HTTP/2 server: without it the server does not advertise
// SETTINGS_ENABLE_CONNECT_PROTOCOL and refuses a CONNECT with :protocol.
// Go reads it from the environment once, when the process starts (a
// //go:debug directive does not reach it), so a process that serves
// WebSockets over HTTP/2 must start with it in GODEBUG.
const xconnectSetting = "http2xconnect=1"

// ExtendedConnectEnv returns environ with GODEBUG=http2xconnect=1 added,
// and whether it had to be added (GODEBUG naming http2xconnect either
// way is left as it is): when true, the process must start again
// with the returned environment (cmd/mevents re-executes itself) for
// WebSockets over HTTP/2 to work.
func ExtendedConnectEnv(environ []string) ([]string, bool) {
	out := make([]string, 0, len(environ)+1)
	found := false
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok && !found {
			found = true
			if strings.Contains(v, "http2xconnect=") {
				return environ, false // set, either way, by the operator
			}
			if v != "" {
				v += ","
			}
			kv = "GODEBUG=" + v + xconnectSetting
		}
		out = append(out, kv)
	}
	if !found {
		out = append(out, "GODEBUG="+xconnectSetting)
	}
	return out, true
}
