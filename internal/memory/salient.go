package memory

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Sentence bounds of the verbatim heuristic, in characters.
const (
	minSalientChars = 3
	maxSalientChars = 300
)

// salientStarts open a sentence a user says about themselves: who they
// are, what they do, like, have or use, or what they ask to be remembered.
var salientStarts = []string{
	"i am ", "i'm ", "i work", "i live", "i like ", "i love ", "i prefer ", "i have ", "i've ", "i use ",
	"i enjoy ", "i hate ", "i dislike ", "i don't like ", "i do not like ", "i speak ", "i was born ", "i own ",
	"my ", "call me ", "remember that ", "please remember ", "remember: ",
}

// transientStarts match salientStarts but say what the user wants or
// feels now, not a lasting fact about them.
var transientStarts = []string{
	"i am sorry", "i'm sorry", "i am not sure", "i'm not sure", "i am wondering", "i'm wondering",
	"i am curious", "i'm curious", "i am trying", "i'm trying", "i am looking for", "i'm looking for",
	"i am asking", "i'm asking", "i have a question", "i have questions", "i have another question",
	"i have no idea", "my question",
}

// fillers are words a sentence may open with before its subject.
var fillers = []string{"also", "and", "but", "btw", "by the way", "oh", "well", "actually", "so", "ok", "okay",
	"hi", "hello", "hey", "fyi", "just so you know"}

// SalientSentences returns the sentences of a user's message worth
// remembering verbatim, when no model extracts facts. A sentence is kept
// when it:
//   - is 3 to 300 characters long, trimmed;
//   - is not a question (it does not end with "?");
//   - states something about the user in the first person, after an
//     optional opening filler ("also,", "btw", "by the way", …): it begins
//     with "I am", "I'm", "I work", "I live", "I like", "I love", "I
//     prefer", "I have", "I've", "I use", "I enjoy", "I hate", "I dislike",
//     "I don't like", "I speak", "I was born", "I own", "my", "call me" or
//     "remember that" (case-insensitive, either apostrophe);
//   - is not a passing state the list above would match ("I'm sorry",
//     "I'm not sure", "I'm looking for", "I have a question", "my
//     question", …).
//
// Sentences end at ".", "!", "?" or ";" followed by a space, or at a line
// break; the kept ones are returned as written, whitespace collapsed,
// without duplicates.
func SalientSentences(text string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range sentences(text) {
		if !salient(s) {
			continue
		}
		if h := Hash(s); !seen[h] {
			seen[h] = true
			out = append(out, s)
		}
	}
	return out
}

// sentences splits text at sentence ends and line breaks, collapsing
// whitespace inside each sentence.
func sentences(text string) []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		if s := strings.Join(strings.Fields(cur.String()), " "); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	for i, r := range text {
		if r == '\n' || r == '\r' {
			flush()
			continue
		}
		cur.WriteRune(r)
		if r == '.' || r == '!' || r == '?' || r == ';' {
			next, _ := utf8.DecodeRuneInString(text[i+utf8.RuneLen(r):])
			if i+utf8.RuneLen(r) == len(text) || unicode.IsSpace(next) {
				flush()
			}
		}
	}
	flush()
	return out
}

func salient(s string) bool {
	if n := utf8.RuneCountInString(s); n < minSalientChars || n > maxSalientChars {
		return false
	}
	if strings.HasSuffix(s, "?") {
		return false
	}
	low := strings.ToLower(strings.ReplaceAll(s, "’", "'"))
	low = trimFillers(low)
	for _, t := range transientStarts {
		if strings.HasPrefix(low, t) {
			return false
		}
	}
	for _, p := range salientStarts {
		if strings.HasPrefix(low, p) {
			return true
		}
	}
	return false
}

// trimFillers drops opening fillers and the punctuation after them.
func trimFillers(low string) string {
	for changed := true; changed; {
		changed = false
		for _, f := range fillers {
			rest, ok := strings.CutPrefix(low, f)
			if !ok || rest == "" || !strings.ContainsRune(" ,:-!", rune(rest[0])) {
				continue
			}
			low = strings.TrimLeft(rest, " ,:-!")
			changed = true
		}
	}
	return low
}

// Normalize returns the form of a memory's text that Hash hashes:
// lower-cased, whitespace collapsed, the closing ".", "!" or ";" and
// curly apostrophes folded, so a fact said twice with other spacing or
// capitals is one memory.
func Normalize(text string) string {
	s := strings.ToLower(strings.Join(strings.Fields(text), " "))
	s = strings.ReplaceAll(s, "’", "'")
	return strings.TrimRight(s, ".!; ")
}

// Hash returns the hex SHA-256 of Normalize(text): a memory's identity
// among its user's memories of the app.
func Hash(text string) string {
	sum := sha256.Sum256([]byte(Normalize(text)))
	return hex.EncodeToString(sum[:])
}
