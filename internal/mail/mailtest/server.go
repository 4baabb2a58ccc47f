// Package mailtest runs a small SMTP server on loopback for tests: EHLO,
// STARTTLS or implicit TLS with a generated certificate for 127.0.0.1,
// AUTH PLAIN and LOGIN, MAIL, RCPT, DATA. It keeps what it receives, the
// way net/http/httptest keeps an HTTP server for tests.
package mailtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options shape the server.
type Options struct {
	// ImplicitTLS speaks TLS from the first byte (port 465 style);
	// otherwise the server offers STARTTLS unless NoSTARTTLS.
	ImplicitTLS bool
	NoSTARTTLS  bool
	// AuthWithoutTLS offers AUTH before STARTTLS too, as a relay on the
	// same machine may.
	AuthWithoutTLS bool
	// User and Password, when User is set, are the only credentials
	// accepted, and MAIL needs a successful AUTH first.
	User, Password string
	// Mechanisms offered after TLS (or always, with NoSTARTTLS): PLAIN
	// and LOGIN when empty.
	Mechanisms []string
	// RejectRecipient refuses RCPT TO for the addresses it returns true for.
	RejectRecipient func(addr string) bool
}

// Message is one message the server accepted.
type Message struct {
	From     string
	To       []string
	Data     string // as received, after dot-unstuffing, CRLF line ends
	TLS      bool   // whether it arrived over TLS
	AuthUser string
}

// Server is a running test SMTP server.
type Server struct {
	Host  string // 127.0.0.1
	Port  int
	Roots *x509.CertPool // trusts the server's certificate

	opts  Options
	ln    net.Listener
	tls   *tls.Config
	wg    sync.WaitGroup
	conns atomic.Int64

	mu       sync.Mutex
	messages []Message
	transcr  strings.Builder
}

// Start listens on 127.0.0.1 on a free port and serves until Close.
func Start(opts Options) (*Server, error) {
	cert, roots, err := certificate()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if len(opts.Mechanisms) == 0 {
		opts.Mechanisms = []string{"PLAIN", "LOGIN"}
	}
	s := &Server{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, Roots: roots, opts: opts, ln: ln,
		tls: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Close stops the server and waits for its connections to end.
func (s *Server) Close() {
	s.ln.Close()
	s.wg.Wait()
}

// Messages returns what the server accepted so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Connections counts the connections accepted so far.
func (s *Server) Connections() int64 { return s.conns.Load() }

// Transcript is everything clients sent, every connection's lines in
// order (message data included), for tests that look for a secret.
func (s *Server) Transcript() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.transcr.String()
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.conns.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			s.session(c)
		}()
	}
}

