package spiffeid

import (
	"strings"
	"testing"
)

func TestValidateTrustDomain(t *testing.T) {
	for _, ok := range []string{"example.org", "a", "prod_1.example-corp.io", strings.Repeat("a", 255)} {
		if err := ValidateTrustDomain(ok); err != nil {
			t.Errorf("ValidateTrustDomain(%q) = %v, want nil", ok, err)
		}
	}
	cases := []struct{ in, want string }{
		{"", "is empty"},
		{"Example.org", `use "example.org"`},
		{"example.org:8443", "cannot carry a port"},
		{"user@example.org", "cannot carry user info"},
		{"spiffe://example.org", `without "spiffe://"`},
		{"exa mple.org", `" " (U+0020) at index 3`},
		{"exämple.org", "U+00E4"},
		{strings.Repeat("a", 256), "the limit is 255 bytes"},
	}
	for _, c := range cases {
		err := ValidateTrustDomain(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ValidateTrustDomain(%q) = %v, want an error containing %q", c.in, err, c.want)
		}
	}
}

func TestParse(t *testing.T) {
	id, err := Parse("spiffe://example.org/ns/prod/sa/API_v1.2-x")
	if err != nil || id.TrustDomain != "example.org" || id.Path != "/ns/prod/sa/API_v1.2-x" {
		t.Fatalf("Parse = %+v, %v", id, err)
	}
	if id.String() != "spiffe://example.org/ns/prod/sa/API_v1.2-x" {
		t.Errorf("String() = %q", id.String())
	}
	if id, err := Parse("spiffe://example.org"); err != nil || id.Path != "" {
		t.Errorf("the trust domain's own ID: %+v, %v", id, err)
	}
	cases := []struct{ in, want string }{
		{"", "is empty"},
		{"http://example.org/x", "invalid scheme"},
		{"SPIFFE://example.org/x", `must be lowercase "spiffe://"`},
		{"spiffe://example.org/x?y=1", "query or fragment"},
		{"spiffe://example.org/x#f", "query or fragment"},
		{"spiffe://example.org/a%20b", "percent-encoding"},
		{"spiffe://example.org/a//b", "empty path segment"},
		{"spiffe://example.org/a/", "trailing slash"},
		{"spiffe://example.org/a/../b", `".."`},
		{"spiffe://example.org/./b", `"."`},
		{"spiffe://example.org/a b", "path segments may contain only"},
		{"spiffe://Example.org/a", "must be lowercase"},
		{"spiffe://example.org:8443/a", "cannot carry a port"},
		{"spiffe:///a", "is empty"},
		{"spiffe://example.org/" + strings.Repeat("a", 2048), "the limit is 2048 bytes"},
	}
	for _, c := range cases {
		_, err := Parse(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", c.in, err, c.want)
		}
	}
}

func TestParseInAndWorkload(t *testing.T) {
	if _, err := ParseIn("spiffe://example.org/web", "example.org"); err != nil {
		t.Error(err)
	}
	if _, err := ParseIn("spiffe://example.org/web", ""); err != nil {
		t.Error("an unknown trust domain skips the membership check:", err)
	}
	_, err := ParseIn("spiffe://other.org/web", "example.org")
	if err == nil || !strings.Contains(err.Error(), `belongs to trust domain "other.org", not "example.org"`) {
		t.Errorf("foreign trust domain: %v", err)
	}
	_, err = ParseWorkload("spiffe://example.org", "example.org")
	if err == nil || !strings.Contains(err.Error(), "has no path") {
		t.Errorf("workload without a path: %v", err)
	}
	if _, err := ParseWorkload("spiffe://example.org/web", "example.org"); err != nil {
		t.Error(err)
	}
}

func TestValidateSelector(t *testing.T) {
	for _, ok := range []string{"unix:uid:1000", "k8s:ns:prod", "k8s:pod-label:app:web", "join_token:token:abc", "unix:path:/usr/bin/x", "aws_iid:tag:k:"} {
		if err := ValidateSelector(ok); err != nil {
			t.Errorf("ValidateSelector(%q) = %v", ok, err)
		}
	}
	cases := []struct{ in, want string }{
		{"", "has no type"},
		{"unix", "has no type"},
		{":uid:1", "has no type"},
		{"unix:", "has no key"},
		{"unix::1", "has no key"},
		{"Unix:uid:1", "invalid type"},
		{"unix:uid:1\n", "control characters"},
		{"unix:path:/" + strings.Repeat("a", 1024), "longer than 1024"},
	}
	for _, c := range cases {
		err := ValidateSelector(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ValidateSelector(%q) = %v, want an error containing %q", c.in, err, c.want)
		}
	}
}

func TestValidateDNSName(t *testing.T) {
	for _, ok := range []string{"web.example.org", "*.example.org", "localhost", "a-1.b"} {
		if err := ValidateDNSName(ok); err != nil {
			t.Errorf("ValidateDNSName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "*.", "Web.example.org", "-a.org", "a-.org", "a..org", "a_b.org", "*.*.a.org", strings.Repeat("a", 64) + ".org"} {
		if err := ValidateDNSName(bad); err == nil {
			t.Errorf("ValidateDNSName(%q) = nil, want an error", bad)
		}
	}
}
