package discovery

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"

	"github.com/quicprochat/qpc/messages"
)

// advertised turns the node's listen URIs into beacon listeners. Schemes a
// beacon cannot carry (lora+serial, mem, ...) are skipped. A listener on
// all addresses (0.0.0.0, ::, or no host) gets an empty host: receivers use
// the beacon's source address. A loopback listener is advertised, with its
// address, only when includeLoopback is set (receivers on other hosts drop
// it). Any other IP is advertised as is; a host name other than localhost
// is refused, since a beacon carries only addresses.
func advertised(uris []string, includeLoopback bool) ([]messages.BeaconListener, error) {
	var out []messages.BeaconListener
	for i, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%w: listen[%d] %q: %v", ErrBadOptions, i, s, err)
		}
		scheme, ok := messages.ParseScheme(u.Scheme)
		if !ok {
			continue
		}
		host, portText, err := net.SplitHostPort(u.Host)
		if err != nil {
			return nil, fmt.Errorf("%w: listen[%d] %q: want %s://host:port", ErrBadOptions, i, s, u.Scheme)
		}
		port, err := strconv.ParseUint(portText, 10, 16)
		if err != nil || port == 0 {
			return nil, fmt.Errorf("%w: listen[%d] %q: port must be 1..65535", ErrBadOptions, i, s)
		}
		l := messages.BeaconListener{Scheme: scheme, Port: uint16(port)}
		var ip netip.Addr
		switch host {
		case "":
		case "localhost":
			ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		default:
			if ip, err = netip.ParseAddr(host); err != nil {
				return nil, fmt.Errorf("%w: listen[%d] %q: a beacon carries IP addresses, not host names", ErrBadOptions, i, s)
			}
			ip = ip.Unmap().WithZone("")
		}
		switch {
		case !ip.IsValid() || ip.IsUnspecified():
			// empty host: the receiver uses our source address
		case ip.IsLoopback() && !includeLoopback:
			continue
		default:
			l.Host = ip.AsSlice()
		}
		if len(out) == messages.MaxBeaconListeners {
			return nil, fmt.Errorf("%w: more than %d advertisable listeners", ErrBadOptions, messages.MaxBeaconListeners)
		}
		out = append(out, l)
	}
	return out, nil
}

// resolve turns a received beacon's listeners into dialable URIs, using the
// datagram's source address for empty hosts. Unknown schemes are skipped,
// and so are loopback addresses in a beacon that did not come from this
// host (they would point the receiver at itself). local reports whether an
// address is one of this host's; it is asked only about a non-loopback
// source of a beacon with a loopback listener (multicast sent on lo carries
// the host's primary address as source, not 127.0.0.1).
func resolve(ls []messages.BeaconListener, src netip.Addr, local func(netip.Addr) bool) []string {
	src = src.Unmap()
	fromHere := -1 // unknown yet
	var out []string
	for _, l := range ls {
		if _, known := messages.ParseScheme(l.Scheme.String()); !known || l.Port == 0 {
			continue
		}
		ip := src
		if h, ok := netip.AddrFromSlice(l.Host); ok && !h.IsUnspecified() {
			ip = h.Unmap()
		}
		if ip.IsLoopback() && !src.IsLoopback() {
			if fromHere < 0 {
				fromHere = 0
				if local != nil && local(src) {
					fromHere = 1
				}
			}
			if fromHere == 0 {
				continue
			}
		}
		out = append(out, l.Scheme.String()+"://"+netip.AddrPortFrom(ip, l.Port).String())
	}
	return out
}

// isLocalAddr reports whether ip is assigned to an interface of this host.
func isLocalAddr(ip netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ia, ok := netip.AddrFromSlice(ipn.IP); ok && ia.Unmap() == ip {
				return true
			}
		}
	}
	return false
}
