package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// otherCA is a CA that signed nothing the test servers present.
func otherCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "not the server's CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// quietTLSServer is an httptest TLS server that does not log the handshakes the tests make fail.
func quietTLSServer(t *testing.T, h http.Handler, tlsConfig *tls.Config) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = tlsConfig
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func newServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *Client) {
	t.Helper()
	srv := quietTLSServer(t, h, nil)
	c, err := New(Config{Server: srv.URL, Token: "sat_test", CABundlePEM: certPEM(srv.Certificate()), MaxRetries: 2})
	if err != nil {
		t.Fatal(err)
	}
	return srv, c
}

func transportKind(t *testing.T, err error) TransportErrorKind {
	t.Helper()
	var te *TransportError
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T) is not a *TransportError", err, err)
	}
	return te.Kind
}

func TestParseServer(t *testing.T) {
	u, err := ParseServer("https://127.0.0.1:8443/")
	if err != nil || u.String() != "https://127.0.0.1:8443" {
		t.Fatalf("ParseServer = %v, %v", u, err)
	}
	for in, want := range map[string]string{
		"http://127.0.0.1:8443": "must be an https:// URL",
		"127.0.0.1:8443":        "must be an https:// URL",
		"https://":              "is not a URL",
		"https://h:1/v1":        "without user info, path or query",
		"https://u:p@h:1":       "without user info, path or query",
		"https://h:1?x=1":       "without user info, path or query",
		"ht tp://bad":           "is not a URL",
	} {
		_, err := ParseServer(in)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != "server" || !strings.Contains(ce.Message, want) {
			t.Errorf("ParseServer(%q) = %v, want a server ConfigError containing %q", in, err, want)
		}
	}
}

func TestLoadCABundle(t *testing.T) {
	ca := otherCA(t)
	if got, err := LoadCABundle(string(ca)); err != nil || string(got) != string(ca) {
		t.Fatalf("PEM text: %v", err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "server-ca.pem")
	if err := os.WriteFile(file, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadCABundle(file); err != nil || string(got) != string(ca) {
		t.Fatalf("file path: %v", err)
	}
	junk := filepath.Join(dir, "junk.pem")
	_ = os.WriteFile(junk, []byte("hello"), 0o600)
	cases := map[string]string{
		filepath.Join(dir, "missing.pem"): "neither PEM text nor a readable file",
		junk:                              "holds no PEM certificate",
		"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n": "holds no PEM certificate",
		"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n":       "does not parse",
	}
	for in, want := range cases {
		_, err := LoadCABundle(in)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != "ca_bundle" || !strings.Contains(ce.Message, want) {
			t.Errorf("LoadCABundle(%q) = %v, want a ca_bundle ConfigError containing %q", in, err, want)
		}
	}
}

func TestWhoAmISendsTokenAndTrustsOnlyTheGivenCA(t *testing.T) {
	var sawAuth, sawUA string
	var sawTLS uint16
	srv, c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		sawAuth, sawUA, sawTLS = r.Header.Get("Authorization"), r.Header.Get("User-Agent"), r.TLS.Version
		writeJSON(w, 200, map[string]any{"tokenId": "t1", "name": "ci", "grants": []map[string]string{{"trustDomain": "*", "role": "admin"}}})
	})
	me, err := c.WhoAmI(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if me.Name != "ci" || len(me.Grants) != 1 || me.Grants[0].Role != "admin" {
		t.Errorf("WhoAmI = %+v", me)
	}
	if sawAuth != "Bearer sat_test" || sawUA != "terraform-provider-sigil" || sawTLS < tls.VersionTLS12 {
		t.Errorf("request had Authorization %q, User-Agent %q, TLS %x", sawAuth, sawUA, sawTLS)
	}

	for name, bundle := range map[string][]byte{"system roots": nil, "another CA": otherCA(t)} {
		other, err := New(Config{Server: srv.URL, Token: "sat_test", CABundlePEM: bundle})
		if err != nil {
			t.Fatal(err)
		}
		_, err = other.WhoAmI(context.Background())
		if k := transportKind(t, err); k != UntrustedCertificate {
			t.Errorf("%s: kind %v, want UntrustedCertificate (%v)", name, k, err)
		}
	}
}

func TestCertificateForAnotherHost(t *testing.T) {
	srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]any{}) })
	// httptest's certificate names 127.0.0.1, ::1 and example.com, not localhost.
	port := srv.URL[strings.LastIndexByte(srv.URL, ':'):]
	if _, err := net.LookupHost("localhost"); err != nil {
		t.Fatalf("localhost does not resolve here (%v): this test needs it in /etc/hosts", err)
	}
	c, err := New(Config{Server: "https://localhost" + port, CABundlePEM: certPEM(srv.Certificate())})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.WhoAmI(context.Background())
	if k := transportKind(t, err); k != CertificateNameMismatch {
		t.Errorf("kind %v, want CertificateNameMismatch (%v)", k, err)
	}
}

