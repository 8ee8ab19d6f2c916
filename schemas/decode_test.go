package schemas

import (
	"reflect"
	"testing"
)

var decodeSeeds = []string{
	`null`, `true`, `false`, `0`, `-0`, `1.5e10`, `-12.34E-5`, `"x"`, `""`, `[]`, `{}`,
	`{"a":1,"a":2}`, `[1,[2,[3]],{"b":null}]`, ` { "k" : [ true , false ] } `,
	`"\u00e9\n\t\"\\\/\b\f\r"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\ud83dx"`, `"\udc00\ud83d"`,
	"\"caf\xc3\xa9\"", "\"\xff\xfe\"", `"Chișinău"`, `{"é":"ș"}`,
	`01`, `1.`, `.5`, `-`, `1e`, `[1,]`, `{"a"}`, `{"a":}`, `{,}`, `"\x"`, `"\u12"`, "\"\x01\"",
	`[1 2]`, `{"a":1 "b":2}`, `nul`, `1 2`, `"unterminated`,
	benchValid, benchInvalid,
}

// TestDecodeData: DecodeData gives what Decode gives, and fails where it fails.
func TestDecodeData(t *testing.T) {
	for _, in := range decodeSeeds {
		checkDecodeData(t, []byte(in))
	}
}

func FuzzDecodeData(f *testing.F) {
	for _, in := range decodeSeeds {
		f.Add([]byte(in))
	}
	f.Fuzz(checkDecodeData)
}

func checkDecodeData(t *testing.T, in []byte) {
	want, werr := Decode(in)
	got, gerr := DecodeData(in)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%q: Decode error %v, DecodeData error %v", in, werr, gerr)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: DecodeData %#v, Decode %#v", in, got, want)
	}
}

func BenchmarkDecodeData(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchValid)))
	for b.Loop() {
		if _, err := DecodeData([]byte(benchValid)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchValid)))
	for b.Loop() {
		if _, err := Decode([]byte(benchValid)); err != nil {
			b.Fatal(err)
		}
	}
}
