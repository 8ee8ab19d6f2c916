// Package gateway is the HTTPS API of mevents: TLS with client
// certificates, the mapping of certificates to registered clients, and one
// file per resource (events, subscriptions, dead events, discovery, admin).
// It is the only package that knows HTTP, TLS, gin and WebSockets; it talks
// to the broker through the small interfaces it declares itself.
package gateway
