package identity

import (
	"fmt"
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	th := NewThrottle(20, 50, 15*time.Minute)
	for i := range 20 {
		if wait := th.Check("Ann", "192.0.2.1", now); wait != 0 {
			t.Fatalf("attempt %d throttled", i+1)
		}
		th.Fail("ann", "192.0.2.1", now)
	}
	// The twenty-first attempt from that address waits, whatever the case
	// of the login; another address may still try.
	if wait := th.Check("ANN", "192.0.2.1", now.Add(time.Minute)); wait != 14*time.Minute {
		t.Fatalf("21st attempt: wait %v, want 14m", wait)
	}
	if wait := th.Check("ann", "198.51.100.7", now); wait != 0 {
		t.Fatalf("another address is throttled: %v", wait)
	}
	// No permanent lockout: the window ends.
	if wait := th.Check("ann", "192.0.2.1", now.Add(15*time.Minute)); wait != 0 {
		t.Fatalf("still throttled after the window: %v", wait)
	}

	// Across addresses, the account limit holds.
	th = NewThrottle(20, 50, 15*time.Minute)
	for i := range 50 {
		th.Fail("bob", fmt.Sprintf("203.0.113.%d", i), now)
	}
	if wait := th.Check("bob", "203.0.113.200", now); wait == 0 {
		t.Fatal("50 failures from 50 addresses did not throttle the account")
	}

	// A success clears the pair but not the account.
	th = NewThrottle(3, 5, time.Minute)
	th.Fail("cy", "a", now)
	th.Fail("cy", "a", now)
	th.Fail("cy", "a", now)
	th.Succeed("cy", "a")
	if wait := th.Check("cy", "a", now); wait != 0 {
		t.Fatalf("pair still throttled after success: %v", wait)
	}
}

func TestThrottleMemoryBound(t *testing.T) {
	now := time.Now()
	th := NewThrottle(5, 10, time.Hour)
	th.maxKeys = 1000
	for i := range 10_000 {
		th.Fail(fmt.Sprintf("user%d", i), "192.0.2.1", now)
	}
	if n := len(th.windows); n > th.maxKeys+2 {
		t.Fatalf("%d windows kept, bound %d", n, th.maxKeys)
	}
}
