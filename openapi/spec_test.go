package openapi

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/go-openapi/loads"
	"github.com/go-openapi/spec"
	"github.com/go-openapi/strfmt"
	"github.com/go-openapi/validate"
	yaml "go.yaml.in/yaml/v3"
)

// specFile is our Swagger 2.0 description, relative to this package.
const specFile = "cloud-hypervisor.yaml"

// versionExtension names the info extension that says which Cloud
// Hypervisor release specFile describes; the drift test reads the upstream
// file of that release.
const versionExtension = "x-cloud-hypervisor-version"

func loadOurSpec(t *testing.T) *loads.Document {
	t.Helper()
	doc, err := loads.Spec(specFile)
	if err != nil {
		t.Fatalf("load %s: %v", specFile, err)
	}
	return doc
}

func TestSpecIsValidSwagger2(t *testing.T) {
	doc := loadOurSpec(t)
	if err := validate.Spec(doc, strfmt.Default); err != nil {
		t.Fatalf("%s is not a valid Swagger 2.0 document: %v", specFile, err)
	}
	s := doc.Spec()
	checks := []struct {
		name, got, want string
	}{
		{name: "swagger version", got: s.Swagger, want: "2.0"},
		{name: "basePath", got: s.BasePath, want: "/api/v1"},
		{name: "consumes", got: strings.Join(s.Consumes, ","), want: "application/json"},
		{name: "produces", got: strings.Join(s.Produces, ","), want: "application/json"},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
			}
		})
	}
	if _, ok := s.Info.Extensions.GetString(versionExtension); !ok {
		t.Errorf("info.%s missing: the drift test needs it to find the upstream file", versionExtension)
	}
}

// upstreamDoc is the part of an OpenAPI 3.0 document the drift test reads.
type upstreamDoc struct {
	Paths      map[string]map[string]yaml.Node `yaml:"paths"`
	Components struct {
		Schemas map[string]*upSchema `yaml:"schemas"`
	} `yaml:"components"`
}

type upOperation struct {
	RequestBody *struct {
		Required bool                 `yaml:"required"`
		Content  map[string]upContent `yaml:"content"`
	} `yaml:"requestBody"`
	Responses map[string]struct {
		Description string               `yaml:"description"`
		Content     map[string]upContent `yaml:"content"`
	} `yaml:"responses"`
}

type upContent struct {
	Schema *upSchema `yaml:"schema"`
}

// upSchema is an OpenAPI 3.0 schema object, as far as the drift test
// compares it.
type upSchema struct {
	Ref                  string               `yaml:"$ref"`
	Type                 string               `yaml:"type"`
	Format               string               `yaml:"format"`
	Enum                 []any                `yaml:"enum"`
	Default              any                  `yaml:"default"`
	Nullable             bool                 `yaml:"nullable"`
	Required             []string             `yaml:"required"`
	Items                *upSchema            `yaml:"items"`
	Properties           map[string]*upSchema `yaml:"properties"`
	AdditionalProperties *upAdditional        `yaml:"additionalProperties"`
	AllOf                []*upSchema          `yaml:"allOf"`
	OneOf                []*upSchema          `yaml:"oneOf"`
	AnyOf                []*upSchema          `yaml:"anyOf"`
}

// upAdditional is additionalProperties, which is a boolean or a schema.
type upAdditional struct {
	Allows bool
	Schema *upSchema
}

func (a *upAdditional) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return n.Decode(&a.Allows)
	}
	a.Allows = true
	a.Schema = new(upSchema)
	return n.Decode(a.Schema)
}

var httpMethods = []string{"get", "put", "post", "delete", "patch", "head", "options"}

func ourOperation(item spec.PathItem, method string) *spec.Operation {
	switch method {
	case "get":
		return item.Get
	case "put":
		return item.Put
	case "post":
		return item.Post
	case "delete":
		return item.Delete
	case "patch":
		return item.Patch
	case "head":
		return item.Head
	case "options":
		return item.Options
	}
	return nil
}

// upstreamPath returns where the upstream description of the release that
// our spec names lives: <repo root>/../shared/reference/. It is there on
// developer machines and in CI, never on a user's machine.
func upstreamPath(t *testing.T, version string) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	root := filepath.Dir(wd) // tests run in <repo root>/openapi
	return filepath.Join(root, "..", "shared", "reference", "cloud-hypervisor-"+version+".yaml")
}

