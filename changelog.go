package mevents

import _ "embed"

// Changelog is CHANGELOG.md: the API changelog, in Markdown.
//
//go:embed CHANGELOG.md
var Changelog string
