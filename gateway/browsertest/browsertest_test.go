package browsertest_test

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/mevents/mevents/gateway/browsertest"
)

// The browser opens an HTTP/2 page over TLS and the script reads it.
func TestRun(t *testing.T) {
	b := browsertest.New(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<title>" + r.Proto + "</title>"))
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{}
	srv.StartTLS()
	defer srv.Close()
	out := b.Run(t, browsertest.Page{URL: srv.URL, Input: "x", Script: `return { title: await page.title(), input };`})
	var got struct{ Title, Input string }
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	if got.Title != "HTTP/2.0" || got.Input != "x" {
		t.Fatalf("got %+v", got)
	}
}
