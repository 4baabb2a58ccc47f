package fulltext

import (
	"html"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSnippet(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		query string
		width int
		want  string
	}{
		{"empty text", "", "cat", 50, ""},
		{"whole text fits, no ellipsis", "The cat sat.", "cat", 50, "The <mark>cat</mark> sat."},
		{"every match marked", "Cats and a cat; CAT!", "cat", 50, "<mark>Cats</mark> and a <mark>cat</mark>; <mark>CAT</mark>!"},
		{"stemmed match", "The runner runs fast", "running", 100, "The runner <mark>runs</mark> fast"},
		{"several terms", "dogs chase cats", "cat dog", 100, "<mark>dogs</mark> chase <mark>cats</mark>"},
		{"no match gives the start", "alpha beta gamma delta", "zebra", 12, "alpha beta…"},
		{"empty query gives the start", "alpha beta gamma delta", "", 12, "alpha beta…"},
		{"stop-word query gives the start", "the beta gamma delta", "the", 12, "the beta…"},
		{"stop words not marked", "the cat", "the cat", 50, "the <mark>cat</mark>"},
		{"match at the start cut at the end", "cat " + strings.Repeat("filler ", 20), "cat", 20, "<mark>cat</mark> filler filler…"},
		{"match at the end cut at the start", strings.Repeat("filler ", 20) + "cat", "cat", 20, "…filler filler <mark>cat</mark>"},
		{"match in the middle cut both sides", strings.Repeat("filler ", 10) + "cat " + strings.Repeat("filler ", 10), "cat", 17, "…filler <mark>cat</mark> filler…"},
		{"cut after the first byte", "!dog cat", "cat", 7, "…dog <mark>cat</mark>"},
		{"one word longer than the width", strings.Repeat("x", 30), "zebra", 10, "…"},
		{"width 0", "cat sat", "cat", 0, "…"},
		{"non-ASCII match", "Über Ünïcode text", "ünïcode", 100, "Über <mark>Ünïcode</mark> text"},
		{"quote and apostrophe escaped", `say "cat's"`, "cat", 100, `say &#34;<mark>cat</mark>&#39;s&#34;`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Snippet(tt.text, tt.query, tt.width)
			if got != tt.want {
				t.Errorf("Snippet(%q, %q, %d)\n got %q\nwant %q", tt.text, tt.query, tt.width, got, tt.want)
			}
			checkSnippet(t, tt.text, tt.query, got)
		})
	}
}

func TestSnippetEscapesHTML(t *testing.T) {
	text := `<script>alert("cat")</script> & <b>cats</b> &amp; <mark>dog</mark>`
	got := Snippet(text, "cat dog", 200)
	want := `&lt;script&gt;alert(&#34;<mark>cat</mark>&#34;)&lt;/script&gt; &amp; &lt;b&gt;<mark>cats</mark>&lt;/b&gt; &amp;amp; &lt;mark&gt;<mark>dog</mark>&lt;/mark&gt;`
	if got != want {
		t.Errorf("Snippet\n got %q\nwant %q", got, want)
	}
	checkSnippet(t, text, "cat dog", got)
}

// TestSnippetBestWindow checks that of several passages the one with the
// most distinct query terms is shown, ahead of one that only repeats a
// term.
func TestSnippetBestWindow(t *testing.T) {
	filler := strings.Repeat("lorem ipsum dolor sit amet ", 20)
	text := "apple apple apple apple. " + filler + "An apple, a banana and a cherry. " + filler + "cherry cherry."
	got := Snippet(text, "apples bananas cherries", 60)
	for _, w := range []string{"<mark>apple</mark>", "<mark>banana</mark>", "<mark>cherry</mark>"} {
		if !strings.Contains(got, w) {
			t.Errorf("snippet %q lacks %s", got, w)
		}
	}
	if !strings.HasPrefix(got, "…") || !strings.HasSuffix(got, "…") {
		t.Errorf("snippet %q is not cut on both sides", got)
	}
	if len(got) > 60+len("<mark></mark>")*3+2*len("…") {
		t.Errorf("snippet %q is far wider than 60", got)
	}
	checkSnippet(t, text, "apples bananas cherries", got)

	// With one term only, the passage with more of its matches wins.
	text = "cat. " + filler + "cat cat cat. " + filler
	got = Snippet(text, "cat", 30)
	if strings.Count(got, "<mark>") != 3 {
		t.Errorf("snippet %q does not show the three cats", got)
	}
	checkSnippet(t, text, "cat", got)
}

