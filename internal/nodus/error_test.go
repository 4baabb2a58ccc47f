package nodus

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestErrorAccessors(t *testing.T) {
	fields := map[string]string{"name": "is required"}
	invalid := &Error{Code: EINVALID, Message: "invalid knowledge base", Fields: fields}
	notFound := Errorf(ENOTFOUND, "knowledge base %s not found", "kb1")
	tests := []struct {
		name        string
		err         error
		wantCode    string
		wantMessage string
		wantFields  map[string]string
	}{
		{"nil", nil, "", "", nil},
		{"plain", errors.New("pq: connection refused to 10.0.0.5"), EINTERNAL, "internal error", nil},
		{"context", context.DeadlineExceeded, EINTERNAL, "internal error", nil},
		{"error", notFound, ENOTFOUND, "knowledge base kb1 not found", nil},
		{"wrapped", fmt.Errorf("chat: find: %w", notFound), ENOTFOUND, "knowledge base kb1 not found", nil},
		{"wrapped twice", fmt.Errorf("api: %w", fmt.Errorf("chat: %w", notFound)), ENOTFOUND, "knowledge base kb1 not found", nil},
		{"fields", invalid, EINVALID, "invalid knowledge base", fields},
		{"wrapped fields", fmt.Errorf("kb: create: %w", invalid), EINVALID, "invalid knowledge base", fields},
		{"outermost Error wins", WrapError(notFound, ECONFLICT, "already exists"), ECONFLICT, "already exists", nil},
		{"joined", errors.Join(errors.New("first"), notFound), ENOTFOUND, "knowledge base kb1 not found", nil},
		{"plain cause", WrapError(errors.New("disk full"), EUNAVAILABLE, "storage unavailable"), EUNAVAILABLE, "storage unavailable", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ErrorCode(tt.err); got != tt.wantCode {
				t.Errorf("ErrorCode = %q, want %q", got, tt.wantCode)
			}
			if got := ErrorMessage(tt.err); got != tt.wantMessage {
				t.Errorf("ErrorMessage = %q, want %q", got, tt.wantMessage)
			}
			if got := ErrorFields(tt.err); fmt.Sprint(got) != fmt.Sprint(tt.wantFields) {
				t.Errorf("ErrorFields = %v, want %v", got, tt.wantFields)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{Errorf(ENOTFOUND, "kb %d not found", 7), "not_found: kb 7 not found"},
		{Errorf(EINVALID, "100%% sure"), "invalid: 100% sure"},
		{WrapError(errors.New("connection refused"), EUNAVAILABLE, "database down"), "unavailable: database down: connection refused"},
		{&Error{Code: EINTERNAL}, "internal: "},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestWrapErrorUnwrap(t *testing.T) {
	cause := errors.New("connection refused")
	tests := []struct {
		name   string
		err    error
		target error
		want   bool
	}{
		{"direct cause", WrapError(cause, EUNAVAILABLE, "down"), cause, true},
		{"wrapped cause", WrapError(fmt.Errorf("dial: %w", cause), EUNAVAILABLE, "down"), cause, true},
		{"wrapped Error", fmt.Errorf("store: %w", WrapError(context.DeadlineExceeded, ETIMEOUT, "slow")), context.DeadlineExceeded, true},
		{"other error", WrapError(cause, EUNAVAILABLE, "down"), context.Canceled, false},
		{"no cause", Errorf(EUNAVAILABLE, "down"), cause, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errors.Is(tt.err, tt.target); got != tt.want {
				t.Errorf("errors.Is = %v, want %v", got, tt.want)
			}
		})
	}
	if got := WrapError(cause, EINTERNAL, "x").Unwrap(); got != cause {
		t.Errorf("Unwrap = %v, want the cause", got)
	}
	if got := Errorf(EINTERNAL, "x").Unwrap(); got != nil {
		t.Errorf("Unwrap without a cause = %v, want nil", got)
	}
}
