package gateway

import _ "embed"

// openAPI is the OpenAPI 3.0 description of every HTTP endpoint, served at
// /v1/openapi.json. It is written by hand; TestOpenAPI checks it is valid
// and matches the router.
//
//go:embed openapi.json
var openAPI []byte