// session speaks SMTP on one connection until QUIT or an error.
func (s *Server) session(c net.Conn) {
	var conn net.Conn = c
	secure := false
	if s.opts.ImplicitTLS {
		tc := tls.Server(c, s.tls)
		if tc.Handshake() != nil {
			return
		}
		conn, secure = tc, true
	}
	tp := textproto.NewConn(conn)
	reply := func(lines ...string) bool {
		for i, l := range lines {
			sep := " "
			if i < len(lines)-1 {
				sep = "-"
			}
			if err := tp.PrintfLine("%s%s%s", l[:3], sep, l[4:]); err != nil {
				return false
			}
		}
		return true
	}
	read := func() (string, bool) {
		line, err := tp.ReadLine()
		if err != nil {
			return "", false
		}
		s.mu.Lock()
		s.transcr.WriteString(line + "\n")
		s.mu.Unlock()
		return line, true
	}
	if !reply("220 mailtest ESMTP") {
		return
	}
	var authed string
	var msg *Message
	for {
		line, ok := read()
		if !ok {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			lines := []string{"250 mailtest"}
			if !secure && !s.opts.ImplicitTLS && !s.opts.NoSTARTTLS {
				lines = append(lines, "250 STARTTLS")
			}
			if secure || s.opts.NoSTARTTLS || s.opts.AuthWithoutTLS {
				lines = append(lines, "250 AUTH "+strings.Join(s.opts.Mechanisms, " "))
			}
			lines = append(lines, "250 8BITMIME")
			ok = reply(lines...)
		case "HELO":
			ok = reply("250 mailtest")
		case "STARTTLS":
			if secure || s.opts.NoSTARTTLS {
				ok = reply("502 5.5.1 not now")
				break
			}
			if !reply("220 2.0.0 ready") {
				return
			}
			tc := tls.Server(c, s.tls)
			if tc.Handshake() != nil {
				return
			}
			conn, secure, authed, msg = tc, true, "", nil
			tp = textproto.NewConn(conn)
		case "AUTH":
			user, good := s.auth(arg, reply, read)
			if !good {
				ok = reply("535 5.7.8 authentication credentials invalid")
				break
			}
			authed = user
			ok = reply("235 2.7.0 authenticated")
		case "MAIL":
			if s.opts.User != "" && authed == "" {
				ok = reply("530 5.7.0 authentication required")
				break
			}
			msg = &Message{From: angle(arg), TLS: secure, AuthUser: authed}
			ok = reply("250 2.1.0 ok")
		case "RCPT":
			switch to := angle(arg); {
			case msg == nil:
				ok = reply("503 5.5.1 MAIL first")
			case s.opts.RejectRecipient != nil && s.opts.RejectRecipient(to):
				ok = reply("550 5.1.1 no such user here")
			default:
				msg.To = append(msg.To, to)
				ok = reply("250 2.1.5 ok")
			}
		case "DATA":
			if msg == nil || len(msg.To) == 0 {
				ok = reply("503 5.5.1 RCPT first")
				break
			}
			if !reply("354 end with <CRLF>.<CRLF>") {
				return
			}
			lines, err := tp.ReadDotLines()
			if err != nil {
				return
			}
			msg.Data = strings.Join(lines, "\r\n") + "\r\n"
			s.mu.Lock()
			s.messages = append(s.messages, *msg)
			s.transcr.WriteString(msg.Data)
			s.mu.Unlock()
			msg = nil
			ok = reply("250 2.0.0 queued")
		case "RSET":
			msg = nil
			ok = reply("250 2.0.0 ok")
		case "NOOP":
			ok = reply("250 2.0.0 ok")
		case "QUIT":
			reply("221 2.0.0 bye")
			return
		default:
			ok = reply("502 5.5.2 command not recognised")
		}
		if !ok {
			return
		}
	}
}

// auth runs AUTH PLAIN or LOGIN and reports the user when the credentials
// are the configured ones.
func (s *Server) auth(arg string, reply func(...string) bool, read func() (string, bool)) (string, bool) {
	mech, initial, _ := strings.Cut(arg, " ")
	mech = strings.ToUpper(mech)
	offered := false
	for _, m := range s.opts.Mechanisms {
		offered = offered || m == mech
	}
	if !offered {
		return "", false
	}
	answer := func(prompt string) (string, bool) {
		if !reply("334 " + base64.StdEncoding.EncodeToString([]byte(prompt))) {
			return "", false
		}
		line, ok := read()
		if !ok || line == "*" {
			return "", false
		}
		b, err := base64.StdEncoding.DecodeString(line)
		return string(b), err == nil
	}
	var user, password string
	switch mech {
	case "PLAIN":
		text := ""
		if initial != "" {
			b, err := base64.StdEncoding.DecodeString(initial)
			if err != nil {
				return "", false
			}
			text = string(b)
		} else {
			var ok bool
			if text, ok = answer(""); !ok {
				return "", false
			}
		}
		parts := strings.Split(text, "\x00")
		if len(parts) != 3 {
			return "", false
		}
		user, password = parts[1], parts[2]
	case "LOGIN":
		var ok bool
		if user, ok = answer("Username:"); !ok {
			return "", false
		}
		if password, ok = answer("Password:"); !ok {
			return "", false
		}
	}
	if user != s.opts.User || password != s.opts.Password || s.opts.User == "" {
		return "", false
	}
	return user, true
}

// angle returns the address in "FROM:<a@b> SIZE=1" or "TO:<a@b>".
func angle(arg string) string {
	i, j := strings.IndexByte(arg, '<'), strings.IndexByte(arg, '>')
	if i < 0 || j < i {
		return ""
	}
	return arg[i+1 : j]
}

// certificate makes a self-signed certificate for 127.0.0.1 and
// localhost, and a pool that trusts it.
func certificate() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "mailtest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, roots, nil
}
