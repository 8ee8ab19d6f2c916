package gateway

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gin-gonic/gin"
	"github.com/mevents/mevents"
	"github.com/mevents/mevents/broker"
)

// Media types of the produce endpoints.
const (
	typeStructured = "application/cloudevents+json"
	typeBatch      = "application/cloudevents-batch+json"
)

// accepted is the body of a 202 answer.
type accepted struct {
	Count int      `json:"count"`
	IDs   []string `json:"ids"`
}

// postEvents handles POST /v1/events and, with test set, POST
// /v1/test-events: parse, authorize, validate every event, then store all
// of them or none.
func (s *Server) postEvents(test bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		cl, cat := clientOf(c), catalogOf(c)
		body, err := readBody(c.Request)
		if err != nil {
			s.fail(c, err)
			return
		}
		events, problems, err := parseRequest(c.Request, body)
		if err != nil {
			s.fail(c, err)
			return
		}
		c.Set(keyEvents, len(events))
		c.Set(keyEventList, events)
		if err := s.limit(c, cl, len(events)); err != nil {
			s.fail(c, err)
			return
		}
		problems = append(problems, cat.check(cl, test, events, problems)...)
		if len(problems) > 0 {
			sortProblems(problems)
			s.failWith(c, &mevents.Error{Code: problemsCode(problems),
				Message: fmt.Sprintf("%d of %d events rejected; no event of this request was stored", rejected(problems), len(events))}, problems)
			return
		}
		if tp := c.GetHeader("traceparent"); tp != "" {
			for i := range events {
				if _, ok := events[i].Attr("traceparent"); !ok {
					events[i].SetStringAttr("traceparent", tp)
					if ts := c.GetHeader("tracestate"); ts != "" {
						events[i].SetStringAttr("tracestate", ts)
					}
				}
			}
		}
		if err := s.broker.Publish(c.Request.Context(), broker.Publication{Producer: cl.ID, Test: test, Events: events}); err != nil {
			s.fail(c, err)
			return
		}
		ids := make([]string, len(events))
		for i := range events {
			ids[i] = events[i].ID
		}
		c.JSON(http.StatusAccepted, accepted{Count: len(events), IDs: ids})
	}
}

// readBody reads at most broker.MaxRequestSize bytes of the request body.
func readBody(r *http.Request) ([]byte, error) {
	if r.ContentLength > broker.MaxRequestSize {
		return nil, tooLarge()
	}
	body, err := readAll(http.MaxBytesReader(nil, r.Body, broker.MaxRequestSize), r.ContentLength)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, tooLarge()
	case err != nil:
		return nil, &mevents.Error{Code: mevents.CodeInvalid, Message: "could not read the request body", Err: err}
	}
	return body, nil
}

// readAll is io.ReadAll into a buffer of the announced size (plus a byte
// to see the end), not of doubling sizes from 512 bytes, which allocated
// about twice each body.
func readAll(rd io.Reader, size int64) ([]byte, error) {
	b := make([]byte, 0, max(512, min(size, broker.MaxRequestSize)+1))
	for {
		n, err := rd.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

func tooLarge() error {
	return mevents.Errorf(mevents.CodeTooLarge, "request body over %d bytes (1 MiB)", broker.MaxRequestSize)
}

// parseRequest reads the events of a request in the mode its Content-Type
// selects. The error is for a request that is not a CloudEvents request at
// all; problems are per event.
func parseRequest(r *http.Request, body []byte) ([]mevents.Event, []mevents.Problem, error) {
	ct := r.Header.Get("Content-Type")
	mt := mediaType(ct)
	switch {
	case mt == typeStructured:
		e, problems := mevents.ParseEvent(body, 0)
		return []mevents.Event{e}, problems, nil
	case mt == typeBatch:
		events, problems := mevents.ParseBatch(body)
		return events, problems, nil
	case strings.HasPrefix(mt, "application/cloudevents"):
		return nil, nil, mevents.Errorf(mevents.CodeUnsupported,
			"unsupported event format %q: use %s or %s", ct, typeStructured, typeBatch)
	case hasCEHeaders(r.Header):
		e, problems := parseBinary(r.Header, body)
		return []mevents.Event{e}, problems, nil
	default:
		return nil, nil, mevents.Errorf(mevents.CodeUnsupported,
			"unsupported media type %q: send %s, %s, or an event in binary mode with ce- headers", ct, typeStructured, typeBatch)
	}
}

func hasCEHeaders(h http.Header) bool {
	for k := range h {
		if len(k) > 3 && strings.EqualFold(k[:3], "ce-") {
			return true
		}
	}
	return false
}

// checkShare is the number of events per core above which a request's
// events are checked in parallel: validating one takes tens of
// microseconds, so a batch of 100 on one core takes milliseconds that
// idle cores can share.
const checkShare = 4

// check authorizes and validates the events that parsed without problems
// and returns their problems, in event order.
func (cat *Catalog) check(cl *broker.Client, test bool, events []mevents.Event, parsed []mevents.Problem) []mevents.Problem {
	bad := make(map[int]bool, len(parsed))
	for _, p := range parsed {
		bad[p.Index] = true
	}
	each := make([][]mevents.Problem, len(events))
	checkOne := func(i int) {
		if !bad[i] {
			each[i] = cat.checkEvent(cl, test, i, &events[i])
		}
	}
	if workers := min(runtime.GOMAXPROCS(0), len(events)/checkShare); workers > 1 {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int(next.Add(1) - 1); i < len(events); i = int(next.Add(1) - 1) {
					checkOne(i)
				}
			}()
		}
		wg.Wait()
	} else {
		for i := range events {
			checkOne(i)
		}
	}
	var problems []mevents.Problem
	for _, p := range each {
		problems = append(problems, p...)
	}
	return problems
}

