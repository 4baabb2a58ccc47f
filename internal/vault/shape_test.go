package vault

import (
	"regexp"
	"testing"
)

// TestShapesMatchPatterns: the byte-by-byte checks accept exactly what
// the regular expressions they replaced accepted.
func TestShapesMatchPatterns(t *testing.T) {
	checks := []struct {
		re *regexp.Regexp
		fn func(string) bool
	}{
		{regexp.MustCompile(`^[a-z0-9-]{1,32}$`), ValidEnvironment},
		{regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`), ValidKey},
		{regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`), func(s string) bool { return shaped(s, nil, segmentChars, 1, 64) }},
		{regexp.MustCompile(`^[a-z0-9][a-z0-9_.:/-]{0,63}$`), validTag},
		{regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,63}$`), validPurpose},
		{regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`), validLabel},
	}
	alphabet := "aZz09_-.:/ A\x00é\n"
	var inputs []string
	var grow func(string, int)
	grow = func(s string, n int) {
		inputs = append(inputs, s)
		if n == 0 {
			return
		}
		for i := range len(alphabet) {
			grow(s+alphabet[i:i+1], n-1)
		}
	}
	grow("", 3)
	for _, n := range []int{31, 32, 33, 61, 62, 63, 64, 65, 127, 128, 129} {
		for _, c := range []string{"a", "-", "_", "Z"} {
			for _, end := range []string{"", "-", "a"} {
				s := end
				for len(s) < n {
					s = c + s
				}
				inputs = append(inputs, s, "a"+s, s[:len(s)-1]+"-")
			}
		}
	}
	for i, c := range checks {
		for _, s := range inputs {
			if got, want := c.fn(s), c.re.MatchString(s); got != want {
				t.Errorf("check %d (%s) of %q: %v, the pattern says %v", i, c.re, s, got, want)
			}
		}
	}
}
