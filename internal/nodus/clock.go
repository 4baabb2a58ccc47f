package nodus

import "time"

// Clock tells the time. Services take one so tests can control it.
type Clock interface {
	Now() time.Time
}

// SystemClock is the real clock, in UTC.
type SystemClock struct{}

// Now returns the current time in UTC, truncated to the microsecond: the
// precision both databases keep, so a time read back equals the one written.
func (SystemClock) Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }
