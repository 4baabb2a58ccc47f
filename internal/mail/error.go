package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net"
	"net/textproto"
	"os"
	"strings"
	"syscall"

	"github.com/nodus-os/nodus/internal/egress"
	"github.com/nodus-os/nodus/internal/nodus"
)

// Kind says what went wrong, in terms a person can act on.
type Kind string

const (
	KindInvalid   Kind = "invalid"           // the message or the settings cannot be sent
	KindDenied    Kind = "denied"            // egress refused the server's address
	KindConnect   Kind = "connect"           // the server could not be reached
	KindTimeout   Kind = "timeout"           // connecting or the dialogue took too long
	KindTLS       Kind = "tls"               // no TLS where it is required, or a certificate that does not verify
	KindAuth      Kind = "auth"              // the server refused the user and password
	KindSender    Kind = "sender_refused"    // MAIL FROM refused
	KindRecipient Kind = "recipient_refused" // RCPT TO refused
	KindRejected  Kind = "rejected"          // the message itself refused
	KindProtocol  Kind = "protocol"          // the server spoke something other than SMTP, or hung up
)

// Error is a failed send. Message is safe to show to the person who
// configured the server: it never holds the password.
type Error struct {
	Kind    Kind
	Message string
	// Reply is the server's SMTP reply code, when it answered with one.
	Reply int
	Err   error
}

func (e *Error) Error() string { return "mail: " + e.Message }

func (e *Error) Unwrap() error { return e.Err }

// Upstream reports whether the mail server (or the way to it) failed, as
// opposed to the request, the settings or the egress policy.
func (e *Error) Upstream() bool {
	switch e.Kind {
	case KindInvalid, KindDenied, KindTimeout:
		return false
	}
	return true
}

// Code is the nodus error code of a failure: the request's fault is
// invalid, egress's refusal forbidden, a timeout a timeout, and anything
// the server did unavailable.
func (e *Error) Code() string {
	switch e.Kind {
	case KindInvalid:
		return nodus.EINVALID
	case KindDenied:
		return nodus.EFORBIDDEN
	case KindTimeout:
		return nodus.ETIMEOUT
	}
	return nodus.EUNAVAILABLE
}

// dialogue carries what one send needs to describe its failures.
type dialogue struct {
	cfg Config
	ctx context.Context
}

// fail builds an *Error: message, then the server's reply (scrubbed) or
// the cause's text. A timeout or cancellation wins over the step's kind.
func (d *dialogue) fail(kind Kind, message string, err error) *Error {
	e := &Error{Kind: kind, Message: message}
	if err == nil {
		return e
	}
	if d.ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
		e.Kind, e.Message = KindTimeout, message+": the mail server did not answer in time"
		return e
	}
	var tp *textproto.Error
	if errors.As(err, &tp) {
		e.Reply = tp.Code
		e.Message = d.scrub(message + ": the server answered " + tp.Error())
		e.Err = errors.New(e.Message) // the raw reply may echo what was sent
		return e
	}
	e.Message = d.scrub(message + ": " + err.Error())
	e.Err = err
	return e
}

// dialError classifies a failed connect: egress's refusal, a refused or
// unreachable port, a name that does not resolve, or a timeout.
func (d *dialogue) dialError(address string, err error) *Error {
	var denied *egress.DeniedError
	if errors.As(err, &denied) {
		return &Error{Kind: KindDenied, Message: "the egress policy does not allow connecting to " + denied.Target + ": " + denied.Detail, Err: err}
	}
	var dns *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return &Error{Kind: KindConnect, Message: "connection to " + address + " refused: is the SMTP host and port right?", Err: err}
	case errors.As(err, &dns):
		return &Error{Kind: KindConnect, Message: "the SMTP host " + d.cfg.Host + " does not resolve", Err: err}
	case d.ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		return &Error{Kind: KindTimeout, Message: "connecting to " + address + " timed out", Err: err}
	case nodus.ErrorCode(err) != nodus.EINTERNAL:
		// Another refusal egress explains itself, such as an invalid host.
		return &Error{Kind: KindDenied, Message: nodus.ErrorMessage(err), Err: err}
	}
	return &Error{Kind: KindConnect, Message: "could not connect to " + address, Err: err}
}

// tlsError explains a failed handshake; the common one is a certificate
// that is not for this host or not from a trusted authority.
func (d *dialogue) tlsError(err error) *Error {
	var host x509.HostnameError
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.As(err, &host):
		return &Error{Kind: KindTLS, Message: "the server's certificate is not valid for " + d.cfg.Host, Err: err}
	case errors.As(err, &unknown):
		return &Error{Kind: KindTLS, Message: "the server's certificate is not signed by a trusted authority", Err: err}
	case errors.As(err, &invalid):
		return &Error{Kind: KindTLS, Message: "the server's certificate is not valid (expired or not for a server)", Err: err}
	case errors.As(err, &verify):
		return &Error{Kind: KindTLS, Message: "the server's certificate does not verify", Err: err}
	}
	if f := d.fail(KindTLS, "the TLS handshake failed", err); f.Kind == KindTimeout {
		return f
	}
	return &Error{Kind: KindTLS, Message: d.scrub("the TLS handshake failed: " + err.Error()), Err: err}
}

// scrub removes the password, in the forms an SMTP dialogue carries it,
// from text that came from the server, in case a server echoes it.
func (d *dialogue) scrub(s string) string {
	pw := d.cfg.Password
	if pw == "" {
		return s
	}
	for _, form := range []string{
		base64.StdEncoding.EncodeToString([]byte("\x00" + d.cfg.User + "\x00" + pw)),
		base64.StdEncoding.EncodeToString([]byte(pw)),
		pw,
	} {
		s = strings.ReplaceAll(s, form, "[redacted]")
	}
	return s
}
