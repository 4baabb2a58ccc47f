//go:build unix

package egress

import (
	"net"
	"syscall"
)

// alive reports whether an idle connection is still open: a peek that does
// not wait finds nothing to read. A server that closed it has sent EOF; one
// that sent anything unasked has left it unusable.
func alive(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true // never wait for the descriptor to become readable
	})
	return err == nil && open
}
