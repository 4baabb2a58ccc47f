package mail

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"net/netip"
	"net/smtp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/nodus-os/nodus/internal/nodus"
)

// Security modes, as the settings store them.
const (
	SecurityStartTLS = "starttls" // plain connect, then STARTTLS, which the server must offer
	SecurityTLS      = "tls"      // TLS from the first byte (port 465)
	SecurityNone     = "none"     // no TLS: only for a relay on the same machine
)

// Config is where and how to send: resolved settings, password included.
// It prints and logs without the password.
type Config struct {
	Host     string
	Port     int
	User     string
	Password string `json:"-"`
	From     string
	Security string
}

func (c Config) String() string {
	pw := ""
	if c.Password != "" {
		pw = "[redacted]"
	}
	return fmt.Sprintf("{Host:%s Port:%d User:%s Password:%s From:%s Security:%s}", c.Host, c.Port, c.User, pw, c.From, c.Security)
}

// GoString keeps the password out of %#v.
func (c Config) GoString() string { return "mail.Config" + c.String() }

// Message is one plain-text email to one recipient.
type Message struct {
	To      string // one address, with or without a display name
	Subject string
	Body    string // UTF-8 text
}

// DialFunc opens a connection for a tenant; egress.Service.Dial is one.
type DialFunc func(ctx context.Context, tenantID, network, address string) (net.Conn, error)

// Options configure a Sender. Zero values take the defaults noted.
type Options struct {
	Dial DialFunc // required
	// RootCAs verify servers' certificates; nil is the system's roots.
	RootCAs *x509.CertPool
	// Hostname is the name this side gives in EHLO and in Message-IDs'
	// fallback domain: "localhost".
	Hostname       string
	ConnectTimeout time.Duration // resolving and connecting: 10s
	Timeout        time.Duration // the whole send, connect included: 30s
	Clock          nodus.Clock   // for the Date header; nil: the system clock
}

// Sender sends messages. It is safe for concurrent use.
type Sender struct {
	opts Options
}

// NewSender returns a Sender.
func NewSender(opts Options) (*Sender, error) {
	if opts.Dial == nil {
		return nil, errors.New("mail: Options.Dial is required")
	}
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = nodus.SystemClock{}
	}
	return &Sender{opts: opts}, nil
}

// Send delivers msg with cfg's server, connecting as tenantID ("" for the
// platform). A failure is an *Error.
func (s *Sender) Send(ctx context.Context, tenantID string, cfg Config, msg Message) error {
	from, err := checkConfig(cfg)
	if err != nil {
		return err
	}
	to, err := ParseAddress(msg.To)
	if err != nil {
		return err
	}
	data, err := build(from, to, msg, s.opts.Clock.Now(), s.opts.Hostname)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	d := &dialogue{cfg: cfg, ctx: ctx}
	err = s.send(ctx, d, tenantID, from, to, data)
	if err == nil {
		return nil
	}
	var me *Error
	if errors.As(err, &me) {
		me.Message = d.scrub(me.Message)
		return me
	}
	return d.fail(KindProtocol, "the SMTP dialogue failed", err)
}

func (s *Sender) send(ctx context.Context, d *dialogue, tenantID string, from, to *netmail.Address, data []byte) error {
	cfg := d.cfg
	address := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	dctx, dcancel := context.WithTimeout(ctx, s.opts.ConnectTimeout)
	conn, err := s.opts.Dial(dctx, tenantID, "tcp", address)
	dcancel()
	if err != nil {
		return d.dialError(address, err)
	}
	defer conn.Close()
	// The whole dialogue shares the send's deadline, and a cancelled
	// context ends a read or write at once instead of waiting for it.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	tlsConfig := &tls.Config{ServerName: cfg.Host, RootCAs: s.opts.RootCAs, MinVersion: tls.VersionTLS12}
	secure := false
	if cfg.Security == SecurityTLS {
		tc := tls.Client(conn, tlsConfig)
		if err := tc.HandshakeContext(ctx); err != nil {
			return d.tlsError(err)
		}
		conn, secure = tc, true
	}
	c, err := smtp.NewClient(conn, cfg.Host)
	if err != nil {
		return d.fail(KindProtocol, "the server did not greet as an SMTP server", err)
	}
	defer c.Close()
	if err := c.Hello(s.opts.Hostname); err != nil {
		return d.fail(KindProtocol, "the server refused EHLO", err)
	}
	if cfg.Security == SecurityStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return d.fail(KindTLS, "the server does not offer STARTTLS, which the settings require", nil)
		}
		if err := c.StartTLS(tlsConfig); err != nil {
			return d.tlsError(err)
		}
		secure = true
	}
	if cfg.User != "" {
		// Never a password in clear text to another machine, whatever the
		// settings say.
		if !secure && !isLoopback(cfg.Host) {
			return d.fail(KindTLS, "refusing to send the password without TLS to a server that is not on this machine", nil)
		}
		a, err := pickAuth(c, cfg)
		if err != nil {
			return err
		}
		if err := c.Auth(a); err != nil {
			return d.fail(KindAuth, "authentication failed", err)
		}
	}
	if err := c.Mail(from.Address); err != nil {
		return d.fail(KindSender, "the server refused the sender "+from.Address, err)
	}
	if err := c.Rcpt(to.Address); err != nil {
		return d.fail(KindRecipient, "the server refused the recipient "+to.Address, err)
	}
	w, err := c.Data()
	if err != nil {
		return d.fail(KindRejected, "the server refused the message", err)
	}
	if _, err := w.Write(data); err != nil {
		return d.fail(KindProtocol, "sending the message failed", err)
	}
	if err := w.Close(); err != nil {
		return d.fail(KindRejected, "the server refused the message", err)
	}
	// The message is accepted; a failed QUIT changes nothing.
	_ = c.Quit()
	return nil
}

