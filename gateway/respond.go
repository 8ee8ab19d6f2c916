package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
)

// codeMethodNotAllowed is a code only the router produces.
const codeMethodNotAllowed mevents.Code = "method_not_allowed"

// status maps an error code to its HTTP status: the one place that does.
func status(code mevents.Code) int {
	switch code {
	case mevents.CodeInvalid:
		return http.StatusBadRequest
	case mevents.CodeUnauthorized:
		return http.StatusUnauthorized
	case mevents.CodeForbidden:
		return http.StatusForbidden
	case mevents.CodeNotFound:
		return http.StatusNotFound
	case codeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case mevents.CodeConflict:
		return http.StatusConflict
	case mevents.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case mevents.CodeUnsupported:
		return http.StatusUnsupportedMediaType
	case mevents.CodeRateLimited:
		return http.StatusTooManyRequests
	case mevents.CodeUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// problem is an RFC 9457 problem detail.
type problem struct {
	Type      string            `json:"type"`
	Title     string            `json:"title"`
	Status    int               `json:"status"`
	Detail    string            `json:"detail"`
	RequestID string            `json:"requestId"`
	Errors    []mevents.Problem `json:"errors,omitempty"`
}

const problemJSON = "application/problem+json"

// Context keys.
const (
	keyRequestID = "mevents.requestID"
	keyClient    = "mevents.client"
	keyCatalog   = "mevents.catalog"
	keyEvents    = "mevents.events"
	keyErr       = "mevents.err"
)

// fail answers with err as problem+json and aborts the request. Internal
// errors reach the client as "internal error"; the cause is logged once,
// by the access log.
func (s *Server) fail(c *gin.Context, err error) {
	s.failWith(c, err, nil)
}

// failWith is fail with a list of per-event problems.
func (s *Server) failWith(c *gin.Context, err error, problems []mevents.Problem) {
	code := mevents.ErrorCode(err)
	st := status(code)
	if st == http.StatusServiceUnavailable || st == http.StatusTooManyRequests {
		if c.Writer.Header().Get("Retry-After") == "" {
			c.Header("Retry-After", "5")
		}
	}
	c.Set(keyErr, err)
	if len(problems) > 0 {
		c.Set(keyProblems, problems)
	}
	c.Header("Content-Type", problemJSON)
	c.AbortWithStatusJSON(st, problem{
		Type:      "urn:mevents:error:" + string(code),
		Title:     http.StatusText(st),
		Status:    st,
		Detail:    mevents.ErrorMessage(err),
		RequestID: c.GetString(keyRequestID),
		Errors:    problems,
	})
}

// recover turns a panic into a 500 with a request id; the panic is logged.
func (s *Server) recover(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			s.log.Error("panic in handler", "panic", r, "path", c.Request.URL.Path, "requestId", c.GetString(keyRequestID))
			if !c.Writer.Written() {
				s.fail(c, mevents.Errorf(mevents.CodeInternal, "internal error"))
			}
		}
	}()
	c.Next()
}

// accessLog assigns the request id and writes one log line per request.
func (s *Server) accessLog(c *gin.Context) {
	start := time.Now()
	id := newRequestID()
	c.Set(keyRequestID, id)
	c.Header("X-Request-Id", id)
	c.Next()

	elapsed := time.Since(start)
	s.observe(c, elapsed)
	attrs := []slog.Attr{
		slog.String("requestId", id),
		slog.String("method", c.Request.Method),
		slog.String("path", c.Request.URL.Path),
		slog.Int("status", c.Writer.Status()),
		slog.Duration("latency", elapsed),
		slog.String("proto", c.Request.Proto),
	}
	if cl, ok := c.Get(keyClient); ok {
		attrs = append(attrs, slog.String("client", cl.(*broker.Client).ID))
	}
	if n, ok := c.Get(keyEvents); ok {
		attrs = append(attrs, slog.Int("events", n.(int)))
	}
	if id, ok := traceID(c.GetHeader("traceparent")); ok {
		attrs = append(attrs, slog.String("traceId", id))
	}
	level := slog.LevelInfo
	if v, ok := c.Get(keyErr); ok {
		err := v.(error)
		attrs = append(attrs, slog.String("err", err.Error()))
		// An unavailable answer with a cause is a failure to look into;
		// without one it is a decision (maintenance, starting up).
		code := mevents.ErrorCode(err)
		if code == mevents.CodeInternal || (code == mevents.CodeUnavailable && errors.Unwrap(err) != nil) {
			level = slog.LevelError
		}
	}
	s.log.LogAttrs(c.Request.Context(), level, "request", attrs...)
}

// traceID returns the trace id of a W3C traceparent header
// ("00-<32 hex>-<16 hex>-<2 hex>"), or false when the header is not one.
func traceID(tp string) (string, bool) {
	if len(tp) < 55 || tp[2] != '-' || tp[35] != '-' {
		return "", false
	}
	id := tp[3:35]
	if _, err := hex.DecodeString(id); err != nil || id == "00000000000000000000000000000000" {
		return "", false
	}
	return id, true
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
