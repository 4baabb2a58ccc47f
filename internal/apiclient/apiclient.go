// Package apiclient gives the nodus command's own subcommands (such as
// `nodus kb import`) the HTTP client they talk to a Nodus server with: a
// server the operator names on the command line, as any API client would.
// It is not how Nodus reaches the outside on a tenant's behalf; that goes
// through internal/egress, the only other package allowed to make clients
// (internal/egress's lint test lists the exemption).
package apiclient

import (
	"net/http"
	"time"
)

// New returns a client for a Nodus server's API: no overall timeout (an
// upload may be long), but bounded connection set-up and response headers.
func New() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = 10 * time.Minute // a large upload is answered once stored
	t.MaxIdleConnsPerHost = 16
	return &http.Client{Transport: t}
}