// pickAuth chooses PLAIN, else LOGIN, among what the server offers.
func pickAuth(c *smtp.Client, cfg Config) (smtp.Auth, error) {
	ok, mechs := c.Extension("AUTH")
	if !ok {
		return nil, &Error{Kind: KindAuth, Message: "the server offers no authentication, but a user is configured"}
	}
	fields := strings.Fields(strings.ToUpper(mechs))
	for _, m := range fields {
		if m == "PLAIN" {
			return plainAuth{user: cfg.User, password: cfg.Password, host: cfg.Host}, nil
		}
	}
	for _, m := range fields {
		if m == "LOGIN" {
			return loginAuth{user: cfg.User, password: cfg.Password, host: cfg.Host}, nil
		}
	}
	return nil, &Error{Kind: KindAuth, Message: "the server offers neither AUTH PLAIN nor AUTH LOGIN (it offers " + mechs + ")"}
}

// plainAuth is RFC 4616 PLAIN. net/smtp's PlainAuth would do, but it
// decides "encrypted" itself and so cannot be told about a loopback relay
// named by IP; the check it makes is done in send.
type plainAuth struct {
	user, password, host string
}

func (a plainAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if server.Name != a.host {
		return "", nil, errors.New("wrong host name")
	}
	return "PLAIN", []byte("\x00" + a.user + "\x00" + a.password), nil
}

func (a plainAuth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return nil, errors.New("unexpected server challenge")
	}
	return nil, nil
}

// loginAuth is the LOGIN mechanism many servers still offer alone: the
// user and then the password, each in answer to a prompt.
type loginAuth struct {
	user, password, host string
}

func (a loginAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if server.Name != a.host {
		return "", nil, errors.New("wrong host name")
	}
	return "LOGIN", nil, nil
}

func (a loginAuth) Next(challenge []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	switch strings.ToLower(strings.TrimSpace(string(challenge))) {
	case "username:", "user name", "username":
		return []byte(a.user), nil
	case "password:", "password":
		return []byte(a.password), nil
	}
	return nil, errors.New("unexpected LOGIN prompt")
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// checkConfig refuses settings that cannot send and returns the parsed
// From address.
func checkConfig(cfg Config) (*netmail.Address, error) {
	switch {
	case cfg.Host == "":
		return nil, &Error{Kind: KindInvalid, Message: "no SMTP host is configured"}
	case cfg.Port < 1 || cfg.Port > 65535:
		return nil, &Error{Kind: KindInvalid, Message: "the SMTP port must be 1 to 65535"}
	case cfg.From == "":
		return nil, &Error{Kind: KindInvalid, Message: "no From address is configured"}
	case cfg.Security != SecurityStartTLS && cfg.Security != SecurityTLS && cfg.Security != SecurityNone:
		return nil, &Error{Kind: KindInvalid, Message: "the security mode must be starttls, tls or none"}
	case hasControl(cfg.Host) || hasControl(cfg.User):
		return nil, &Error{Kind: KindInvalid, Message: "the SMTP host and user must not contain control characters"}
	}
	from, err := ParseAddress(cfg.From)
	if err != nil {
		return nil, &Error{Kind: KindInvalid, Message: "the From address is not valid"}
	}
	return from, nil
}

// ParseAddress parses one address, with or without a display name, for a
// header and an SMTP envelope: no control characters (CR and LF would
// start a new header or command), and an ASCII addr-spec, since the
// dialogue does not use SMTPUTF8.
func ParseAddress(s string) (*netmail.Address, error) {
	const msg = "must be one email address, such as someone@example.com"
	if s == "" || len(s) > 512 || hasControl(s) {
		return nil, &Error{Kind: KindInvalid, Message: "the address " + msg}
	}
	a, err := netmail.ParseAddress(s)
	if err != nil {
		return nil, &Error{Kind: KindInvalid, Message: "the address " + msg}
	}
	at := strings.LastIndexByte(a.Address, '@')
	if at < 1 || at == len(a.Address)-1 || strings.ContainsFunc(a.Address, func(r rune) bool {
		return r > unicode.MaxASCII || r == ' ' || r == '<' || r == '>' || r == '"' || r == '\\'
	}) {
		return nil, &Error{Kind: KindInvalid, Message: "the address " + msg + " (ASCII only)"}
	}
	return a, nil
}

func hasControl(s string) bool { return strings.ContainsFunc(s, unicode.IsControl) }

// build writes the message: headers made here from parsed values, then
// the body in quoted-printable with CRLF line ends. Dot-stuffing is the
// DATA writer's.
func build(from, to *netmail.Address, msg Message, now time.Time, hostname string) ([]byte, error) {
	if hasControl(msg.Subject) {
		return nil, &Error{Kind: KindInvalid, Message: "the subject must not contain line breaks or control characters"}
	}
	if len(msg.Subject) > 998 {
		return nil, &Error{Kind: KindInvalid, Message: "the subject is too long"}
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("mail: message id: %w", err)
	}
	domain := from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	if domain == "" {
		domain = hostname
	}
	var b strings.Builder
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("From", from.String())
	header("To", to.String())
	header("Subject", mime.QEncoding.Encode("utf-8", msg.Subject))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", "<"+hex.EncodeToString(id[:])+"@"+domain+">")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	body := strings.ReplaceAll(strings.ReplaceAll(msg.Body, "\r\n", "\n"), "\r", "\n")
	if _, err := io.WriteString(qp, body); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	if !strings.HasSuffix(b.String(), "\r\n") {
		b.WriteString("\r\n")
	}
	return []byte(b.String()), nil
}
