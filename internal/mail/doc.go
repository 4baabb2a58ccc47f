// Package mail owns sending email: it turns resolved SMTP settings and one
// message into an SMTP dialogue over a connection opened through egress.
// The settings service's "send test email" uses it now; notifications will
// use the same Sender.
//
// Invariants:
//   - Every connection is opened by the Dial function the Sender is given
//     (egress.Service.Dial in Nodus): mail never dials on its own, so the
//     tenant's egress policy and the platform's address checks apply.
//   - The password is sent only over TLS (implicit TLS, or STARTTLS, with
//     the server's certificate verified for the configured host), or in
//     the clear to a loopback relay explicitly configured as security
//     "none". STARTTLS mode fails when the server does not offer it rather
//     than falling back to plain text.
//   - Headers are built here, never taken from callers: a subject or an
//     address holding CR, LF or another control character is refused, and
//     addresses are parsed with net/mail and written back in canonical
//     form. Every message has a Date and a Message-ID and a UTF-8 text body
//     in quoted-printable.
//   - Connecting and the whole dialogue are bounded by timeouts.
//   - Failures are *Error values with a Kind a person can act on (denied by
//     egress, could not connect, TLS, authentication, sender or recipient
//     refused, timeout). Their text never holds the password: server
//     replies are scrubbed of it before they are kept.
package mail
