package gateway

import (
	"html"
	"strings"
)

// renderMarkdown turns the small Markdown subset the changelog uses into a
// standalone HTML page: ATX headings, "-"/"*" and "1." lists, fenced code
// blocks, paragraphs and inline `code`. Every piece of text is escaped, so
// the output carries no markup but what this function writes; everything
// else (links, emphasis, HTML) shows as the text it is.
func renderMarkdown(title, md string) string {
	var b strings.Builder
	b.WriteString("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>")
	b.WriteString(html.EscapeString(title))
	b.WriteString("</title>\n<style>body{font-family:system-ui,sans-serif;max-width:50rem;margin:2rem auto;padding:0 1rem;line-height:1.5}" +
		"code,pre{background:#f3f3f3;border-radius:3px}pre{padding:.5rem;overflow-x:auto}</style></head><body>\n")

	var para []string
	list := "" // "ul" or "ol" while in a list
	inCode := false
	flushPara := func() {
		if len(para) > 0 {
			b.WriteString("<p>" + inline(strings.Join(para, " ")) + "</p>\n")
			para = nil
		}
	}
	closeList := func() {
		if list != "" {
			b.WriteString("</li></" + list + ">\n")
			list = ""
		}
	}
	for _, line := range strings.Split(strings.ReplaceAll(md, "\r\n", "\n"), "\n") {
		trimmed := strings.TrimSpace(line)
		if inCode {
			if strings.HasPrefix(trimmed, "```") {
				b.WriteString("</code></pre>\n")
				inCode = false
				continue
			}
			b.WriteString(html.EscapeString(line) + "\n")
			continue
		}
		if strings.HasPrefix(trimmed, "```") {
			flushPara()
			closeList()
			b.WriteString("<pre><code>")
			inCode = true
			continue
		}
		if trimmed == "" {
			flushPara()
			continue
		}
		if level := headingLevel(trimmed); level > 0 {
			flushPara()
			closeList()
			tag := "h" + string(rune('0'+level))
			b.WriteString("<" + tag + ">" + inline(strings.TrimSpace(trimmed[level:])) + "</" + tag + ">\n")
			continue
		}
		if kind, rest, ok := listItem(trimmed); ok {
			flushPara()
			if list != kind {
				closeList()
				b.WriteString("<" + kind + "><li>")
				list = kind
			} else {
				b.WriteString("</li><li>")
			}
			b.WriteString(inline(rest))
			continue
		}
		if list != "" && line != trimmed { // an indented continuation of a list item
			b.WriteString(" " + inline(trimmed))
			continue
		}
		closeList()
		para = append(para, trimmed)
	}
	flushPara()
	closeList()
	if inCode {
		b.WriteString("</code></pre>\n")
	}
	b.WriteString("</body></html>\n")
	return b.String()
}

// headingLevel returns n for a line "#…# text" with n (1–6) hashes, else 0.
func headingLevel(line string) int {
	n := 0
	for n < len(line) && line[n] == '#' {
		n++
	}
	if n == 0 || n > 6 || (n < len(line) && line[n] != ' ') {
		return 0
	}
	return n
}

// listItem recognises "- x", "* x" and "12. x".
func listItem(line string) (kind, rest string, ok bool) {
	if strings.HasPrefix(line, "- ") || strings.HasPrefix(line, "* ") {
		return "ul", line[2:], true
	}
	i := 0
	for i < len(line) && line[i] >= '0' && line[i] <= '9' {
		i++
	}
	if i > 0 && strings.HasPrefix(line[i:], ". ") {
		return "ol", line[i+2:], true
	}
	return "", "", false
}

// inline escapes text and marks up `code` spans.
func inline(text string) string {
	parts := strings.Split(text, "`")
	var b strings.Builder
	for i, p := range parts {
		switch {
		case i%2 == 1 && i < len(parts)-1:
			b.WriteString("<code>" + html.EscapeString(p) + "</code>")
		case i%2 == 1: // an unmatched backtick
			b.WriteString("`" + html.EscapeString(p))
		default:
			b.WriteString(html.EscapeString(p))
		}
	}
	return b.String()
}
