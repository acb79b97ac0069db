package web

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// registeredAPIRoutes returns the "METHOD /api/v1/..." patterns that the
// package's (non-test) source passes to the mux's Handle and HandleFunc.
func registeredAPIRoutes(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var routes []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "HandleFunc" && sel.Sel.Name != "Handle") {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			pattern, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatal(err)
			}
			if method, path, ok := strings.Cut(pattern, " "); ok && strings.HasPrefix(path, "/api/v1/") {
				routes = append(routes, method+" "+path)
			}
			return true
		})
	}
	slices.Sort(routes)
	return routes
}

// documentedRoutes returns the "METHOD /path" operations of the OpenAPI
// document.
func documentedRoutes(t *testing.T) []string {
	t.Helper()
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi = %q, want 3.x", doc.OpenAPI)
	}
	var routes []string
	for path, ops := range doc.Paths {
		for method := range ops {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options":
				routes = append(routes, strings.ToUpper(method)+" "+path)
			case "parameters", "summary", "description":
			default:
				t.Errorf("openapi.json: %s has unknown key %q", path, method)
			}
		}
	}
	slices.Sort(routes)
	return routes
}

var pathParam = regexp.MustCompile(`\{[^}]+\}`)

// TestOpenAPIRoutes checks that every /api/v1 route the handler registers
// is in the OpenAPI document and that every documented operation reaches
// the handler registered for exactly that pattern.
func TestOpenAPIRoutes(t *testing.T) {
	registered := registeredAPIRoutes(t)
	documented := documentedRoutes(t)
	if len(registered) < 10 {
		t.Fatalf("found only %d registered routes: %v", len(registered), registered)
	}
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not in openapi.json", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(registered, d) {
			t.Errorf("openapi.json documents %s, which is not registered", d)
		}
	}

	// The mux itself resolves each documented operation to its pattern,
	// so a route registered in a way the source scan misses still counts.
	h := NewHandler(Params{})
	for _, d := range documented {
		method, path, _ := strings.Cut(d, " ")
		req := httptest.NewRequest(method, pathParam.ReplaceAllString(path, "x1"), nil)
		if _, pattern := h.mux.Handler(req); pattern != d {
			t.Errorf("%s resolves to pattern %q", d, pattern)
		}
	}
}

// TestOpenAPIServed checks the document is served as JSON.
func TestOpenAPIServed(t *testing.T) {
	h := NewHandler(Params{})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/openapi.json", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" || !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("GET openapi.json: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	b, err := os.ReadFile("openapi.json")
	if err != nil || string(b) != rec.Body.String() {
		t.Fatalf("served document differs from openapi.json (%v)", err)
	}
}
