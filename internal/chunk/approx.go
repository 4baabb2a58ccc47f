package chunk

import (
	"unicode"
	"unicode/utf8"
)

// Approx estimates the tokens of s without a tokenizer, by the rule of
// thumb for BPE encodings of about four bytes of Latin-script text per
// token: each word (a run of non-space characters) counts a token per
// started four bytes of its one- and two-byte characters, and a token for
// each character of three or more bytes (CJK ideographs, emoji), which
// such encodings rarely merge. It errs high on English, which is the safe
// side for a size limit, and any character counts at most one token.
func Approx(s string) int {
	n, run := 0, 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			if c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f' {
				n += (run + 3) / 4
				run = 0
			} else {
				run++
			}
			continue
		}
		r, w := utf8.DecodeRuneInString(s[i:])
		i += w
		switch {
		case unicode.IsSpace(r):
			n += (run + 3) / 4
			run = 0
		case w <= 2:
			run += w
		default:
			n += (run+3)/4 + 1
			run = 0
		}
	}
	return n + (run+3)/4
}
