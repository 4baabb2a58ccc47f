// Package web is Nodus's browser UI: server-rendered html/template pages
// over the same services as the JSON API (one data path), with a little
// JavaScript of its own for what a form cannot do (upload progress, live
// document status, a streamed chat answer). Templates and static files are
// embedded; static files are served under content-hashed names so they
// can be cached for a year.
//
// Invariants: every page carries a strict Content-Security-Policy (no
// inline script or style), every POST carries the session's CSRF token
// and a same-origin Origin, every page but login needs a session, and
// user content only reaches the page through html/template's escaping or
// the Markdown renderer of markdown.go, which escapes everything and emits
// a fixed set of tags.
package web
