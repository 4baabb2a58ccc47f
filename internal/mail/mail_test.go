package mail_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/mail"
	"github.com/nodus-os/nodus/internal/mail/mailtest"
	"github.com/nodus-os/nodus/internal/nodus"
)

const password = "canary-smtp-p4ss\u00e9!"

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time { return c.t }

// dialer connects directly: these tests are about SMTP, and egress has
// its own; cmd/nodus sends through egress end to end.
func dialer(dials *int) mail.DialFunc {
	return func(ctx context.Context, _, network, address string) (net.Conn, error) {
		*dials++
		var d net.Dialer
		return d.DialContext(ctx, network, address)
	}
}

func start(t *testing.T, opts mailtest.Options) *mailtest.Server {
	t.Helper()
	srv, err := mailtest.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

func newSender(t *testing.T, srv *mailtest.Server, dials *int) *mail.Sender {
	t.Helper()
	s, err := mail.NewSender(mail.Options{Dial: dialer(dials), RootCAs: srv.Roots, Timeout: 5 * time.Second,
		Clock: fixedClock{time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC)}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func config(srv *mailtest.Server, security string) mail.Config {
	return mail.Config{Host: srv.Host, Port: srv.Port, User: "mailer", Password: password,
		From: "Nodus Ops <noreply@nodus.example>", Security: security}
}

var message = mail.Message{To: "Zoë Admin <zoe@example.test>", Subject: "Test from Nodus — ça marche",
	Body: "Hello Zoë,\nthis is a test.\n.\nA line that is much longer than seventy-six characters, so that quoted-printable has to wrap it somewhere.\n"}

func TestSendDelivers(t *testing.T) {
	for _, tt := range []struct {
		name     string
		opts     mailtest.Options
		security string
		tls      bool
	}{
		{"starttls plain auth", mailtest.Options{User: "mailer", Password: password}, mail.SecurityStartTLS, true},
		{"starttls login auth", mailtest.Options{User: "mailer", Password: password, Mechanisms: []string{"LOGIN"}}, mail.SecurityStartTLS, true},
		{"implicit tls", mailtest.Options{ImplicitTLS: true, User: "mailer", Password: password}, mail.SecurityTLS, true},
		// A loopback relay configured as "none" may take the password in
		// clear text: it never leaves the machine.
		{"loopback relay", mailtest.Options{NoSTARTTLS: true, User: "mailer", Password: password}, mail.SecurityNone, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := start(t, tt.opts)
			dials := 0
			if err := newSender(t, srv, &dials).Send(context.Background(), "t1", config(srv, tt.security), message); err != nil {
				t.Fatalf("Send: %v", err)
			}
			msgs := srv.Messages()
			if len(msgs) != 1 {
				t.Fatalf("received %d messages, want 1", len(msgs))
			}
			m := msgs[0]
			if m.From != "noreply@nodus.example" || len(m.To) != 1 || m.To[0] != "zoe@example.test" || m.TLS != tt.tls || m.AuthUser != "mailer" {
				t.Errorf("envelope = %+v", m)
			}
			parsed, err := netmail.ReadMessage(strings.NewReader(m.Data))
			if err != nil {
				t.Fatalf("parse received message: %v\n%s", err, m.Data)
			}
			h := parsed.Header
			subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
			if err != nil || subject != message.Subject {
				t.Errorf("Subject = %q (%v), want %q", subject, err, message.Subject)
			}
			to, err := h.AddressList("To")
			if err != nil || len(to) != 1 || to[0].Name != "Zoë Admin" || to[0].Address != "zoe@example.test" {
				t.Errorf("To = %v (%v)", to, err)
			}
			from, err := h.AddressList("From")
			if err != nil || len(from) != 1 || from[0].Name != "Nodus Ops" || from[0].Address != "noreply@nodus.example" {
				t.Errorf("From = %v (%v)", from, err)
			}
			if d, err := h.Date(); err != nil || !d.Equal(time.Date(2026, 11, 24, 9, 30, 0, 0, time.UTC)) {
				t.Errorf("Date = %v (%v)", d, err)
			}
			if id := h.Get("Message-ID"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@nodus.example>") || len(id) < 20 {
				t.Errorf("Message-ID = %q", id)
			}
			if ct := h.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type = %q", ct)
			}
			if h.Get("Content-Transfer-Encoding") != "quoted-printable" {
				t.Errorf("Content-Transfer-Encoding = %q", h.Get("Content-Transfer-Encoding"))
			}
			body, err := io.ReadAll(quotedPrintable(parsed.Body))
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.ReplaceAll(message.Body, "\n", "\r\n"); string(body) != want {
				t.Errorf("body = %q, want %q", body, want)
			}
			if dials != 1 {
				t.Errorf("dialed %d times, want 1", dials)
			}
		})
	}
}

func TestSendFailures(t *testing.T) {
	remote := func(security string) func(*mail.Config, *mail.Message) {
		return func(c *mail.Config, _ *mail.Message) { c.Host, c.Security = "mail.example.test", security }
	}
	for _, tt := range []struct {
		name   string
		opts   mailtest.Options
		change func(*mail.Config, *mail.Message)
		// untrusted sends with roots that do not hold the server's
		// certificate; every dial goes to the test server whatever the
		// host, so a host name other than 127.0.0.1 can be tried.
		untrusted bool
		kind      mail.Kind
		code      string
		contains  string
	}{
		{name: "wrong password", opts: mailtest.Options{User: "mailer", Password: "another"},
			kind: mail.KindAuth, code: nodus.EUNAVAILABLE, contains: "535"},
		{name: "wrong password over login", opts: mailtest.Options{User: "mailer", Password: "another", Mechanisms: []string{"LOGIN"}},
			kind: mail.KindAuth, code: nodus.EUNAVAILABLE, contains: "535"},
		{name: "recipient refused", opts: mailtest.Options{User: "mailer", Password: password, RejectRecipient: func(a string) bool { return a == "zoe@example.test" }},
			kind: mail.KindRecipient, code: nodus.EUNAVAILABLE, contains: "550"},
		{name: "starttls not offered", opts: mailtest.Options{NoSTARTTLS: true, User: "mailer", Password: password},
			kind: mail.KindTLS, code: nodus.EUNAVAILABLE, contains: "STARTTLS"},
		{name: "untrusted certificate", opts: mailtest.Options{User: "mailer", Password: password}, untrusted: true,
			kind: mail.KindTLS, code: nodus.EUNAVAILABLE, contains: "trusted authority"},
		{name: "certificate for another host", opts: mailtest.Options{ImplicitTLS: true, User: "mailer", Password: password},
			change: remote(mail.SecurityTLS), kind: mail.KindTLS, code: nodus.EUNAVAILABLE, contains: "not valid for mail.example.test"},
		{name: "clear-text password to another machine", opts: mailtest.Options{NoSTARTTLS: true, User: "mailer", Password: password},
			change: remote(mail.SecurityNone), kind: mail.KindTLS, code: nodus.EUNAVAILABLE, contains: "without TLS"},
		{name: "subject injection", change: func(_ *mail.Config, m *mail.Message) { m.Subject = "hi\r\nBcc: victim@example.test" },
			kind: mail.KindInvalid, code: nodus.EINVALID, contains: "subject"},
		{name: "recipient header injection", change: func(_ *mail.Config, m *mail.Message) { m.To = "zoe@example.test\r\nBcc: victim@example.test" },
			kind: mail.KindInvalid, code: nodus.EINVALID, contains: "address"},
		{name: "recipient command injection", change: func(_ *mail.Config, m *mail.Message) { m.To = "zoe@example.test>\nRCPT TO:<victim@example.test" },
			kind: mail.KindInvalid, code: nodus.EINVALID, contains: "address"},
		{name: "two recipients", change: func(_ *mail.Config, m *mail.Message) { m.To = "zoe@example.test, victim@example.test" },
			kind: mail.KindInvalid, code: nodus.EINVALID, contains: "address"},
		{name: "display name injection", change: func(_ *mail.Config, m *mail.Message) { m.To = "\"Zoe\r\nBcc: v@example.test\" <zoe@example.test>" },
			kind: mail.KindInvalid, code: nodus.EINVALID, contains: "address"},
		{name: "no host", change: func(c *mail.Config, _ *mail.Message) { c.Host = "" }, kind: mail.KindInvalid, code: nodus.EINVALID, contains: "host"},
		{name: "no from", change: func(c *mail.Config, _ *mail.Message) { c.From = "" }, kind: mail.KindInvalid, code: nodus.EINVALID, contains: "From"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := start(t, tt.opts)
			cfg, msg := config(srv, mail.SecurityStartTLS), message
			if tt.change != nil {
				tt.change(&cfg, &msg)
			}
			if tt.opts.ImplicitTLS && cfg.Security == mail.SecurityStartTLS {
				cfg.Security = mail.SecurityTLS
			}
			roots := srv.Roots
			if tt.untrusted {
				roots = x509.NewCertPool()
			}
			dials := 0
			s, err := mail.NewSender(mail.Options{RootCAs: roots, Timeout: 5 * time.Second,
				Dial: func(ctx context.Context, _, network, _ string) (net.Conn, error) {
					dials++
					var d net.Dialer
					return d.DialContext(ctx, network, net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port)))
				}})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Send(context.Background(), "t1", cfg, msg)
			var me *mail.Error
			if !errors.As(err, &me) {
				t.Fatalf("Send = %v, want a *mail.Error", err)
			}
			if me.Kind != tt.kind || me.Code() != tt.code || !strings.Contains(me.Message, tt.contains) {
				t.Errorf("Send = %q (kind %q, code %q), want kind %q, code %q, mentioning %q", me.Message, me.Kind, me.Code(), tt.kind, tt.code, tt.contains)
			}
			if strings.Contains(err.Error(), password) || strings.Contains(me.Message, password) {
				t.Errorf("the error holds the password: %v", err)
			}
			if tt.untrusted || tt.change != nil && tt.kind == mail.KindTLS {
				if strings.Contains(srv.Transcript(), base64.StdEncoding.EncodeToString([]byte("\x00mailer\x00"+password))) ||
					strings.Contains(srv.Transcript(), "AUTH") {
					t.Errorf("the password was sent: %q", srv.Transcript())
				}
			}
			if len(srv.Messages()) != 0 {
				t.Errorf("a message was delivered")
			}
			if wantDials := map[bool]int{true: 0, false: 1}[me.Kind == mail.KindInvalid]; dials != wantDials {
				t.Errorf("dialed %d times, want %d", dials, wantDials)
			}
		})
	}
}

