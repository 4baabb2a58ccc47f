package web

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

func TestRenderMarkdown(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Hello", "<p>Hello</p>"},
		{"a\nb\n\nc", "<p>a<br>b</p><p>c</p>"},
		{"**bold** and *em* and _em_", "<p><strong>bold</strong> and <em>em</em> and <em>em</em></p>"},
		{"snake_case_name stays", "<p>snake_case_name stays</p>"},
		{"2 * 3 * 4", "<p>2 * 3 * 4</p>"},
		{"use `a<b>`", "<p>use <code>a&lt;b&gt;</code></p>"},
		{"```\n<script>x</script>\n```", "<pre><code>&lt;script&gt;x&lt;/script&gt;</code></pre>"},
		{"# Title", "<h3>Title</h3>"},
		{"###### Small", "<h6>Small</h6>"},
		{"- one\n- two", "<ul><li>one</li><li>two</li></ul>"},
		{"1. one\n2. two", "<ol><li>one</li><li>two</li></ol>"},
		{"> quoted\n> more", "<blockquote><p>quoted<br>more</p></blockquote>"},
		{"[site](https://example.com/a?b=1&c=2)", `<p><a href="https://example.com/a?b=1&amp;c=2" rel="noopener noreferrer nofollow">site</a></p>`},
		{"[x](javascript:alert(1))", "<p>x</p>"},
		{"[x](JaVaScRiPt:alert(1))", "<p>x</p>"},
		{"[x](data:text/html,<b>)", "<p>x</p>"},
		{"[x](//evil.test/)", "<p>x</p>"},
		{`[x](https://a.test/" onmouseover="alert(1))`, "<p>x</p>"},
		{"<img src=x onerror=alert(1)>", "<p>&lt;img src=x onerror=alert(1)&gt;</p>"},
		{"<svg onload=alert(1)>", "<p>&lt;svg onload=alert(1)&gt;</p>"},
		{`\*not em\*`, "<p>*not em*</p>"},
		{"Refunds take 14 days [1].", "<p>Refunds take 14 days [1].</p>"},
		{"héllo **wörld**", "<p>héllo <strong>wörld</strong></p>"},
	}
	for _, tt := range tests {
		if got := string(renderMarkdown(tt.in)); got != tt.want {
			t.Errorf("renderMarkdown(%q)\n got %s\nwant %s", tt.in, got, tt.want)
		}
	}
}

// allowedTags is everything renderMarkdown and snippetHTML may emit.
var allowedTags = map[string]bool{"p": true, "br": true, "strong": true, "em": true, "code": true, "pre": true, "ul": true,
	"ol": true, "li": true, "blockquote": true, "h3": true, "h4": true, "h5": true, "h6": true, "a": true, "mark": true}

// checkInert fails unless out holds only allowed tags, no attribute but a
// link's href (http, https or mailto) and rel.
func checkInert(t *testing.T, in, out string) {
	t.Helper()
	z := html.NewTokenizer(strings.NewReader(out))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		tok := z.Token()
		if !allowedTags[tok.Data] {
			t.Errorf("input %q: tag <%s> in %s", in, tok.Data, out)
		}
		for _, a := range tok.Attr {
			switch {
			case tok.Data == "a" && a.Key == "rel":
			case tok.Data == "a" && a.Key == "href":
				l := strings.ToLower(a.Val)
				if !strings.HasPrefix(l, "https://") && !strings.HasPrefix(l, "http://") && !strings.HasPrefix(l, "mailto:") {
					t.Errorf("input %q: href %q in %s", in, a.Val, out)
				}
			default:
				t.Errorf("input %q: attribute %s=%q on <%s> in %s", in, a.Key, a.Val, tok.Data, out)
			}
		}
	}
}

// xssInputs are stored-XSS attempts, as a chat message, a document name
// or a chatbot name may hold them.
var xssInputs = []string{
	"<img src=x onerror=alert(1)>",
	"<svg onload=alert(1)>",
	"<script>alert(1)</script>",
	"[click](javascript:alert(1))",
	"[click](javascript&colon;alert(1))",
	"[click](java\tscript:alert(1))",
	"**<b onclick=alert(1)>x</b>**",
	"`<img src=x onerror=alert(1)>`",
	"```\n</code></pre><img src=x onerror=alert(1)>\n```",
	"[<img src=x onerror=alert(1)>](https://ok.test/)",
	"<a href=\"javascript:alert(1)\">x</a>",
	"> <iframe src=javascript:alert(1)>",
	"- <math><mi xlink:href=javascript:alert(1)>x",
	"&lt;img src=x onerror=alert(1)&gt;",
	"[x](https://ok.test/\"><img src=x onerror=alert(1)>)",
}

func TestRenderMarkdownInert(t *testing.T) {
	for _, in := range xssInputs {
		checkInert(t, in, string(renderMarkdown(in)))
	}
}

func FuzzRenderMarkdown(f *testing.F) {
	for _, in := range xssInputs {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		checkInert(t, in, string(renderMarkdown(in)))
	})
}

func TestRenderMarkdownUnmatchedIsLinear(t *testing.T) {
	// Thousands of unmatched markers must not cost a scan each.
	in := strings.Repeat("*a [c _d (", 20000) + "`"
	start := time.Now()
	out := renderMarkdown(in)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("200 KB of unmatched markers took %v", d)
	}
	if !strings.Contains(string(out), "*a [c _d (") {
		t.Fatalf("unmatched markers not kept as text: %.80s", out)
	}
}

func TestSnippetHTML(t *testing.T) {
	tests := []struct{ in, want string }{
		{"refunds are <mark>issued</mark> within", "refunds are <mark>issued</mark> within"},
		{"a &lt;b&gt; <mark>c</mark>", "a &lt;b&gt; <mark>c</mark>"},
		// Unescaped markup in a snippet still comes out as text.
		{"<img src=x onerror=alert(1)> <mark>hit</mark>", "&lt;img src=x onerror=alert(1)&gt; <mark>hit</mark>"},
		{"<mark>open", "<mark>open</mark>"},
		{"</mark>stray", "&lt;/mark&gt;stray"},
		{"<mark><svg onload=alert(1)></mark>", "<mark>&lt;svg onload=alert(1)&gt;</mark>"},
	}
	for _, tt := range tests {
		got := string(snippetHTML(tt.in))
		if got != tt.want {
			t.Errorf("snippetHTML(%q) = %s, want %s", tt.in, got, tt.want)
		}
		checkInert(t, tt.in, got)
	}
}
