package ch

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/go-openapi/loads"
	"github.com/go-openapi/spec"
	"github.com/go-openapi/strfmt"
	"github.com/go-openapi/validate"
)

// specRelPath is openapi/cloud-hypervisor.yaml seen from this package.
const specRelPath = "../../../openapi/cloud-hypervisor.yaml"

// apiSpec checks requests and answers against the Swagger description of
// the CH API (openapi/cloud-hypervisor.yaml), $refs expanded.
type apiSpec struct {
	doc *loads.Document
}

func loadAPISpec(path string) (*apiSpec, error) {
	doc, err := loads.Spec(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	doc, err = doc.Expanded()
	if err != nil {
		return nil, fmt.Errorf("expand %s: %w", path, err)
	}
	return &apiSpec{doc: doc}, nil
}

// endpoint maps a request path (/api/v1/vm.create) to the spec's path
// (/vm.create).
func (s *apiSpec) endpoint(urlPath string) string {
	return strings.TrimPrefix(urlPath, s.doc.BasePath())
}

// checkRequest validates a request's method, path and body: the operation
// must exist, a required body must be present and match the body
// parameter's schema, and no object may carry a property the schema does
// not declare (a misspelt field would otherwise pass, and CH rejects it).
func (s *apiSpec) checkRequest(method, path string, body []byte) error {
	if _, ok := s.doc.Analyzer.OperationFor(method, path); !ok {
		return fmt.Errorf("%s %s: no such operation in the spec", method, path)
	}
	var bodyParam *spec.Parameter
	for _, p := range s.doc.Analyzer.ParamsFor(method, path) {
		if p.In == "body" {
			bodyParam = &p
		}
	}
	if bodyParam == nil {
		if len(body) > 0 {
			return fmt.Errorf("%s %s: body sent to an operation without one: %s", method, path, body)
		}
		return nil
	}
	if len(body) == 0 {
		if bodyParam.Required {
			return fmt.Errorf("%s %s: required body missing", method, path)
		}
		return nil
	}
	return checkValue(bodyParam.Schema, body, method+" "+path+" body")
}

// checkResponse validates an answer: its status must be documented for
// the operation (or be 500, CH's answer for any internal error), and a
// documented schema must match the body; a success without a schema has
// no body.
func (s *apiSpec) checkResponse(method, path string, code int, body []byte) error {
	op, ok := s.doc.Analyzer.OperationFor(method, path)
	if !ok {
		return fmt.Errorf("%s %s: no such operation", method, path)
	}
	resp, ok := op.Responses.StatusCodeResponses[code]
	if !ok {
		if code == http.StatusInternalServerError {
			return nil
		}
		return fmt.Errorf("%s %s: status %d is not documented", method, path, code)
	}
	if resp.Schema == nil {
		// Error answers carry CH's error text.
		if len(body) > 0 && code < 300 {
			return fmt.Errorf("%s %s: %d has no schema but a body: %s", method, path, code, body)
		}
		return nil
	}
	return checkValue(resp.Schema, body, fmt.Sprintf("%s %s %d answer", method, path, code))
}

// checkValue validates JSON against schema, then looks for undeclared
// properties.
func checkValue(schema *spec.Schema, raw []byte, what string) error {
	var data any
	if err := json.Unmarshal(raw, &data); err != nil {
		return fmt.Errorf("%s: not JSON: %w", what, err)
	}
	if err := validate.AgainstSchema(schema, data, strfmt.Default); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if unknown := undeclared(schema, data, ""); len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("%s: properties not in the spec: %s", what, strings.Join(unknown, ", "))
	}
	return nil
}

