package client

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestTunnelRequests(t *testing.T) {
	var requests []string
	db := map[string]any{"trustDomain": "example.org", "name": "db", "spiffeId": "spiffe://example.org/db",
		"agent": "spiffe://example.org/sigil/agent/join_token/n1", "service": "postgres", "port": 5432, "createdAt": "2030-01-01T00:00:00.000Z"}
	web := map[string]any{"trustDomain": "example.org", "name": "web", "spiffeId": "spiffe://example.org/web",
		"agent": "spiffe://example.org/sigil/agent/join_token/n1", "service": "web", "port": nil, "createdAt": "2030-01-01T00:00:00.000Z"}
	_, c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		requests = append(requests, r.Method+" "+r.URL.RequestURI()+" "+string(b))
		switch {
		case r.Method == "POST" && strings.Contains(string(b), `"name":"taken"`):
			writeJSON(w, 409, map[string]any{"error": map[string]any{"code": "TUNNEL_EXISTS", "message": `trust domain example.org already has a tunnel "taken"`}})
		case r.Method == "POST":
			writeJSON(w, 201, db)
		case r.Method == "GET" && strings.HasSuffix(r.URL.Path, "/tunnels"):
			writeJSON(w, 200, map[string]any{"tunnels": []any{db, web}})
		case r.Method == "GET" && strings.HasSuffix(r.URL.Path, "/web"):
			writeJSON(w, 200, web)
		case r.Method == "GET":
			writeJSON(w, 404, map[string]any{"error": map[string]any{"code": "TUNNEL_NOT_FOUND", "message": `trust domain example.org has no tunnel "gone"`}})
		case r.Method == "DELETE":
			w.WriteHeader(204)
		}
	})
	ctx := context.Background()
	service, port := "postgres", int64(5432)
	got, err := c.CreateTunnel(ctx, "example.org", TunnelInput{Name: "db", SpiffeID: "spiffe://example.org/db",
		Agent: "spiffe://example.org/sigil/agent/join_token/n1", Service: &service, Port: &port})
	if err != nil || got.Name != "db" || got.Service != "postgres" || got.Port == nil || *got.Port != 5432 || got.CreatedAt == "" {
		t.Errorf("CreateTunnel = %+v, %v", got, err)
	}
	if _, err := c.CreateTunnel(ctx, "example.org", TunnelInput{Name: "taken", SpiffeID: "spiffe://example.org/x", Agent: "spiffe://example.org/sigil/agent/a"}); !HasCode(err, "TUNNEL_EXISTS") {
		t.Errorf("CreateTunnel (exists) = %v", err)
	}
	if got, err := c.GetTunnel(ctx, "example.org", "web"); err != nil || got.Port != nil || got.Service != "web" {
		t.Errorf("GetTunnel = %+v, %v", got, err)
	}
	if _, err := c.GetTunnel(ctx, "example.org", "gone"); !HasCode(err, "TUNNEL_NOT_FOUND") {
		t.Errorf("GetTunnel (missing) = %v", err)
	}
	if list, err := c.ListTunnels(ctx, "example.org"); err != nil || len(list) != 2 || list[1].Name != "web" {
		t.Errorf("ListTunnels = %+v, %v", list, err)
	}
	if err := c.DeleteTunnel(ctx, "example.org", "db"); err != nil {
		t.Errorf("DeleteTunnel = %v", err)
	}
	want := []string{
		`POST /v1/trust-domains/example.org/tunnels {"name":"db","spiffeId":"spiffe://example.org/db","agent":"spiffe://example.org/sigil/agent/join_token/n1","service":"postgres","port":5432}`,
		`POST /v1/trust-domains/example.org/tunnels {"name":"taken","spiffeId":"spiffe://example.org/x","agent":"spiffe://example.org/sigil/agent/a"}`,
		`GET /v1/trust-domains/example.org/tunnels/web `,
		`GET /v1/trust-domains/example.org/tunnels/gone `,
		`GET /v1/trust-domains/example.org/tunnels `,
		`DELETE /v1/trust-domains/example.org/tunnels/db `,
	}
	for i, w := range want {
		if i >= len(requests) || strings.TrimSpace(requests[i]) != strings.TrimSpace(w) {
			got := "(none)"
			if i < len(requests) {
				got = requests[i]
			}
			t.Errorf("request %d = %q, want %q", i, got, w)
		}
	}
}