func TestSnippetMultiByte(t *testing.T) {
	texts := []string{
		strings.Repeat("éèê ", 30) + "Ünïcode " + strings.Repeat("日本語テキスト ", 10),
		strings.Repeat("日本語テキスト", 20) + " cat " + strings.Repeat("🙂👍🏽", 20),
		strings.Repeat("é", 100),
		"cafe\u0301 " + strings.Repeat("naïve ", 20) + "cat",
	}
	for _, text := range texts {
		for _, query := range []string{"ünïcode", "cat", "naïve", "zebra", ""} {
			for width := range 60 {
				got := Snippet(text, query, width)
				if !utf8.ValidString(got) {
					t.Fatalf("Snippet(%q, %q, %d) = %q is not valid UTF-8", text, query, width, got)
				}
				checkSnippet(t, text, query, got)
			}
		}
	}
}

// checkSnippet checks the snippet's form: valid HTML whose only tags are
// unnested <mark> pairs around words matching the query, and which
// without them and unescaped is a passage of text, with "…" where cut.
func checkSnippet(t *testing.T, text, query, snippet string) {
	t.Helper()
	want := make(map[string]bool)
	for _, qt := range ParseQuery(query) {
		want[qt.Term] = true
	}
	var plain strings.Builder
	rest := snippet
	for {
		open := strings.Index(rest, "<mark>")
		if open < 0 {
			plain.WriteString(rest)
			break
		}
		plain.WriteString(rest[:open])
		rest = rest[open+len("<mark>"):]
		end := strings.Index(rest, "</mark>")
		if end < 0 {
			t.Fatalf("snippet %q: unclosed <mark>", snippet)
		}
		marked := rest[:end]
		if strings.ContainsAny(marked, "<>") {
			t.Fatalf("snippet %q: nested tag in %q", snippet, marked)
		}
		if terms := Terms(html.UnescapeString(marked)); len(terms) != 1 || !want[terms[0]] {
			t.Fatalf("snippet %q: marked %q is not one query term (%q)", snippet, marked, terms)
		}
		plain.WriteString(marked)
		rest = rest[end+len("</mark>"):]
	}
	p := plain.String()
	if strings.ContainsAny(p, "<>") {
		t.Fatalf("snippet %q: a tag other than <mark>", snippet)
	}
	p = html.UnescapeString(p)
	p = strings.TrimPrefix(p, "…")
	p = strings.TrimSuffix(p, "…")
	if !strings.Contains(text, p) {
		t.Fatalf("snippet %q: %q is not in the text", snippet, p)
	}
}

func FuzzSnippet(f *testing.F) {
	f.Add("The cat sat on the mat.", "cat", 10)
	f.Add("<script>alert('cats & dogs')</script>", "dog cat", 20)
	f.Add(strings.Repeat("éèê ", 30)+"Ünïcode 日本語", "ünïcode", 15)
	f.Add("runner runs running ran", "running", 7)
	f.Add("cafe\u0301 \xff\xfe broken cat", "café cat", 9)
	f.Add("…cat…", "cat", 1)
	f.Fuzz(func(t *testing.T, text, query string, width int) {
		width = int(uint(width) % 300) // Snippet takes a width of 0 or more
		got := Snippet(text, query, width)
		if utf8.ValidString(text) && !utf8.ValidString(got) {
			t.Fatalf("Snippet(%q, %q, %d) = %q is not valid UTF-8", text, query, width, got)
		}
		checkSnippet(t, text, query, got)
	})
}
