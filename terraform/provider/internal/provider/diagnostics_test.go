package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/sigil-dev/terraform-provider-sigil/internal/client"
)

func apiErr(code, msg string) error {
	return &client.APIError{Status: 400, Code: code, Message: msg, Method: "POST", Path: "/v1/x"}
}

func TestDescribe(t *testing.T) {
	cases := []struct {
		err       error
		attribute string
		want      []string
	}{
		{&client.TransportError{Kind: client.UntrustedCertificate, Server: "https://h:1", Err: errors.New("x509: unknown authority")}, "ca_bundle", []string{"not trusted", "server-ca.pem", "SIGIL_CA_BUNDLE"}},
		{&client.TransportError{Kind: client.Unreachable, Server: "https://h:1", Err: errors.New("connection refused")}, "server", []string{"Cannot reach", "connection refused", "`server`", "SIGIL_SERVER"}},
		{&client.TransportError{Kind: client.Timeout, Server: "https://h:1", Err: errors.New("deadline")}, "server", []string{"in time"}},
		{&client.TransportError{Kind: client.CertificateNameMismatch, Server: "https://h:1", Err: errors.New("not valid for h")}, "server", []string{"serverNames"}},
		{&client.TransportError{Kind: client.TLSFailure, Server: "https://h:1", Err: errors.New("protocol version")}, "server", []string{"TLS 1.2 or later"}},
		{&client.TransportError{Kind: client.NotSigil, Server: "https://h:1", Err: errors.New("html")}, "server", []string{"like a Sigil server"}},
		{apiErr("TOKEN_INVALID", "bearer token is malformed or unknown"), "token", []string{"refused the API token", "admin.token", "sigil api-token create", "SIGIL_TOKEN"}},
		{apiErr("TOKEN_EXPIRED", "expired"), "token", []string{"refused the API token"}},
		{apiErr("UNAUTHENTICATED", "missing"), "token", []string{"refused the API token"}},
		{apiErr("FORBIDDEN", "no admin role"), "token", []string{"lacks a role", "--grant"}},
		{apiErr("RATE_LIMITED", "slow"), "", []string{"-parallelism"}},
		{apiErr("SELECTOR_INVALID", "selector \"unix:uid:abc\" ..."), "", []string{"Sigil refused to do it: SELECTOR_INVALID", "unix:uid:abc"}},
		{&client.ConfigError{Field: "ca_bundle", Message: "no PEM"}, "ca_bundle", []string{"no PEM"}},
		{fmt.Errorf("boom"), "", []string{"Could not do it", "boom"}},
	}
	for _, c := range cases {
		p := describe(c.err, "do it")
		if p.providerAttribute != c.attribute {
			t.Errorf("%v: attribute %q, want %q", c.err, p.providerAttribute, c.attribute)
		}
		text := p.summary + "\n" + p.detail
		for _, w := range c.want {
			if !strings.Contains(text, w) {
				t.Errorf("%v: %q does not contain %q", c.err, text, w)
			}
		}
	}
}