func TestOldTLSVersionsAreRefused(t *testing.T) {
	srv := quietTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), &tls.Config{MaxVersion: tls.VersionTLS11})
	c, _ := New(Config{Server: srv.URL, CABundlePEM: certPEM(srv.Certificate())})
	_, err := c.WhoAmI(context.Background())
	if k := transportKind(t, err); k != TLSFailure {
		t.Errorf("kind %v, want TLSFailure (%v)", k, err)
	}
}

func TestUnreachableAndPlainHTTPAndTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "https://" + l.Addr().String()
	_ = l.Close()
	c, _ := New(Config{Server: closed})
	_, err = c.WhoAmI(context.Background())
	if k := transportKind(t, err); k != Unreachable {
		t.Errorf("closed port: kind %v, want Unreachable (%v)", k, err)
	}

	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(plain.Close)
	c, _ = New(Config{Server: strings.Replace(plain.URL, "http://", "https://", 1)})
	_, err = c.WhoAmI(context.Background())
	if k := transportKind(t, err); k != NotSigil {
		t.Errorf("plain HTTP: kind %v, want NotSigil (%v)", k, err)
	}

	release := make(chan struct{})
	slow := quietTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}), nil)
	t.Cleanup(func() { close(release) })
	c, _ = New(Config{Server: slow.URL, CABundlePEM: certPEM(slow.Certificate()), Timeout: 200 * time.Millisecond})
	_, err = c.WhoAmI(context.Background())
	if k := transportKind(t, err); k != Timeout {
		t.Errorf("slow server: kind %v, want Timeout (%v)", k, err)
	}
}

func TestAPIErrorsAreDecoded(t *testing.T) {
	_, c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/whoami":
			writeJSON(w, 401, map[string]any{"error": map[string]string{"code": "TOKEN_INVALID", "message": "bearer token is malformed or unknown"}})
		case "/v1/trust-domains/gone.org":
			writeJSON(w, 404, map[string]any{"error": map[string]string{"code": "TRUST_DOMAIN_NOT_FOUND", "message": "nope"}})
		default:
			w.WriteHeader(502)
			_, _ = io.WriteString(w, "<html>bad gateway</html>")
		}
	})
	_, err := c.WhoAmI(context.Background())
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 401 || apiErr.Code != "TOKEN_INVALID" || apiErr.Message != "bearer token is malformed or unknown" {
		t.Fatalf("err = %#v", err)
	}
	if !strings.Contains(err.Error(), "GET /v1/whoami: TOKEN_INVALID (HTTP 401)") {
		t.Errorf("Error() = %q", err.Error())
	}
	_, err = c.GetTrustDomain(context.Background(), "gone.org")
	if !HasCode(err, "ENTRY_NOT_FOUND", "TRUST_DOMAIN_NOT_FOUND") || ErrorCode(err) != "TRUST_DOMAIN_NOT_FOUND" {
		t.Errorf("HasCode: %v", err)
	}
	_, err = c.GetEntry(context.Background(), "x.org", "1")
	if ErrorCode(err) != "HTTP_502" || !strings.Contains(err.Error(), "bad gateway") {
		t.Errorf("a non-JSON error: %v", err)
	}
	if ErrorCode(errors.New("x")) != "" {
		t.Error("ErrorCode of a plain error")
	}
}

