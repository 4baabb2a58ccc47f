// Package httpapi is Nodus's JSON API: every route is listed in routes.go,
// every error leaves through one table that maps nodus error codes to HTTP
// statuses, and every request passes the same middleware: request id,
// access log, metrics, panic recovery, body limit and per-route timeouts.
//
// Handlers are functions that return an http.Handler, built from the
// Server's dependencies; nothing here reads configuration or globals.
package httpapi
