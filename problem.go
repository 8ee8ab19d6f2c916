package mevents

import (
	"errors"
	"fmt"
)

// Code classifies an error for clients. The gateway maps each code to one
// HTTP status in exactly one place.
type Code string

// Error codes.
const (
	CodeInvalid      Code = "invalid"      // malformed or schema-invalid input (400)
	CodeForbidden    Code = "forbidden"    // not allowed for this client (403)
	CodeNotFound     Code = "not_found"    // no such resource (404)
	CodeTooLarge     Code = "too_large"    // over a size limit (413)
	CodeUnsupported  Code = "unsupported"  // unsupported media type or data format (415)
	CodeRateLimited  Code = "rate_limited" // over the client's rate (429)
	CodeUnavailable  Code = "unavailable"  // storage unavailable or in maintenance (503)
	CodeInternal     Code = "internal"     // a defect or unexpected failure (500)
	CodeConflict     Code = "conflict"     // state does not allow it (409)
	CodeUnauthorized Code = "unauthorized" // no usable identity (401)
)

// Error is an error with a code and a message that is safe to show to the
// client. Err, if set, is the cause; it is logged, never shown.
type Error struct {
	Code    Code
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Message, e.Err)
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted client-safe message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err: that of the first *Error in its chain,
// or CodeInternal.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the client-safe message of err, or "internal error".
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// Problem is one thing wrong with one event of a request.
type Problem struct {
	// Index is the 0-based position of the event in the request.
	Index int `json:"index"`
	// ID is the event's id when it could be read.
	ID string `json:"id,omitempty"`
	// Pointer is an RFC 6901 JSON pointer into the event ("/data/idnp",
	// "/source"); empty when the problem concerns the whole event.
	Pointer string `json:"pointer"`
	// Keyword names the rule that failed: a JSON Schema keyword ("pattern",
	// "required") for data, or a CloudEvents rule for attributes.
	Keyword string `json:"keyword"`
	Message string `json:"message"`
	// Code is the class of the problem; it decides the response status.
	Code Code `json:"-"`
}
