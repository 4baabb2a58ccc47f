package egress_test

import (
	"context"
	"io"
	"net"
	"net/url"
	"strconv"
	"testing"

	"github.com/nodus-os/nodus/internal/egress"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// BenchmarkDialCheck measures what the egress checks add to opening a
// connection: a plain dial to a loopback listener, against the egress
// dialer reaching the same listener through an address exception, by IP
// and by a name the injected resolver answers. The rules are in a real
// SQLite database, read once into the service's cache. The client closes
// first, with SO_LINGER 0, so that no TIME_WAIT builds up over the run.
//
//	go test -run '^$' -bench 'DialCheck|RequestCheck' -benchmem ./internal/egress/
func BenchmarkDialCheck(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// Wait for the client's reset, so that the client closes first.
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	addr := ln.Addr().String()
	port := ln.Addr().(*net.TCPAddr).Port
	ctx := context.Background()
	closeNow := func(b *testing.B, c net.Conn, err error) {
		if err != nil {
			b.Fatal(err)
		}
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}

	b.Run("plain", func(b *testing.B) {
		var d net.Dialer
		for b.Loop() {
			c, err := d.DialContext(ctx, "tcp", addr)
			closeNow(b, c, err)
		}
	})
	w := newWorld(b, storetest.OpenSQLite(b), hosts(map[string]string{"ollama.internal": "127.0.0.1"}))
	w.setPlatform([]egress.RuleInput{{Host: "ollama.internal", Port: port}}, loopbackException(port))
	b.Run("egress-ip", func(b *testing.B) {
		for b.Loop() {
			c, err := w.svc.DialChecked(ctx, w.a, "tcp", addr)
			closeNow(b, c, err)
		}
	})
	b.Run("egress-name", func(b *testing.B) {
		name := net.JoinHostPort("ollama.internal", strconv.Itoa(port))
		for b.Loop() {
			c, err := w.svc.DialChecked(ctx, w.a, "tcp", name)
			closeNow(b, c, err)
		}
	})
}

// BenchmarkRequestCheck measures the check every request and redirect hop
// pays before the transport sends it, also over a pooled connection.
func BenchmarkRequestCheck(b *testing.B) {
	w := newWorld(b, storetest.OpenSQLite(b), hosts(nil))
	rules := make([]egress.RuleInput, 0, 50)
	for i := range 49 {
		rules = append(rules, egress.RuleInput{Host: "host" + strconv.Itoa(i) + ".example.com", PathPrefix: "/v1"})
	}
	rules = append(rules, egress.RuleInput{Host: "*.openai.example"})
	w.setPolicy(w.a, egress.ModeEnforce, rules...)
	u, _ := url.Parse("https://api.openai.example/v1/chat/completions?x=1")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := w.svc.Admit(ctx, w.a, u); err != nil {
			b.Fatal(err)
		}
	}
}
