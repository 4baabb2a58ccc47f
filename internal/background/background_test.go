package background

import (
	"os"
	"runtime"
	"strconv"
	"testing"
)

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
func setProcs(n int)    { runtime.GOMAXPROCS(n) }

// defaultProcs is the runtime's default GOMAXPROCS, whatever the
// environment says.
func defaultProcs() int {
	runtime.SetDefaultGOMAXPROCS()
	return runtime.GOMAXPROCS(0)
}

// TestExtraProcs checks the P added for a lowered thread, that a second
// call adds none, and that GOMAXPROCS in the environment is obeyed.
func TestExtraProcs(t *testing.T) {
	t.Setenv("GOMAXPROCS", "")
	os.Unsetenv("GOMAXPROCS")
	defer setProcs(runtimeProcs())
	n := defaultProcs()
	for range 2 { // a second call changes nothing
		if got := ExtraProcs(); got != n+1 || runtimeProcs() != n+1 {
			t.Errorf("ExtraProcs: %d (runtime %d), want %d", got, runtimeProcs(), n+1)
		}
	}
	setProcs(n)
	t.Setenv("GOMAXPROCS", strconv.Itoa(n))
	if got := ExtraProcs(); got != n {
		t.Errorf("ExtraProcs with GOMAXPROCS set: %d, want %d", got, n)
	}
}
