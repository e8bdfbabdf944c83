//go:build unix

package redisconf

import (
	"net"
	"syscall"
	"time"
)

// alive reports whether an idle connection is still open: a peek that
// finds neither data nor the end of the stream (an idle connection has
// nothing to read). Only for a plain connection: under TLS the socket may
// hold a record (a session ticket) that is no reply.
func alive(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	nc.SetDeadline(time.Time{}) // the last command's has passed; the peek would fail on it
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true
	})
	return err == nil && ok
}