// undeclared lists the JSON paths of object properties that schema does
// not declare (schemas with additionalProperties accept any key).
func undeclared(schema *spec.Schema, data any, at string) []string {
	if schema == nil {
		return nil
	}
	var out []string
	for i := range schema.AllOf {
		out = append(out, undeclared(&schema.AllOf[i], data, at)...)
	}
	switch v := data.(type) {
	case map[string]any:
		for k, val := range v {
			p := at + "." + k
			if prop, ok := schema.Properties[k]; ok {
				out = append(out, undeclared(&prop, val, p)...)
				continue
			}
			if ap := schema.AdditionalProperties; ap != nil && (ap.Allows || ap.Schema != nil) {
				if ap.Schema != nil {
					out = append(out, undeclared(ap.Schema, val, p)...)
				}
				continue
			}
			// A schema without properties is a free-form object.
			if len(schema.AllOf) == 0 && len(schema.Properties) > 0 {
				out = append(out, p)
			}
		}
	case []any:
		if schema.Items != nil && schema.Items.Schema != nil {
			for i, val := range v {
				out = append(out, undeclared(schema.Items.Schema, val, fmt.Sprintf("%s[%d]", at, i))...)
			}
		}
	}
	return out
}

// TestSpecCheck proves the checker used by the fake VMM rejects what CH
// would reject, so that the contract tests' "no invalid request" means
// something.
func TestSpecCheck(t *testing.T) {
	s, err := loadAPISpec(filepath.FromSlash(specRelPath))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, method, path, body string
		wantErr                  string
	}{
		{name: "minimal create", method: "PUT", path: "/vm.create", body: `{"payload":{"kernel":"/k"}}`},
		{name: "create without payload", method: "PUT", path: "/vm.create", body: `{"cpus":{"boot_vcpus":1,"max_vcpus":1}}`, wantErr: "payload"},
		{name: "create without body", method: "PUT", path: "/vm.create", wantErr: "required body missing"},
		{name: "vsock cid below 3", method: "PUT", path: "/vm.create", body: `{"payload":{},"vsock":{"cid":2,"socket":"/s"}}`, wantErr: "cid"},
		{name: "fs without tag", method: "PUT", path: "/vm.create", body: `{"payload":{},"fs":[{"socket":"/s","num_queues":1,"queue_size":1024}]}`, wantErr: "tag"},
		{name: "create with a net on a tap", method: "PUT", path: "/vm.create", body: `{"payload":{"kernel":"/k"},"net":[{"tap":"tap0_veil","mac":"02:00:0a:00:00:02"}]}`},
		{name: "net with a misspelt property", method: "PUT", path: "/vm.create", body: `{"payload":{},"net":[{"tap_name":"tap0_veil"}]}`, wantErr: "tap_name"},
		{name: "net tap of the wrong type", method: "PUT", path: "/vm.create", body: `{"payload":{},"net":[{"tap":0}]}`, wantErr: "tap"},
		{name: "misspelt property", method: "PUT", path: "/vm.create", body: `{"payload":{"kernal":"/k"}}`, wantErr: ".payload.kernal"},
		{name: "bad enum", method: "PUT", path: "/vm.create", body: `{"payload":{},"serial":{"mode":"Disk"}}`, wantErr: "mode"},
		{name: "wrong type", method: "PUT", path: "/vm.resize", body: `{"desired_vcpus":"two"}`, wantErr: "desired_vcpus"},
		{name: "body on a bodiless operation", method: "PUT", path: "/vm.boot", body: `{}`, wantErr: "without one"},
		{name: "unknown operation", method: "PUT", path: "/vm.explode", wantErr: "no such operation"},
		{name: "wrong method", method: "GET", path: "/vm.create", wantErr: "no such operation"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := s.checkRequest(tc.method, tc.path, []byte(tc.body))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("valid request rejected: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
			}
		})
	}
	t.Run("undocumented answer status", func(t *testing.T) {
		if err := s.checkResponse("PUT", "/vm.create", http.StatusNotFound, nil); err == nil {
			t.Fatal("404 on vm.create accepted")
		}
	})
	t.Run("answer body off schema", func(t *testing.T) {
		if err := s.checkResponse("GET", "/vm.info", http.StatusOK, []byte(`{"state":"Running"}`)); err == nil {
			t.Fatal("vm.info without config accepted")
		}
	})
}
