// Package mevents holds the documents built into the mevents binary: the
// API changelog (CHANGELOG.md), which the gateway serves at /changelog.
// The code lives in the packages below it; see README.md.
package mevents

import _ "embed"

// Changelog is CHANGELOG.md: the API changelog, in Markdown.
//
//go:embed CHANGELOG.md
var Changelog string