func (cat *Catalog) checkEvent(cl *broker.Client, test bool, i int, e *mevents.Event) []mevents.Problem {
	p := mevents.Problem{Index: i, ID: e.ID, Pointer: "/type"}
	t := cat.reg.Type(e.Type)
	switch {
	case t == nil:
		p.Keyword, p.Code = "type", mevents.CodeForbidden
		p.Message = fmt.Sprintf("event type %q is not registered", e.Type)
		return []mevents.Problem{p}
	case test && !cl.MayConsume(e.Type):
		p.Keyword, p.Code = "consume", mevents.CodeForbidden
		p.Message = fmt.Sprintf("client %s may not send test events of type %q: it is not routed to it", cl.ID, e.Type)
		return []mevents.Problem{p}
	case !test && !cl.MayProduce(e.Type):
		p.Keyword, p.Code = "produce", mevents.CodeForbidden
		p.Message = fmt.Sprintf("client %s may not produce events of type %q", cl.ID, e.Type)
		return []mevents.Problem{p}
	}
	if size, limit := eventSize(e), t.MaxEventSize; limit > 0 && int64(size) > limit {
		p.Pointer, p.Keyword, p.Code = "", "maxEventSize", mevents.CodeTooLarge
		p.Message = fmt.Sprintf("event of %d bytes is over the limit of type %q (%d bytes)", size, e.Type, limit)
		return []mevents.Problem{p}
	}
	if !e.DataIsJSON() || e.DataBase64 != "" {
		p.Pointer, p.Keyword, p.Code = "/datacontenttype", "datacontenttype", mevents.CodeUnsupported
		p.Message = fmt.Sprintf("event type %q carries JSON data; datacontenttype %q with binary data is not accepted",
			e.Type, e.StringAttr("datacontenttype"))
		return []mevents.Problem{p}
	}
	return cat.validateData(i, e)
}

// eventSize is the size of the event in structured JSON, near enough: the
// sum of its attributes and its data.
func eventSize(e *mevents.Event) int {
	n := 2 + len(e.Data) + len(e.DataBase64) + 16
	for _, a := range e.Attrs {
		n += len(a.Name) + len(a.Value) + 4
	}
	return n
}

// problemsCode is the status class of a rejected request: the one code all
// problems share, or "invalid" when they differ.
func problemsCode(problems []mevents.Problem) mevents.Code {
	code := problems[0].Code
	for _, p := range problems[1:] {
		if p.Code != code {
			return mevents.CodeInvalid
		}
	}
	if code == "" {
		return mevents.CodeInvalid
	}
	return code
}

func rejected(problems []mevents.Problem) int {
	seen := make(map[int]bool)
	for _, p := range problems {
		seen[p.Index] = true
	}
	return len(seen)
}