func TestAddErrorPointsAtTheAttribute(t *testing.T) {
	cases := []struct {
		err  error
		hint fieldHint
		want path.Path
	}{
		{apiErr("SELECTOR_INVALID", "x"), entryHint, path.Root("selectors")},
		{apiErr("ENTRY_PARENT_NOT_FOUND", "parentId ..."), entryHint, path.Root("parent_id")},
		{apiErr("TTL_TOO_LONG", "jwtTtl 9000s exceeds trust domain x's maximum"), entryHint, path.Root("jwt_ttl")},
		{apiErr("SPIFFE_ID_FOREIGN_TRUST_DOMAIN", "spiffeId \"spiffe://o/x\" belongs to ..."), entryHint, path.Root("spiffe_id")},
		{apiErr("ENTRY_INVALID", "parentId must differ from spiffeId"), entryHint, path.Root("parent_id")},
		{apiErr("SETTINGS_INVALID", "x509DefaultTtl must not exceed x509MaxTtl"), trustDomainHint, path.Root("x509_default_ttl")},
		{apiErr("SETTINGS_INVALID", "caTtl must be at least twice x509MaxTtl so SVIDs outlive CA rotation"), trustDomainHint, path.Root("ca_ttl")},
		{apiErr("VALIDATION_FAILED", "body field settings.jwtMaxTtl must be integer"), trustDomainHint, path.Root("jwt_max_ttl")},
		{apiErr("TRUST_DOMAIN_EXISTS", "exists"), trustDomainHint, path.Root("name")},
		{apiErr("TTL_TOO_LONG", "ttl 99999999s exceeds the join token maximum"), joinTokenHint, path.Root("ttl")},
	}
	for _, c := range cases {
		var diags diag.Diagnostics
		addError(&diags, c.err, "do it", c.hint)
		d, ok := diags[0].(diag.DiagnosticWithPath)
		if len(diags) != 1 || !ok || !d.Path().Equal(c.want) {
			t.Errorf("%v: %v, want an error on %s", c.err, diags, c.want)
		}
	}

	var diags diag.Diagnostics
	addError(&diags, apiErr("TOKEN_INVALID", "bad"), "do it", entryHint)
	if _, ok := diags[0].(diag.DiagnosticWithPath); ok || !strings.Contains(diags[0].Detail(), `provider "sigil" attribute: token`) {
		t.Errorf("a token problem in a resource names the provider attribute: %v", diags)
	}
	diags = nil
	addError(&diags, apiErr("INTERNAL", "see the log"), "do it", entryHint)
	if _, ok := diags[0].(diag.DiagnosticWithPath); ok {
		t.Errorf("an error about no field is general: %v", diags)
	}
	diags = nil
	addProviderError(&diags, &client.TransportError{Kind: client.Unreachable, Err: errors.New("refused")}, "connect")
	if d, ok := diags[0].(diag.DiagnosticWithPath); !ok || !d.Path().Equal(path.Root("server")) {
		t.Errorf("provider errors sit on the provider attribute: %v", diags)
	}
}

func TestValidators(t *testing.T) {
	ctx := context.Background()
	run := func(v validator.String, in string) diag.Diagnostics {
		resp := &validator.StringResponse{}
		v.ValidateString(ctx, validator.StringRequest{Path: path.Root("x"), ConfigValue: types.StringValue(in)}, resp)
		return resp.Diagnostics
	}
	if d := run(trustDomainName(), "Example.org"); !d.HasError() || !strings.Contains(d[0].Detail(), "lowercase") {
		t.Errorf("trust domain: %v", d)
	}
	if d := run(trustDomainName(), "example.org"); d.HasError() {
		t.Errorf("trust domain: %v", d)
	}
	if d := run(spiffeID(), "spiffe://example.org/a//b"); !d.HasError() {
		t.Error("SPIFFE ID")
	}
	if d := run(selector(), "nocolon"); !d.HasError() || d[0].Summary() != "Invalid selector" {
		t.Errorf("selector: %v", d)
	}
	if d := run(dnsName(), "Web.example.org"); !d.HasError() {
		t.Error("DNS name")
	}
	resp := &validator.StringResponse{}
	selector().ValidateString(ctx, validator.StringRequest{ConfigValue: types.StringUnknown()}, resp)
	if resp.Diagnostics.HasError() {
		t.Error("unknown values are not validated")
	}
}

func TestKeepStateWhenEquivalent(t *testing.T) {
	ctx := context.Background()
	run := func(m planmodifier.String, state, config types.String) types.String {
		resp := &planmodifier.StringResponse{PlanValue: config}
		m.PlanModifyString(ctx, planmodifier.StringRequest{StateValue: state, ConfigValue: config, PlanValue: config}, resp)
		return resp.PlanValue
	}
	s := types.StringValue
	if got := run(durationsEquivalent(), s("1h"), s("60m")); got.ValueString() != "1h" {
		t.Errorf("60m after 1h plans %v", got)
	}
	if got := run(durationsEquivalent(), s("1h"), s("2h")); got.ValueString() != "2h" {
		t.Errorf("2h after 1h plans %v", got)
	}
	if got := run(durationsEquivalent(), types.StringNull(), s("2h")); got.ValueString() != "2h" {
		t.Errorf("a create plans %v", got)
	}
	if got := run(timestampsEquivalent(), s("2030-01-01T00:00:00.000Z"), s("2030-01-01T00:00:00Z")); got.ValueString() != "2030-01-01T00:00:00.000Z" {
		t.Errorf("timestamps: %v", got)
	}
}
