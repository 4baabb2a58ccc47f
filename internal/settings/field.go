package settings

import (
	"encoding/json"
	"fmt"
	"net/mail"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Field keys: group.name, as stored and as reported in validation errors.
const (
	KeyProductName  = "branding.product_name"
	KeyLogoURL      = "branding.logo_url"
	KeyPrimaryColor = "branding.primary_color"
	KeySMTPHost     = "email.smtp_host"
	KeySMTPPort     = "email.smtp_port"
	KeySMTPUser     = "email.smtp_user"
	KeyFrom         = "email.from"
	KeySecurity     = "email.security"
	KeySMTPPassword = "email.smtp_password"
	KeySpeechModel  = "recordings.speech_model"
	KeySummaryModel = "recordings.summary_model"
)

// Groups of fields, as the API nests them.
const (
	GroupBranding = "branding"
	GroupEmail    = "email"
	// GroupRecordings names the gateway models recordings use.
	GroupRecordings = "recordings"
)

// Email security modes.
const (
	SecurityStartTLS = "starttls"
	SecurityTLS      = "tls"
	SecurityNone     = "none"
)

// field is one setting: its key, its built-in default (a string or an
// int; nil for the secret), and how a JSON value for it is checked. parse
// returns the value to store, or a message saying what is wrong.
type field struct {
	key    string
	def    any
	secret bool
	parse  func(raw json.RawMessage) (any, string)
}

// fields lists every setting. Adding one here, to the types in
// settings.go and to docs/api.md is all a new setting needs.
var fields = []field{
	{key: KeyProductName, def: "Nodus", parse: stringField(func(s string) string {
		switch {
		case s == "" || utf8.RuneCountInString(s) > 100:
			return "must be 1 to 100 characters"
		case strings.TrimSpace(s) == "":
			return "must not be blank"
		case hasControl(s):
			return "must not contain control characters"
		}
		return ""
	})},
	{key: KeyLogoURL, def: "", parse: stringField(checkLogoURL)},
	{key: KeyPrimaryColor, def: "#2563eb", parse: normalizedString(func(s string) (string, string) {
		if !colorPattern.MatchString(s) {
			return "", "must be a colour as #rrggbb"
		}
		return strings.ToLower(s), ""
	})},
	{key: KeySMTPHost, def: "", parse: normalizedString(checkHost)},
	{key: KeySMTPPort, def: 587, parse: func(raw json.RawMessage) (any, string) {
		var n int
		if err := json.Unmarshal(raw, &n); err != nil || n < 1 || n > 65535 {
			return nil, "must be a whole number from 1 to 65535"
		}
		return n, ""
	}},
	{key: KeySMTPUser, def: "", parse: stringField(func(s string) string {
		if len(s) > 254 || hasControl(s) {
			return "must be at most 254 bytes, without control characters"
		}
		return ""
	})},
	{key: KeyFrom, def: "", parse: stringField(checkFrom)},
	{key: KeySecurity, def: SecurityStartTLS, parse: stringField(func(s string) string {
		if s != SecurityStartTLS && s != SecurityTLS && s != SecurityNone {
			return "must be starttls, tls or none"
		}
		return ""
	})},
	// A gateway model name: the gateway refuses one it does not route
	// when a recording is processed, and the recording says so.
	{key: KeySpeechModel, def: "", parse: stringField(checkModelName)},
	{key: KeySummaryModel, def: "", parse: stringField(checkModelName)},
	{key: KeySMTPPassword, secret: true, parse: stringField(func(s string) string {
		switch {
		case s == "":
			return "must not be empty; send null to remove it"
		case len(s) > 1024:
			return "must be at most 1024 bytes"
		case strings.ContainsRune(s, 0):
			return "must not contain NUL"
		}
		return ""
	})},
}

// connectionKeys say where and how the SMTP password is sent. A tenant
// that overrides any of them does not inherit the platform's password.
var connectionKeys = []string{KeySMTPHost, KeySMTPPort, KeySMTPUser, KeySecurity}

var fieldByKey = func() map[string]field {
	m := make(map[string]field, len(fields))
	for _, f := range fields {
		m[f.key] = f
	}
	return m
}()

var colorPattern = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// checkModelName accepts a gateway model name: printable, without
// spaces, at most 200 bytes ("" for none).
func checkModelName(s string) string {
	if len(s) > 200 || hasControl(s) || strings.ContainsAny(s, " \t") {
		return "must be a model name of at most 200 bytes, without spaces or control characters"
	}
	return ""
}

// stringField parses a JSON string and checks it with check, which returns
// "" when the value is fine.
func stringField(check func(string) string) func(json.RawMessage) (any, string) {
	return normalizedString(func(s string) (string, string) {
		if msg := check(s); msg != "" {
			return "", msg
		}
		return s, ""
	})
}

// normalizedString parses a JSON string and lets check return the form to
// store.
func normalizedString(check func(string) (string, string)) func(json.RawMessage) (any, string) {
	return func(raw json.RawMessage) (any, string) {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, "must be a string"
		}
		v, msg := check(s)
		if msg != "" {
			return nil, msg
		}
		return v, ""
	}
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}

// checkLogoURL allows "", an https URL or a path on this server. A path
// starting with // or /\ would be another host to a browser.
func checkLogoURL(s string) string {
	const msg = "must be an https:// URL or a path starting with /, at most 2000 bytes"
	if s == "" {
		return ""
	}
	if len(s) > 2000 || strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) ||
		strings.Contains(s, `\`) {
		return msg
	}
	u, err := url.Parse(s)
	if err != nil {
		return msg
	}
	if strings.HasPrefix(s, "/") {
		if strings.HasPrefix(s, "//") || u.Scheme != "" || u.Host != "" {
			return msg
		}
		return ""
	}
	if !strings.HasPrefix(strings.ToLower(s), "https://") || u.Host == "" || u.User != nil {
		return msg
	}
	return ""
}

// checkHost allows "", an IP address or a DNS host name, stored in lower
// case.
func checkHost(s string) (string, string) {
	const msg = "must be a host name or an IP address, at most 253 characters"
	if s == "" {
		return "", ""
	}
	if len(s) > 253 {
		return "", msg
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return "", msg
		}
		return a.String(), ""
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", msg
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return "", msg
			}
		}
	}
	return strings.ToLower(s), ""
}

// checkFrom allows "" or one RFC 5322 address, with or without a display
// name. Line breaks are refused outright: the value goes into a header.
func checkFrom(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > 512 || hasControl(s) {
		return "must be one email address, at most 512 bytes"
	}
	a, err := mail.ParseAddress(s)
	if err != nil || !strings.Contains(a.Address, "@") {
		return "must be one email address, such as Nodus <noreply@example.com>"
	}
	return ""
}

// decodeStored turns a stored JSON value back into the field's Go value.
func decodeStored(f field, value string) (any, error) {
	switch f.def.(type) {
	case int:
		var n int
		if err := json.Unmarshal([]byte(value), &n); err != nil {
			return nil, fmt.Errorf("settings: stored %s is not a number", f.key)
		}
		return n, nil
	default:
		var s string
		if err := json.Unmarshal([]byte(value), &s); err != nil {
			return nil, fmt.Errorf("settings: stored %s is not a string", f.key)
		}
		return s, nil
	}
}
