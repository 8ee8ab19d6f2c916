package gateway

import (
	"strings"
	"testing"
)

func TestRenderMarkdown(t *testing.T) {
	tests := []struct {
		name, md, want string
	}{
		{"heading", "## Added <b>", "<h2>Added &lt;b&gt;</h2>\n"},
		{"not a heading", "#hashtag", "<p>#hashtag</p>\n"},
		{"paragraph joins lines", "one\ntwo\n\nthree", "<p>one two</p>\n<p>three</p>\n"},
		{"list with continuation", "- a `x<y`\n  more\n- b", "<ul><li>a <code>x&lt;y</code> more</li><li>b</li></ul>\n"},
		{"ordered list", "1. a\n2. b", "<ol><li>a</li><li>b</li></ol>\n"},
		{"code block", "```go\n<script>alert(1)</script>\n```", "<pre><code>&lt;script&gt;alert(1)&lt;/script&gt;\n</code></pre>\n"},
		{"unclosed code block", "```\nx", "<pre><code>x\n</code></pre>\n"},
		{"html is text", `<img src=x onerror="alert(1)">`, "<p>&lt;img src=x onerror=&#34;alert(1)&#34;&gt;</p>\n"},
		{"unmatched backtick", "a `b", "<p>a `b</p>\n"},
		{"link stays text", "[x](javascript:alert(1))", "<p>[x](javascript:alert(1))</p>\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page := renderMarkdown("t", tt.md)
			body := page[strings.Index(page, "<body>\n")+len("<body>\n") : strings.Index(page, "</body>")]
			if body != tt.want {
				t.Fatalf("got  %q\nwant %q", body, tt.want)
			}
		})
	}
}