func TestSpecMatchesUpstream(t *testing.T) {
	ours := loadOurSpec(t).Spec()
	version, _ := ours.Info.Extensions.GetString(versionExtension)
	if version == "" {
		t.Fatalf("info.%s missing from %s", versionExtension, specFile)
	}
	ref := upstreamPath(t, version)
	raw, err := os.ReadFile(ref)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("upstream Cloud Hypervisor %s description not found at %s", version, ref)
	}
	if err != nil {
		t.Fatalf("read upstream description: %v", err)
	}
	var up upstreamDoc
	if err := yaml.Unmarshal(raw, &up); err != nil {
		t.Fatalf("parse upstream description %s: %v", ref, err)
	}
	if len(up.Paths) == 0 || len(up.Components.Schemas) == 0 {
		t.Fatalf("upstream description %s has no paths or schemas: not an OpenAPI 3 document?", ref)
	}

	t.Run("paths", func(t *testing.T) {
		for _, path := range sortedKeys(up.Paths) {
			item := up.Paths[path]
			for _, method := range httpMethods {
				node, ok := item[method]
				if !ok {
					continue
				}
				name := strings.ToUpper(method) + " " + path
				t.Run(name, func(t *testing.T) {
					var op upOperation
					if err := node.Decode(&op); err != nil {
						t.Fatalf("decode upstream %s: %v", name, err)
					}
					ourItem, ok := ours.Paths.Paths[path]
					if !ok {
						t.Fatalf("path %s missing from %s", path, specFile)
					}
					ourOp := ourOperation(ourItem, method)
					if ourOp == nil {
						t.Fatalf("%s missing from %s", name, specFile)
					}
					for _, p := range compareOperation(name, &op, ourOp) {
						t.Error(p)
					}
				})
			}
		}
		for _, path := range sortedKeys(ours.Paths.Paths) {
			for _, method := range httpMethods {
				if ourOperation(ours.Paths.Paths[path], method) == nil {
					continue
				}
				if _, ok := up.Paths[path][method]; !ok {
					t.Errorf("%s %s is in %s but not upstream", strings.ToUpper(method), path, specFile)
				}
			}
		}
	})

	t.Run("definitions", func(t *testing.T) {
		for _, name := range sortedKeys(up.Components.Schemas) {
			t.Run(name, func(t *testing.T) {
				def, ok := ours.Definitions[name]
				if !ok {
					t.Fatalf("schema %s missing from definitions", name)
				}
				for _, p := range compareSchema(name, up.Components.Schemas[name], &def) {
					t.Error(p)
				}
			})
		}
		for _, name := range sortedKeys(ours.Definitions) {
			if _, ok := up.Components.Schemas[name]; !ok {
				t.Errorf("definition %s is in %s but not upstream", name, specFile)
			}
		}
	})
}

// compareOperation lists how our operation differs from the upstream one:
// the request body (a body parameter here), response codes, their
// descriptions and their schemas.
func compareOperation(where string, up *upOperation, ours *spec.Operation) []string {
	var problems []string
	var body *spec.Parameter
	for i := range ours.Parameters {
		if ours.Parameters[i].In == "body" {
			body = &ours.Parameters[i]
		}
	}
	switch {
	case up.RequestBody == nil && body != nil:
		problems = append(problems, fmt.Sprintf("%s: has a body parameter, upstream has no requestBody", where))
	case up.RequestBody != nil && body == nil:
		problems = append(problems, fmt.Sprintf("%s: upstream has a requestBody, ours has no body parameter", where))
	case up.RequestBody != nil:
		if body.Required != up.RequestBody.Required {
			problems = append(problems, fmt.Sprintf("%s: body required = %v, upstream %v", where, body.Required, up.RequestBody.Required))
		}
		problems = append(problems, compareContent(where+" body", up.RequestBody.Content, body.Schema)...)
	}

	var ourCodes map[int]spec.Response
	if ours.Responses != nil {
		ourCodes = ours.Responses.StatusCodeResponses
	}
	for _, code := range sortedKeys(up.Responses) {
		upResp := up.Responses[code]
		rw := fmt.Sprintf("%s response %s", where, code)
		var n int
		if _, err := fmt.Sscanf(code, "%d", &n); err != nil {
			problems = append(problems, fmt.Sprintf("%s: non-numeric upstream response code", rw))
			continue
		}
		ourResp, ok := ourCodes[n]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: missing", rw))
			continue
		}
		if ourResp.Description != upResp.Description {
			problems = append(problems, fmt.Sprintf("%s: description %q, upstream %q", rw, ourResp.Description, upResp.Description))
		}
		problems = append(problems, compareContent(rw, upResp.Content, ourResp.Schema)...)
	}
	for _, n := range sortedKeys(ourCodes) {
		if _, ok := up.Responses[fmt.Sprint(n)]; !ok {
			problems = append(problems, fmt.Sprintf("%s response %d: not upstream", where, n))
		}
	}
	return problems
}

