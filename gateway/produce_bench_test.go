package gateway_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// BenchmarkProduce measures the whole produce path on one node: HTTPS
// with mTLS over HTTP/2, parsing, authorization, schema validation and
// storing, for batches of 100 events of ~1 KiB from parallel producers.
func BenchmarkProduce(b *testing.B) {
	e := newEnvTB(b)
	pad := strings.Repeat("x", 800)
	var seq atomic.Int64
	b.SetBytes(100 * 1024)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := e.client("producer", nil, true)
		var buf bytes.Buffer
		for pb.Next() {
			n := seq.Add(1)
			buf.Reset()
			buf.WriteByte('[')
			for i := 0; i < 100; i++ {
				if i > 0 {
					buf.WriteByte(',')
				}
				fmt.Fprintf(&buf, `{"specversion":"1.0","type":%q,"source":"/bench","id":"%d-%d","partitionkey":"k%d","data":{"idnp":"2000000000001","firstName":%q,"birthDate":"1990-05-17"}}`,
					personType, n, i, i%50, pad)
			}
			buf.WriteByte(']')
			req, _ := http.NewRequest(http.MethodPost, e.url+"/v1/events", bytes.NewReader(buf.Bytes()))
			req.Header.Set("Content-Type", "application/cloudevents-batch+json")
			resp, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(seq.Load()*100)/b.Elapsed().Seconds(), "events/s")
}