// TestSendTimeout: a server that accepts and never greets ends the send
// with a timeout in the Sender's bounded time.
func TestSendTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	dials := 0
	s, err := mail.NewSender(mail.Options{Dial: dialer(&dials), Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	begin := time.Now()
	err = s.Send(context.Background(), "t1", mail.Config{Host: "127.0.0.1", Port: port, From: "a@example.test", Security: mail.SecurityStartTLS}, message)
	var me *mail.Error
	if !errors.As(err, &me) || me.Kind != mail.KindTimeout || me.Code() != nodus.ETIMEOUT {
		t.Fatalf("Send = %v, want a timeout", err)
	}
	if d := time.Since(begin); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
}

// TestSendConnectionRefused: nothing listening is a connect error that
// says so.
func TestSendConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dials := 0
	s, _ := mail.NewSender(mail.Options{Dial: dialer(&dials)})
	err = s.Send(context.Background(), "t1", mail.Config{Host: "127.0.0.1", Port: port, From: "a@example.test", Security: mail.SecurityStartTLS}, message)
	var me *mail.Error
	if !errors.As(err, &me) || me.Kind != mail.KindConnect || !strings.Contains(me.Message, "refused") {
		t.Fatalf("Send = %v, want connection refused", err)
	}
}

// TestConfigPrintsNoPassword: a Config in a log line or an error stays
// without its password.
func TestConfigPrintsNoPassword(t *testing.T) {
	c := mail.Config{Host: "h", Port: 1, User: "u", Password: password}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c)} {
		if strings.Contains(s, password) {
			t.Errorf("printed the password: %s", s)
		}
	}
	b, _ := json.Marshal(c)
	if strings.Contains(string(b), password) {
		t.Errorf("encoded the password: %s", b)
	}
}

func quotedPrintable(r io.Reader) io.Reader { return quotedprintable.NewReader(r) }