// compareContent compares an OpenAPI 3 content map with a Swagger 2 body
// or response schema; the spec-wide consumes/produces stand for the media
// type.
func compareContent(where string, content map[string]upContent, ours *spec.Schema) []string {
	var up *upSchema
	for _, mt := range sortedKeys(content) {
		if mt != "application/json" {
			return []string{fmt.Sprintf("%s: upstream media type %s, ours only speaks application/json", where, mt)}
		}
		up = content[mt].Schema
	}
	switch {
	case up == nil && ours == nil:
		return nil
	case up == nil:
		return []string{fmt.Sprintf("%s: has a schema, upstream has none", where)}
	case ours == nil:
		return []string{fmt.Sprintf("%s: no schema, upstream has one", where)}
	}
	return compareSchema(where, up, ours)
}

// compareSchema lists how ours differs from up: type, format, $ref
// target, enum, default, required, properties (both ways), array items and
// additionalProperties, recursively. OpenAPI 3 constructs without a Swagger
// 2.0 twin must carry the extension README.md prescribes: nullable as
// x-nullable, oneOf/anyOf as x-oneOf/x-anyOf listing the $ref'd names.
func compareSchema(where string, up *upSchema, ours *spec.Schema) []string {
	var problems []string
	add := func(format string, args ...any) {
		problems = append(problems, where+": "+fmt.Sprintf(format, args...))
	}

	if up.Ref != "" {
		want := "#/definitions/" + refName(up.Ref)
		if got := ours.Ref.String(); got != want {
			add("$ref %q, want %q", got, want)
		}
		return problems
	}
	if ours.Ref.String() != "" {
		add("$ref %q, upstream has an inline schema", ours.Ref.String())
		return problems
	}

	if got := strings.Join(ours.Type, ","); got != up.Type {
		add("type %q, upstream %q", got, up.Type)
	}
	if ours.Format != up.Format {
		add("format %q, upstream %q", ours.Format, up.Format)
	}
	if got, want := anyStrings(ours.Enum), anyStrings(up.Enum); !slices.Equal(got, want) {
		add("enum %v, upstream %v", got, want)
	}
	if got, want := fmt.Sprint(ours.Default), fmt.Sprint(up.Default); got != want {
		add("default %s, upstream %s", got, want)
	}
	if got, want := sortedCopy(ours.Required), sortedCopy(up.Required); !slices.Equal(got, want) {
		add("required %v, upstream %v", got, want)
	}
	if up.Nullable {
		if v, ok := ours.Extensions.GetBool("x-nullable"); !ok || !v {
			add("upstream is nullable: mark it x-nullable: true")
		}
	}
	for _, c := range []struct {
		ext string
		up  []*upSchema
	}{{"x-oneOf", up.OneOf}, {"x-anyOf", up.AnyOf}} {
		if len(c.up) == 0 {
			continue
		}
		var want []string
		for _, s := range c.up {
			want = append(want, refName(s.Ref))
		}
		got, _ := ours.Extensions.GetStringSlice(strings.ToLower(c.ext))
		if !slices.Equal(got, want) {
			add("%s %v, upstream alternatives %v", c.ext, got, want)
		}
	}
	if len(up.AllOf) != len(ours.AllOf) {
		add("allOf has %d entries, upstream %d", len(ours.AllOf), len(up.AllOf))
	} else {
		for i := range up.AllOf {
			problems = append(problems, compareSchema(fmt.Sprintf("%s.allOf[%d]", where, i), up.AllOf[i], &ours.AllOf[i])...)
		}
	}

	for _, name := range sortedKeys(up.Properties) {
		prop, ok := ours.Properties[name]
		if !ok {
			add("property %s missing", name)
			continue
		}
		problems = append(problems, compareSchema(where+"."+name, up.Properties[name], &prop)...)
	}
	for _, name := range sortedKeys(ours.Properties) {
		if _, ok := up.Properties[name]; !ok {
			add("property %s is not upstream", name)
		}
	}

	switch {
	case up.Items != nil && (ours.Items == nil || ours.Items.Schema == nil):
		add("array items missing, upstream has them")
	case up.Items != nil:
		problems = append(problems, compareSchema(where+"[]", up.Items, ours.Items.Schema)...)
	case ours.Items != nil:
		add("has array items, upstream has none")
	}

	switch ap := up.AdditionalProperties; {
	case ap == nil && ours.AdditionalProperties != nil:
		add("has additionalProperties, upstream has none")
	case ap == nil:
	case ours.AdditionalProperties == nil:
		add("additionalProperties missing, upstream has them")
	case ap.Schema != nil && ours.AdditionalProperties.Schema == nil:
		add("additionalProperties has no schema, upstream has one")
	case ap.Schema != nil:
		problems = append(problems, compareSchema(where+"{}", ap.Schema, ours.AdditionalProperties.Schema)...)
	case ap.Allows != ours.AdditionalProperties.Allows:
		add("additionalProperties %v, upstream %v", ours.AdditionalProperties.Allows, ap.Allows)
	}
	return problems
}

