//go:build !linux

package background

import (
	"errors"
	"fmt"
)

func lowerThread(int) error {
	return fmt.Errorf("background: thread priorities are lowered on Linux only: %w", errors.ErrUnsupported)
}
