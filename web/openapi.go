package web

import (
	_ "embed"
	"net/http"
)

// openAPIDoc is the OpenAPI 3 description of /api/v1. TestOpenAPIRoutes
// checks it against the routes the handler registers, both ways.
//
//go:embed openapi.json
var openAPIDoc []byte

// openAPI serves the OpenAPI document.
func (h *Handler) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(openAPIDoc)
}
