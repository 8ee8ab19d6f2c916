package broker

import (
	"time"
)

// Peer watch. A reader's consumer is unreplicated (consume_read.go): it
// lives on one node and goes with it. Its pulls would notice only after
// two missed heartbeats (30 s), and only while they pull, which a reader
// waiting for room does not. So the node watches its routes instead: when
// every route to a peer that was there is gone, or the peer answers as a
// new process (it restarted, its in-memory consumers with it), the
// readers whose consumer lived there start again at once. A peer whose
// routes are cut without being closed (a silent network) is found out by
// the route's pings, or by the pulls' heartbeats, whichever comes first.
//
// The watch also tells when the node, with the peers it still reaches, is
// no majority of the peers it has known (cutOff): nothing can be stored
// from there until the routes come back, and producers are told so at
// once (publish.go) instead of after their timeout. A peer without routes
// for peerForget is forgotten (a node removed or renamed); a split that
// lasts longer leaves producers on the cut-off side waiting for their
// timeout again, as before.

const (
	// peerWatch is how often the node looks at its routes.
	peerWatch = 200 * time.Millisecond
	// createWhilePeerMissing bounds the making of a reader while a peer
	// is missing: JetStream may place the consumer on that peer until it
	// counts it as behind (3 Raft heartbeats), and such a request is never
	// answered. Given up, the reader asks again and lands elsewhere.
	createWhilePeerMissing = 2 * time.Second
	// peerForget is how long a peer without routes is remembered as one:
	// a node removed from the cluster, or replaced under another name,
	// must not count forever against this node's majority (cutOff).
	peerForget = 2 * time.Minute
)

// watchPeers runs until the node closes; n.loops counts it.
func (n *Node) watchPeers() {
	t := time.NewTicker(peerWatch)
	defer t.Stop()
	var seen map[string]map[string]bool // peer name → the server ids of its routes
	gone := map[string]time.Time{}      // peer name → since when it has no route
	for {
		select {
		case <-n.bgCtx.Done():
			return
		case <-t.C:
		}
		now := n.routedPeers()
		if now == nil {
			continue
		}
		missing, appeared, reached := false, false, 0
		for name, ids := range now {
			for id := range ids {
				if seen != nil && !seen[name][id] {
					appeared = true
				}
			}
		}
		if appeared {
			// Events published over there while the routes were down
			// were not heard by this node's tails.
			n.tails.wakeAll()
		}
		for name, ids := range seen {
			for id := range ids {
				if !now[name][id] {
					n.peerLost(name)
					break
				}
			}
			if len(now[name]) > 0 {
				delete(gone, name)
				continue
			}
			if gone[name].IsZero() {
				gone[name] = time.Now()
			}
			if time.Since(gone[name]) > peerForget {
				delete(gone, name) // removed, or renamed: not a peer any more
				continue
			}
			missing = true
			now[name] = map[string]bool{} // remembered, still missing
		}
		for _, ids := range now {
			if len(ids) > 0 {
				reached++
			}
		}
		n.peerMissing.Store(missing)
		// With the peers it reaches, this node is no majority of those it
		// has known: it cannot store anything until the routes are back.
		n.cutOff.Store(len(now) > 0 && 2*(reached+1) <= len(now)+1)
		n.peersKnown.Store(int32(len(now)))
		seen = now
	}
}

// routedPeers returns the peers this node has routes to, by name, with the
// server ids those routes lead to; nil when the server could not say.
func (n *Node) routedPeers() map[string]map[string]bool {
	rz, err := n.srv.Routez(nil)
	if err != nil {
		return nil
	}
	peers := map[string]map[string]bool{}
	for _, r := range rz.Routes {
		if r.RemoteName == "" || r.RemoteID == "" {
			continue
		}
		if peers[r.RemoteName] == nil {
			peers[r.RemoteName] = map[string]bool{}
		}
		peers[r.RemoteName][r.RemoteID] = true
	}
	return peers
}

// peerLost starts again every reader of this node whose consumer lives on
// the named peer.
func (n *Node) peerLost(name string) {
	n.local.mu.Lock()
	subs := make([]*Subscription, 0, len(n.local.byID))
	for _, s := range n.local.byID {
		subs = append(subs, s)
	}
	n.local.mu.Unlock()
	restarted := 0
	for _, s := range subs {
		s.mu.Lock()
		readers := make([]*reader, 0, len(s.readers))
		for _, r := range s.readers {
			readers = append(readers, r)
		}
		s.mu.Unlock()
		for _, r := range readers {
			if r.livesOn(name) {
				r.restart()
				restarted++
			}
		}
	}
	n.log.Info("peer lost", "peer", name, "readers restarted", restarted)
}