func TestRateLimitedRequestsAreRetried(t *testing.T) {
	var calls atomic.Int32
	_, c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.Header().Set("Retry-After", "0")
			writeJSON(w, 429, map[string]any{"error": map[string]string{"code": "RATE_LIMITED", "message": "slow down"}})
			return
		}
		writeJSON(w, 201, map[string]any{"name": "example.org", "createdAt": "2026-01-01T00:00:00.000Z", "settings": map[string]any{"keyType": "ec-p256", "x509MaxTtl": 43200}})
	})
	td, err := c.CreateTrustDomain(context.Background(), "example.org", SettingsInput{})
	if err != nil || td.Settings.X509MaxTTL != 43200 || calls.Load() != 3 {
		t.Fatalf("td %+v, err %v, calls %d", td, err, calls.Load())
	}

	calls.Store(-100)
	_, err = c.CreateTrustDomain(context.Background(), "example.org", SettingsInput{})
	if ErrorCode(err) != "RATE_LIMITED" || calls.Load() != -97 {
		t.Errorf("after the retries run out: %v, %d calls", err, calls.Load()+100)
	}
}

func TestRequestBodies(t *testing.T) {
	var bodies []string
	_, c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, r.Method+" "+r.URL.RequestURI()+" "+string(b))
		switch {
		case r.Method == "DELETE":
			w.WriteHeader(204)
		case strings.HasSuffix(r.URL.Path, "/join-tokens") && r.Method == "GET":
			writeJSON(w, 200, map[string]any{"joinTokens": []map[string]any{{"id": "abc", "spiffeId": nil, "expiresAt": "2030-01-01T00:00:00.000Z"}}})
		case strings.HasSuffix(r.URL.Path, "/bundle"):
			if r.URL.Query().Get("format") == "pem" {
				w.Header().Set("Content-Type", "application/x-pem-file")
				_, _ = io.WriteString(w, "-----BEGIN CERTIFICATE-----\n")
				return
			}
			writeJSON(w, 200, map[string]any{"keys": []any{}, "spiffe_sequence": 7, "spiffe_refresh_hint": 300})
		default:
			writeJSON(w, 200, map[string]any{})
		}
	})
	ctx := context.Background()
	ttl := int64(60)
	sid := "spiffe://example.org/web"
	_, _ = c.UpdateEntry(ctx, "example.org", "e1", EntryInput{JWTTTL: &ttl, DNSNames: []string{}, ClearExpiresAt: true})
	_, _ = c.CreateEntry(ctx, "example.org", EntryInput{SpiffeID: &sid, ParentID: &sid, Selectors: []string{"unix:uid:1"}})
	_, _ = c.UpdateTrustDomain(ctx, "example.org", SettingsInput{X509MaxTTL: &ttl})
	_, _ = c.CreateJoinToken(ctx, "example.org", JoinTokenInput{TTL: &ttl})
	if err := c.DeleteEntry(ctx, "example.org", "e/1"); err != nil {
		t.Error(err)
	}
	found, err := c.FindJoinToken(ctx, "example.org", "abc")
	if err != nil || found == nil || found.SpiffeID != nil {
		t.Errorf("FindJoinToken = %+v, %v", found, err)
	}
	missing, err := c.FindJoinToken(ctx, "example.org", "zzz")
	if err != nil || missing != nil {
		t.Errorf("FindJoinToken(missing) = %+v, %v", missing, err)
	}
	b, err := c.GetBundle(ctx, "example.org")
	if err != nil || b.Sequence != 7 || !strings.HasPrefix(b.PEM, "-----BEGIN") || !strings.Contains(string(b.SPIFFE), `"keys"`) {
		t.Errorf("GetBundle = %+v, %v", b, err)
	}
	want := []string{
		`PATCH /v1/trust-domains/example.org/entries/e1 {"dnsNames":[],"expiresAt":null,"jwtTtl":60}`,
		`POST /v1/trust-domains/example.org/entries {"parentId":"spiffe://example.org/web","selectors":["unix:uid:1"],"spiffeId":"spiffe://example.org/web"}`,
		`PATCH /v1/trust-domains/example.org {"settings":{"x509MaxTtl":60}}`,
		`POST /v1/trust-domains/example.org/join-tokens {"ttl":60}`,
		`DELETE /v1/trust-domains/example.org/entries/e%2F1 `,
	}
	for i, w := range want {
		if i >= len(bodies) || strings.TrimSpace(bodies[i]) != strings.TrimSpace(w) {
			t.Errorf("request %d = %q, want %q", i, bodies[i], w)
		}
	}
}

func TestNonJSONSuccessIsNotSigil(t *testing.T) {
	_, c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, "<html>welcome to nginx</html>")
	})
	_, err := c.WhoAmI(context.Background())
	if k := transportKind(t, err); k != NotSigil {
		t.Errorf("kind %v, want NotSigil (%v)", k, err)
	}
}
