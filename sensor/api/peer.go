package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"

	"golang.org/x/sys/unix"
)

// peerKey keys a connection's peer credentials in its context.
type peerKey struct{}

type peer struct {
	uid uint32
	err error
}

// withPeer records the credentials of the process at the other end of a
// unix socket connection.
func withPeer(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, peerKey{}, peerOf(c))
}

func peerOf(c net.Conn) peer {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return peer{err: errors.New("not a unix socket connection")}
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return peer{err: err}
	}
	var cred *unix.Ucred
	cerr := raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if cerr != nil {
		return peer{err: cerr}
	}
	if err != nil {
		return peer{err: fmt.Errorf("SO_PEERCRED: %w", err)}
	}
	return peer{uid: cred.Uid}
}

// rootOnly refuses every request that does not come from root or from the
// daemon's own user, in case the socket's mode was loosened.
func rootOnly(next http.Handler) http.Handler {
	self := uint32(os.Geteuid())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := r.Context().Value(peerKey{}).(peer)
		switch {
		case !ok:
			http.Error(w, "permission denied: the client's credentials are unknown", http.StatusForbidden)
		case p.err != nil:
			http.Error(w, "permission denied: the client's credentials cannot be read: "+p.err.Error(), http.StatusForbidden)
		case p.uid != 0 && p.uid != self:
			http.Error(w, fmt.Sprintf("permission denied: the ringfence API answers root only, and this client runs as uid %d", p.uid), http.StatusForbidden)
		default:
			next.ServeHTTP(w, r)
		}
	})
}
