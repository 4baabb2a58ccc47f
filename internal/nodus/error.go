package nodus

import (
	"errors"
	"fmt"
	"time"
)

// Error codes. Each maps to one HTTP status in httpapi; the string is what
// API clients see in the error envelope, so it never changes once released.
const (
	EINVALID      = "invalid"      // the request is malformed or fails validation
	EUNAUTHORIZED = "unauthorized" // no or bad credentials
	EFORBIDDEN    = "forbidden"    // authenticated but not allowed
	ENOTFOUND     = "not_found"    // no such object (or not visible to the caller)
	ECONFLICT     = "conflict"     // a uniqueness or version check failed
	ETOOLARGE     = "too_large"    // a body or upload exceeds its limit
	ERATELIMIT    = "rate_limited" // too many requests; retry later
	EUNAVAILABLE  = "unavailable"  // a dependency is down, sealed or overloaded
	ETIMEOUT      = "timeout"      // the operation ran out of time
	EINTERNAL     = "internal"     // a bug or an unexpected failure
	EMETHOD       = "method_not_allowed"
)

// Error is an error a caller can act on: a code, a message safe to show to
// the client and, optionally, the underlying cause, which is logged but never
// returned to clients.
type Error struct {
	Code    string
	Message string
	// Fields holds per-field validation messages for EINVALID.
	Fields map[string]string
	// RetryAfter tells a client of ERATELIMIT or EUNAVAILABLE when to try
	// again (the Retry-After header); zero when unknown.
	RetryAfter time.Duration
	// Err is the cause, kept for logs and errors.Is/As.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message.
// The message is shown to clients, so it must not contain secrets.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// WrapError returns an *Error with code and message whose cause is err.
func WrapError(err error, code, message string) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of the first *Error in err's
// chain, and a generic text for any other error so internals never leak.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// ErrorFields returns the validation fields of the first *Error in err's chain.
func ErrorFields(err error) map[string]string {
	var e *Error
	if errors.As(err, &e) {
		return e.Fields
	}
	return nil
}

// ErrorRetryAfter returns the RetryAfter of the first *Error in err's chain.
func ErrorRetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}
