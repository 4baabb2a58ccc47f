package nodus

import (
	"strings"
	"testing"
)

func TestNewID(t *testing.T) {
	const n = 1000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = NewID()
	}
	seen := make(map[string]bool, n)
	for i, id := range ids {
		if seen[id] {
			t.Fatalf("id %d, %s, repeats", i, id)
		}
		seen[id] = true
		if !ValidID(id) {
			t.Errorf("ValidID(%q) = false", id)
		}
		if id != strings.ToLower(id) {
			t.Errorf("id %q is not lower case", id)
		}
		if id[14] != '7' {
			t.Errorf("id %q: version %c, want 7", id, id[14])
		}
		if !strings.ContainsRune("89ab", rune(id[19])) {
			t.Errorf("id %q: variant %c, want RFC 9562", id, id[19])
		}
		if i > 0 && id < ids[i-1] {
			t.Errorf("id %d, %s, sorts before the one made before it, %s", i, id, ids[i-1])
		}
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"01890a5d-ac96-774b-bcce-b302099a8057", true},
		{"00000000-0000-0000-0000-000000000000", true},
		{"", false},
		{"abc", false},
		{"{01890A5D-AC96-774B-BCCE-B302099A8057}", false},
		{"urn:uuid:01890a5d-ac96-774b-bcce-b302099a8057", false},
		{"01890a5dac96774bbcceb302099a8057", false},
		{"zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", false},
		{"01890a5d+ac96+774b+bcce+b302099a8057", false},
		{"01890a5d-ac96-774b-bcce-b302099a805 ", false},
		{"../../../../../../../../etc/passwd!!", false}, // 36 characters
		{"01890a5d-ac96-774b-bcce-b302099a80577", false},
	}
	for _, tt := range tests {
		if got := ValidID(tt.id); got != tt.want {
			t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}
