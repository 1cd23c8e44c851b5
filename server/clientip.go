package server

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// trustedProxies decides which peers' X-Forwarded-For and X-Forwarded-Proto are believed.
type trustedProxies []netip.Prefix

func (t trustedProxies) contains(a netip.Addr) bool {
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func remoteAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

// clientIP is the peer address, or, when the peer is a trusted proxy, the rightmost X-Forwarded-For
// hop that is not itself a trusted proxy: hops left of it could have been written by the client.
func (t trustedProxies) clientIP(r *http.Request) netip.Addr {
	peer := remoteAddr(r)
	if !peer.IsValid() || !t.contains(peer) {
		return peer
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(h, ",")...)
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return client // a garbled hop: believe nothing beyond it
		}
		client = a.Unmap().WithZone("")
		if !t.contains(client) {
			return client
		}
	}
	return client
}

// viaTrustedHTTPS reports whether a trusted proxy says the client connected over HTTPS.
func (t trustedProxies) viaTrustedHTTPS(r *http.Request) bool {
	peer := remoteAddr(r)
	return peer.IsValid() && t.contains(peer) && strings.EqualFold(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto")), "https")
}
