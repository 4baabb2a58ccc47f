package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestQuietCancel(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(quietCancel{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})})
	log.Error("enqueuer: error starting transaction", "error", fmt.Errorf("begin: %w", context.Canceled))
	if buf.Len() != 0 {
		t.Errorf("a cancellation was logged at error level: %s", buf.String())
	}
	log.Error("enqueuer: error starting transaction", "error", context.Canceled.Error())
	if buf.Len() != 0 {
		t.Errorf("a cancellation logged as text was logged at error level: %s", buf.String())
	}
	log.Error("real failure", "error", errors.New("disk full"))
	if !strings.Contains(buf.String(), "level=ERROR") || !strings.Contains(buf.String(), "disk full") {
		t.Errorf("a real error was not logged: %s", buf.String())
	}
}
