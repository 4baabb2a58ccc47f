package backgroundtest

import "testing"

func TestParseNice(t *testing.T) {
	// A command with a space and a parenthesis, then the fields from state
	// (3) on: nice is field 19.
	stat := []byte("1234 (we) ird) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 6 0 0 20 7 1 0 99 1000 10")
	if n, err := parseNice(stat); err != nil || n != 7 {
		t.Errorf("nice %d, %v; want 7", n, err)
	}
	for _, bad := range []string{"1234 no command", "1 (x) S 1 2", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 nice 1"} {
		if _, err := parseNice([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
