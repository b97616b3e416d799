package testutil

import (
	"net"
	"testing"
)

// Serve answers every connection l accepts with reply(conn) and closes it, until l is closed;
// the test's end closes it.
func Serve(t testing.TB, l net.Listener, reply func(net.Conn) string) {
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(reply(c)))
			c.Close()
		}
	}()
}
