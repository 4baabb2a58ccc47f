package procstat

import "testing"

func TestInt(t *testing.T) {
	// A command holding a space and a parenthesis; then state (field 3)
	// onwards: utime 14, stime 15, nice 19, starttime 22.
	stat := []byte("1234 (we) ird) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 6 0 0 20 7 1 0 99 1000 10")
	for n, want := range map[int]int64{4: 1, 14: 5, 15: 6, 19: 7, 22: 99, 24: 10} {
		if got, err := Int(stat, n); err != nil || got != want {
			t.Errorf("field %d: %d, %v; want %d", n, got, err, want)
		}
	}
	if f, err := Field(stat, 3); err != nil || string(f) != "S" {
		t.Errorf("field 3: %q, %v", f, err)
	}
	for _, bad := range []struct {
		stat string
		n    int
	}{
		{"1234 no command", 4},  // no parenthesis
		{"1 (x) S 1 2", 19},     // too short
		{"1 (x) S 1 2", 3 - 1},  // before the fields read
		{"1 (x) S 1 nice 2", 5}, // not a number
	} {
		if _, err := Int([]byte(bad.stat), bad.n); err == nil {
			t.Errorf("%q field %d: no error", bad.stat, bad.n)
		}
	}
}