// refName is the schema name a $ref points at, whatever the prefix
// (#/components/schemas/ upstream, #/definitions/ here).
func refName(ref string) string {
	return ref[strings.LastIndex(ref, "/")+1:]
}

func anyStrings(vs []any) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		out = append(out, fmt.Sprint(v))
	}
	return out
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

func sortedKeys[K interface{ ~string | ~int }, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestCompareSchema proves the drift comparison catches each kind of
// difference, so a green TestSpecMatchesUpstream means something.
func TestCompareSchema(t *testing.T) {
	ours := func(y string) *spec.Schema {
		t.Helper()
		doc, err := loads.Analyzed([]byte(`{"swagger":"2.0","info":{"title":"t","version":"1"},"paths":{},"definitions":{"S":`+y+`}}`), "")
		if err != nil {
			t.Fatalf("build test schema: %v", err)
		}
		s := doc.Spec().Definitions["S"]
		return &s
	}
	up := func(y string) *upSchema {
		t.Helper()
		var s upSchema
		if err := yaml.Unmarshal([]byte(y), &s); err != nil {
			t.Fatalf("build upstream test schema: %v", err)
		}
		return &s
	}
	const upBase = `{type: object, required: [a], properties: {a: {type: integer, format: int64}, b: {$ref: "#/components/schemas/B"}, c: {type: array, items: {type: integer, format: int16}}, d: {type: object, additionalProperties: {type: string}}}}`
	cases := []struct {
		name string
		ours string
		want []string // substrings, one per expected problem
	}{
		{
			name: "identical",
			ours: `{"type":"object","required":["a"],"properties":{"a":{"type":"integer","format":"int64"},"b":{"$ref":"#/definitions/B"},"c":{"type":"array","items":{"type":"integer","format":"int16"}},"d":{"type":"object","additionalProperties":{"type":"string"}}}}`,
		},
		{
			name: "missing property and extra property",
			ours: `{"type":"object","required":["a"],"properties":{"a":{"type":"integer","format":"int64"},"b":{"$ref":"#/definitions/B"},"c":{"type":"array","items":{"type":"integer","format":"int16"}},"e":{"type":"string"}}}`,
			want: []string{"property d missing", "property e is not upstream"},
		},
		{
			name: "type, format and ref target mismatch",
			ours: `{"type":"object","required":["a"],"properties":{"a":{"type":"string"},"b":{"$ref":"#/definitions/C"},"c":{"type":"array","items":{"type":"integer","format":"int16"}},"d":{"type":"object","additionalProperties":{"type":"string"}}}}`,
			want: []string{"S.a: type \"string\"", "S.a: format \"\"", "S.b: $ref \"#/definitions/C\""},
		},
		{
			name: "array item format and map value type",
			ours: `{"type":"object","required":["a"],"properties":{"a":{"type":"integer","format":"int64"},"b":{"$ref":"#/definitions/B"},"c":{"type":"array","items":{"type":"integer","format":"int32"}},"d":{"type":"object","additionalProperties":{"type":"integer"}}}}`,
			want: []string{"S.c[]: format \"int32\"", "S.d{}: type \"integer\""},
		},
		{
			name: "required differs",
			ours: `{"type":"object","properties":{"a":{"type":"integer","format":"int64"},"b":{"$ref":"#/definitions/B"},"c":{"type":"array","items":{"type":"integer","format":"int16"}},"d":{"type":"object","additionalProperties":{"type":"string"}}}}`,
			want: []string{"required [], upstream [a]"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := compareSchema("S", up(upBase), ours(c.ours))
			if len(got) != len(c.want) {
				t.Fatalf("got %d problems %q, want %d matching %q", len(got), got, len(c.want), c.want)
			}
			for _, w := range c.want {
				if !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, w) }) {
					t.Errorf("no problem mentions %q in %q", w, got)
				}
			}
		})
	}
}
