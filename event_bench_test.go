package mevents

import (
	"bytes"
	"strings"
	"testing"
)

// benchEvent is a typical event of about 1 KiB: a civil-registry record.
var benchEvent = []byte(`{"specversion":"1.0","id":"8f1e6c2a-4b1d-4c5e-9a7f-3b2c1d0e9f8a",` +
	`"source":"https://civil-registry.gov.md/agency/42","type":"md.gov.person.registered",` +
	`"time":"2024-05-01T12:34:56.789Z","datacontenttype":"application/json",` +
	`"dataschema":"https://schemas.gov.md/person-registered/v1.json","subject":"2000123456789",` +
	`"partitionkey":"2000123456789","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",` +
	`"comexampleregion":"chisinau","comexamplepriority":3,` +
	`"data":{"idnp":"2000123456789","firstName":"Ion","lastName":"Popescu","patronymic":"Vasile",` +
	`"birthDate":"1990-01-01","birthPlace":{"country":"MD","locality":"Chișinău"},"sex":"M",` +
	`"citizenship":["MD","RO"],"address":{"street":"Strada Ștefan cel Mare","number":"134","apartment":12,` +
	`"postalCode":"MD-2012","locality":"Chișinău"},"documents":[{"kind":"passport","series":"AB","number":"1234567",` +
	`"issued":"2015-06-01","expires":"2025-06-01"},{"kind":"idcard","series":"B","number":"7654321",` +
	`"issued":"2018-03-15","expires":"2028-03-15"}],"registeredBy":"oficiul-starii-civile-42",` +
	`"registeredAt":"2024-05-01T12:34:56Z","remarks":"` + strings.Repeat("registered in person; ", 8) + `"}}`)

func BenchmarkParseEvent(b *testing.B) {
	if _, probs := ParseEvent(benchEvent, 0); len(probs) != 0 {
		b.Fatal(probs)
	}
	b.SetBytes(int64(len(benchEvent)))
	b.ReportAllocs()
	for b.Loop() {
		ParseEvent(benchEvent, 0)
	}
}

func BenchmarkParseBatch(b *testing.B) {
	body := append([]byte{'['}, bytes.Repeat(append(append([]byte{}, benchEvent...), ','), 100)...)
	body[len(body)-1] = ']'
	if events, probs := ParseBatch(body); len(probs) != 0 || len(events) != 100 {
		b.Fatal(len(events), probs)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		ParseBatch(body)
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	e, _ := ParseEvent(benchEvent, 0)
	e.SetStringAttr("recordedtime", "2024-05-01T12:34:57.123456789Z")
	e.SetStringAttr("authtype", "service_account")
	e.SetStringAttr("authid", "civil-registry")
	buf := e.AppendJSON(nil)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = e.AppendJSON(buf[:0])
	}
}
