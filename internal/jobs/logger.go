package jobs

import (
	"context"
	"errors"
	"log/slog"
)

// quietCancel lowers River's log records whose error is context.Canceled
// to debug. River's maintenance services log the cancellation that Stop
// itself causes as an error; at every clean shutdown that would page an
// operator for nothing. River formats some errors into strings before
// logging them, so a string attribute that is exactly context.Canceled's
// text counts too; nothing else is matched by text.
type quietCancel struct{ slog.Handler }

func (h quietCancel) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		cancelled := false
		r.Attrs(func(a slog.Attr) bool {
			switch v := a.Value.Any().(type) {
			case error:
				cancelled = errors.Is(v, context.Canceled)
			case string:
				cancelled = v == context.Canceled.Error()
			}
			return !cancelled
		})
		if cancelled {
			if !h.Enabled(ctx, slog.LevelDebug) {
				return nil
			}
			r = slog.NewRecord(r.Time, slog.LevelDebug, r.Message, r.PC)
			r.AddAttrs(slog.String("note", "cancelled by shutdown"))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietCancel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietCancel{h.Handler.WithAttrs(attrs)}
}

func (h quietCancel) WithGroup(name string) slog.Handler {
	return quietCancel{h.Handler.WithGroup(name)}
}
