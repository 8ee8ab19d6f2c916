package schemas

import (
	"testing"
)

// benchSchema is a typical event data schema: ten properties, formats,
// patterns, a nested object and an array of objects.
const benchSchema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["id", "idnp", "firstName", "lastName", "birthDate", "sex", "registeredAt"],
  "additionalProperties": false,
  "properties": {
    "id": { "type": "string", "format": "uuid" },
    "idnp": { "type": "string", "pattern": "^[0-9]{13}$" },
    "firstName": { "type": "string", "minLength": 1, "maxLength": 100 },
    "lastName": { "type": "string", "minLength": 1, "maxLength": 100 },
    "birthDate": { "type": "string", "format": "date" },
    "sex": { "enum": ["M", "F"] },
    "registeredAt": { "type": "string", "format": "date-time" },
    "email": { "type": "string", "format": "email" },
    "address": {
      "type": "object",
      "required": ["locality"],
      "properties": {
        "district": { "type": "string" },
        "locality": { "type": "string", "minLength": 1 },
        "street": { "type": "string" },
        "house": { "type": "string", "maxLength": 10 },
        "apartment": { "type": "string", "maxLength": 10 },
        "postalCode": { "type": "string", "pattern": "^MD-[0-9]{4}$" }
      }
    },
    "documents": {
      "type": "array",
      "maxItems": 10,
      "items": {
        "type": "object",
        "required": ["kind", "number", "issuedAt"],
        "properties": {
          "kind": { "enum": ["passport", "id-card", "birth-certificate", "residence-permit"] },
          "number": { "type": "string", "pattern": "^[A-Z]{1,2}[0-9]{6,9}$" },
          "issuedAt": { "type": "string", "format": "date" },
          "issuer": { "type": "string", "maxLength": 200 }
        }
      }
    }
  }
}`

// benchValid is about 1 KiB.
const benchValid = `{
  "id": "0f8fad5b-d9cb-469f-a165-70867728950e",
  "idnp": "2004012345678",
  "firstName": "Ana-Maria",
  "lastName": "Rusu-Ciobanu",
  "birthDate": "1987-03-18",
  "sex": "F",
  "registeredAt": "2024-03-21T09:42:17.123+02:00",
  "email": "ana.rusu@example.md",
  "address": {
    "district": "mun. Chișinău",
    "locality": "Chișinău",
    "street": "bd. Ștefan cel Mare și Sfînt",
    "house": "134",
    "apartment": "12",
    "postalCode": "MD-2012"
  },
  "documents": [
    { "kind": "passport", "number": "AB1234567", "issuedAt": "2019-06-01", "issuer": "Agenția Servicii Publice, Subdiviziunea Chișinău" },
    { "kind": "id-card", "number": "B12345678", "issuedAt": "2021-01-15", "issuer": "Agenția Servicii Publice, Subdiviziunea Chișinău" },
    { "kind": "birth-certificate", "number": "C1234567", "issuedAt": "1987-03-25", "issuer": "Oficiul Stare Civilă Chișinău" },
    { "kind": "residence-permit", "number": "RP1234567", "issuedAt": "2020-09-09", "issuer": "Biroul Migrație și Azil" }
  ]
}`

// benchInvalid breaks three rules of benchValid.
const benchInvalid = `{
  "id": "0f8fad5b-d9cb-469f-a165-70867728950e",
  "idnp": "200401234567",
  "firstName": "Ana-Maria",
  "lastName": "Rusu-Ciobanu",
  "birthDate": "1987-02-30",
  "sex": "F",
  "registeredAt": "2024-03-21T09:42:17.123+02:00",
  "email": "ana.rusu@example.md",
  "address": {
    "district": "mun. Chișinău",
    "locality": "Chișinău",
    "street": "bd. Ștefan cel Mare și Sfînt",
    "house": "134",
    "apartment": "12",
    "postalCode": "MD-2012"
  },
  "documents": [
    { "kind": "passport", "number": "AB1234567", "issuedAt": "2019-06-01", "issuer": "Agenția Servicii Publice, Subdiviziunea Chișinău" },
    { "kind": "id-card", "number": "B12345678", "issuedAt": "2021-01-15", "issuer": "Agenția Servicii Publice, Subdiviziunea Chișinău" },
    { "kind": "birth-certificate", "number": "C1234567", "issuedAt": "1987-03-25", "issuer": "Oficiul Stare Civilă Chișinău" },
    { "kind": "visa", "number": "RP1234567", "issuedAt": "2020-09-09", "issuer": "Biroul Migrație și Azil" }
  ]
}`

func TestBenchFixtures(t *testing.T) {
	s := mustCompile(t, benchSchema)
	if got := s.Validate(mustDecode(t, benchValid)); got != nil {
		t.Fatalf("valid: %v", got)
	}
	if got := s.Validate(mustDecode(t, benchInvalid)); len(got) != 3 {
		t.Fatalf("invalid: %v, want 3 violations", got)
	}
}

func BenchmarkValidate(b *testing.B) {
	s := mustCompile(b, benchSchema)
	for _, bm := range []struct{ name, doc string }{{"valid", benchValid}, {"invalid", benchInvalid}} {
		v, err := Decode([]byte(bm.doc))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.Validate(v)
			}
		})
		b.Run(bm.name+"/decode", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bm.doc)))
			for b.Loop() {
				v, err := Decode([]byte(bm.doc))
				if err != nil {
					b.Fatal(err)
				}
				s.Validate(v)
			}
		})
		b.Run(bm.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					s.Validate(v)
				}
			})
		})
	}
}

func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile("bench.json", []byte(benchSchema)); err != nil {
			b.Fatal(err)
		}
	}
}
