package client

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestPortJSON(t *testing.T) {
	b, err := json.Marshal([]Port{"5432", "8000-8100", "443"})
	if err != nil || string(b) != `[5432,"8000-8100",443]` {
		t.Errorf("marshal: %s %v", b, err)
	}
	var ports []Port
	if err := json.Unmarshal([]byte(`[5432, "8000-8100", 443]`), &ports); err != nil || len(ports) != 3 || ports[0] != "5432" || ports[1] != "8000-8100" || ports[2] != "443" {
		t.Errorf("unmarshal: %v %v", ports, err)
	}
	if err := json.Unmarshal([]byte(`[true]`), &ports); err == nil {
		t.Error("a boolean port decodes")
	}
}

func TestPolicyRequests(t *testing.T) {
	var bodies []string
	deleteAnswers := 0
	_, c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, r.Method+" "+r.URL.RequestURI()+" "+string(b))
		switch r.Method {
		case "GET":
			writeJSON(w, 200, map[string]any{"trustDomain": "example.org", "version": 0, "mode": "baseline", "allowWithin": []string{}, "rules": []any{}, "text": "", "updatedAt": nil, "updatedBy": nil})
		case "PUT":
			if strings.Contains(string(b), `"expectedVersion":1`) {
				writeJSON(w, 409, map[string]any{"error": map[string]any{"code": "POLICY_VERSION_CONFLICT", "message": "the policy is at version 2"}})
				return
			}
			if strings.Contains(string(b), "70000") {
				writeJSON(w, 400, map[string]any{"error": map[string]any{"code": "POLICY_INVALID", "message": "line 9, rules[0].to.ports[0]: port 70000 is out of range 1-65535", "details": map[string]any{"line": 9, "column": 11, "path": "rules[0].to.ports[0]"}}})
				return
			}
			writeJSON(w, 200, map[string]any{"trustDomain": "example.org", "version": 1, "mode": "explicit", "allowWithin": []string{"k8s:ns"},
				"rules":     []any{map[string]any{"name": "r", "action": "allow", "from": map[string]any{"spiffeId": "spiffe://example.org/a"}, "to": map[string]any{"fqdn": "api.example.com", "ports": []any{443, "8000-8100"}}}},
				"updatedAt": "2030-01-01T00:00:00.000Z", "updatedBy": map[string]any{"name": "terraform", "tokenId": "t1"}})
		case "DELETE":
			deleteAnswers++
			if deleteAnswers == 1 {
				w.WriteHeader(204)
				return
			}
			writeJSON(w, 200, map[string]any{"trustDomain": "example.org", "version": 3, "mode": "baseline", "allowWithin": []string{}, "rules": []any{}, "updatedBy": "admin", "updatedAt": 1893456000000})
		}
	})
	ctx := context.Background()
	got, err := c.GetPolicy(ctx, "example.org")
	if err != nil || got.Version != 0 || !got.IsDefault() || got.Updated() != "" || got.Author() != "" {
		t.Errorf("GetPolicy = %+v, %v", got, err)
	}
	spec := PolicySpec{Mode: "explicit", AllowWithin: []string{"k8s:ns"}, Rules: []PolicyRule{{
		Name: "r", Action: "allow", From: PolicySource{SpiffeID: "spiffe://example.org/a"},
		To: PolicyDestination{FQDN: "api.example.com", Ports: []Port{"443", "8000-8100"}},
	}}}
	zero := int64(0)
	put, err := c.PutPolicy(ctx, "example.org", spec, &zero)
	if err != nil || put.Version != 1 || put.Author() != "terraform" || len(put.Rules) != 1 || put.Rules[0].To.Ports[0] != "443" || put.IsDefault() {
		t.Errorf("PutPolicy = %+v, %v", put, err)
	}
	one := int64(1)
	_, err = c.PutPolicy(ctx, "example.org", PolicySpec{Mode: "baseline"}, &one)
	if ErrorCode(err) != "POLICY_VERSION_CONFLICT" {
		t.Errorf("conflict: %v", err)
	}
	bad := spec
	bad.Rules = []PolicyRule{{Name: "r", From: PolicySource{Selector: "k8s:ns:a"}, To: PolicyDestination{Selector: "k8s:ns:b", Ports: []Port{"70000"}}}}
	_, err = c.PutPolicy(ctx, "example.org", bad, nil)
	d, ok := PolicyDetails(err)
	if !ok || d.Path != "rules[0].to.ports[0]" || d.Line != 9 || d.Column != 11 {
		t.Errorf("details: %+v %v (%v)", d, ok, err)
	}
	if _, ok := PolicyDetails(&APIError{Code: "POLICY_INVALID"}); ok {
		t.Error("details without details")
	}
	if p, err := c.DeletePolicy(ctx, "example.org"); err != nil || p != nil {
		t.Errorf("DeletePolicy (204) = %+v, %v", p, err)
	}
	if p, err := c.DeletePolicy(ctx, "example.org"); err != nil || p == nil || p.Version != 3 || p.Author() != "admin" || p.Updated() != "2030-01-01T00:00:00.000Z" {
		t.Errorf("DeletePolicy (200) = %+v, %v", p, err)
	}
	want := []string{
		`GET /v1/trust-domains/example.org/policy `,
		`PUT /v1/trust-domains/example.org/policy {"expectedVersion":0,"policy":{"mode":"explicit","allowWithin":["k8s:ns"],"rules":[{"name":"r","action":"allow","from":{"spiffeId":"spiffe://example.org/a"},"to":{"fqdn":"api.example.com","ports":[443,"8000-8100"]}}]}}`,
		`PUT /v1/trust-domains/example.org/policy {"expectedVersion":1,"policy":{"mode":"baseline","allowWithin":[],"rules":[]}}`,
		`PUT /v1/trust-domains/example.org/policy {"policy":{"mode":"explicit","allowWithin":["k8s:ns"],"rules":[{"name":"r","from":{"selector":"k8s:ns:a"},"to":{"selector":"k8s:ns:b","ports":[70000]}}]}}`,
		`DELETE /v1/trust-domains/example.org/policy `,
		`DELETE /v1/trust-domains/example.org/policy `,
	}
	for i, w := range want {
		if i >= len(bodies) || strings.TrimSpace(bodies[i]) != strings.TrimSpace(w) {
			t.Errorf("request %d = %q, want %q", i, bodies[i], w)
		}
	}
}
