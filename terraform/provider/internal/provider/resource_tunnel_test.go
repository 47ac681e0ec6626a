package provider

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/sigil-dev/terraform-provider-sigil/internal/client"
)

func tunnelSchema(t *testing.T) schema.Schema {
	t.Helper()
	var resp resource.SchemaResponse
	newTunnelResource().Schema(context.Background(), resource.SchemaRequest{}, &resp)
	if resp.Diagnostics.HasError() {
		t.Fatal(resp.Diagnostics)
	}
	return resp.Schema
}

// tunnelRaw is a tunnel object with the given attributes set and every other one null.
func tunnelRaw(s schema.Schema, set map[string]tftypes.Value) tftypes.Value {
	typ := s.Type().TerraformType(context.Background()).(tftypes.Object)
	values := map[string]tftypes.Value{}
	for name, at := range typ.AttributeTypes {
		if v, ok := set[name]; ok {
			values[name] = v
		} else {
			values[name] = tftypes.NewValue(at, nil)
		}
	}
	return tftypes.NewValue(typ, values)
}

func TestTunnelSchema(t *testing.T) {
	s := tunnelSchema(t)
	want := map[string]string{
		"id": "computed", "created_at": "computed", "service": "optional+computed", "port": "optional",
		"trust_domain": "required", "name": "required", "spiffe_id": "required", "agent": "required",
	}
	for name, kind := range want {
		a, ok := s.Attributes[name]
		if !ok {
			t.Errorf("attribute %s is missing", name)
			continue
		}
		got := ""
		switch {
		case a.IsRequired():
			got = "required"
		case a.IsOptional() && a.IsComputed():
			got = "optional+computed"
		case a.IsOptional():
			got = "optional"
		case a.IsComputed():
			got = "computed"
		}
		if got != kind {
			t.Errorf("attribute %s is %s, want %s", name, got, kind)
		}
	}
	if len(s.Attributes) != len(want) {
		t.Errorf("the schema has %d attributes, want %d", len(s.Attributes), len(want))
	}
	if !strings.Contains(s.MarkdownDescription, "every argument forces a new tunnel") {
		t.Error("the description does not say that every change replaces the tunnel")
	}
	// Every argument replaces: no change can reach Update.
	for _, name := range []string{"trust_domain", "name", "spiffe_id", "agent", "service"} {
		a := s.Attributes[name].(schema.StringAttribute)
		found := false
		for _, m := range a.PlanModifiers {
			found = found || strings.Contains(m.Description(context.Background()), "destroy and recreate")
		}
		if !found {
			t.Errorf("%s does not require replacement", name)
		}
	}
	if pm := s.Attributes["port"].(schema.Int64Attribute).PlanModifiers; len(pm) != 1 || !strings.Contains(pm[0].Description(context.Background()), "destroy and recreate") {
		t.Error("port does not require replacement")
	}
}

func TestCheckTunnelName(t *testing.T) {
	for _, ok := range []string{"db", "a", "web-1", "db.prod", "0", strings.Repeat("a", 63)} {
		if err := checkTunnelName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	bad := map[string]string{
		"":                      "is empty",
		strings.Repeat("a", 64): "64 characters long",
		"DB":                    `use "db"`,
		"my_db":                 `use "my-db"`,
		"-db":                   "starting and ending with a letter or digit",
		"db.":                   "starting and ending with a letter or digit",
		"db/x":                  "not a valid name",
	}
	for in, want := range bad {
		if err := checkTunnelName(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("checkTunnelName(%q) = %v; want an error with %q", in, err, want)
		}
	}
}

func TestCheckAgentAndWorkloadID(t *testing.T) {
	for _, ok := range []string{"spiffe://example.org/sigil/agent/join_token/node-1", "spiffe://example.org/sigil/agent/x"} {
		if err := checkAgentID(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	bad := map[string]string{
		"spiffe://example.org/db":           "is not an agent SPIFFE ID: agents are spiffe://example.org/sigil/agent/ATTESTOR/ID",
		"spiffe://example.org/sigil/agent":  "is not an agent SPIFFE ID",
		"spiffe://example.org/sigil/server": "is not an agent SPIFFE ID",
		"spiffe://example.org":              "is not an agent SPIFFE ID",
		"https://example.org/sigil/agent/x": "invalid scheme",
		"spiffe://example.org/sigil/agent/": "trailing slash",
	}
	for in, want := range bad {
		if err := checkAgentID(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("checkAgentID(%q) = %v; want an error with %q", in, err, want)
		}
	}
	if err := checkWorkloadID("spiffe://example.org/db"); err != nil {
		t.Error(err)
	}
	if err := checkWorkloadID("spiffe://example.org"); err == nil || !strings.Contains(err.Error(), "has no path") {
		t.Errorf("a trust domain's own ID is not a service: %v", err)
	}
}

func TestCheckTunnelMembership(t *testing.T) {
	m := func(td, id, agent types.String) *tunnelModel {
		return &tunnelModel{TrustDomain: td, SpiffeID: id, Agent: agent}
	}
	s := types.StringValue
	const agent = "spiffe://example.org/sigil/agent/join_token/n1"
	if d := checkTunnelMembership(m(s("example.org"), s("spiffe://example.org/db"), s(agent))); d.HasError() {
		t.Errorf("a valid tunnel: %v", d)
	}
	// Unknown (a reference) or invalid values are skipped: the attribute validators, or the plan, report them.
	for _, c := range []*tunnelModel{
		m(types.StringUnknown(), s("spiffe://other.org/db"), s(agent)),
		m(s("example.org"), types.StringUnknown(), s(agent)),
		m(s("Not A TD"), s("spiffe://other.org/db"), s(agent)),
		m(s("example.org"), s("not an id"), s(agent)),
	} {
		if d := checkTunnelMembership(c); d.HasError() {
			t.Errorf("%+v: %v", c, d)
		}
	}
	d := checkTunnelMembership(m(s("example.org"), s("spiffe://other.org/db"), s("spiffe://other.org/sigil/agent/x")))
	if len(d) != 2 {
		t.Fatalf("want two errors, got %v", d)
	}
	for i, attr := range []string{"spiffe_id", "agent"} {
		form := map[string]string{"spiffe_id": "spiffe://example.org/...", "agent": "spiffe://example.org/sigil/agent/..."}[attr]
		wp, ok := d[i].(diag.DiagnosticWithPath)
		if !ok || !wp.Path().Equal(path.Root(attr)) || !strings.Contains(d[i].Detail(), "must be in the tunnel's trust domain example.org") ||
			!strings.Contains(d[i].Detail(), `belongs to trust domain "other.org"`) || !strings.Contains(d[i].Detail(), "Change "+attr+" to an ID of the form "+form+",") {
			t.Errorf("error %d: %v %q", i, d[i].Summary(), d[i].Detail())
		}
	}
}

func TestServiceDefaultsToName(t *testing.T) {
	ctx := context.Background()
	s := tunnelSchema(t)
	plan := func(name tftypes.Value) tfsdk.Plan {
		return tfsdk.Plan{Schema: s, Raw: tunnelRaw(s, map[string]tftypes.Value{"name": name})}
	}
	str := func(v string) tftypes.Value { return tftypes.NewValue(tftypes.String, v) }
	cases := []struct {
		config types.String
		planV  types.String
		name   tftypes.Value
		want   types.String
	}{
		// Not configured: the name, also when the plan kept an earlier value (it was set, then removed).
		{types.StringNull(), types.StringUnknown(), str("db"), types.StringValue("db")},
		{types.StringNull(), types.StringValue("postgres"), str("db"), types.StringValue("db")},
		// The name is known only after apply.
		{types.StringNull(), types.StringUnknown(), tftypes.NewValue(tftypes.String, tftypes.UnknownValue), types.StringUnknown()},
		// Configured: kept.
		{types.StringValue("postgres"), types.StringValue("postgres"), str("db"), types.StringValue("postgres")},
	}
	for i, c := range cases {
		resp := &planmodifier.StringResponse{PlanValue: c.planV}
		serviceDefaultsToName{}.PlanModifyString(ctx, planmodifier.StringRequest{
			Path: path.Root("service"), ConfigValue: c.config, PlanValue: c.planV, Plan: plan(c.name),
		}, resp)
		if resp.Diagnostics.HasError() || !resp.PlanValue.Equal(c.want) {
			t.Errorf("case %d: %v %v, want %v", i, resp.PlanValue, resp.Diagnostics, c.want)
		}
	}
	// Destroy: nothing to plan.
	resp := &planmodifier.StringResponse{PlanValue: types.StringNull()}
	serviceDefaultsToName{}.PlanModifyString(ctx, planmodifier.StringRequest{
		ConfigValue: types.StringNull(), PlanValue: types.StringNull(), Plan: tfsdk.Plan{Schema: s, Raw: tftypes.NewValue(s.Type().TerraformType(ctx), nil)},
	}, resp)
	if !resp.PlanValue.IsNull() || resp.Diagnostics.HasError() {
		t.Errorf("destroy: %v %v", resp.PlanValue, resp.Diagnostics)
	}
}

func TestTunnelFill(t *testing.T) {
	port := int64(5432)
	var m tunnelModel
	m.fill(&client.Tunnel{TrustDomain: "example.org", Name: "db", SpiffeID: "spiffe://example.org/db",
		Agent: "spiffe://example.org/sigil/agent/a", Service: "postgres", Port: &port, CreatedAt: "2030-01-01T00:00:00.000Z"})
	if m.ID.ValueString() != "example.org/db" || m.Service.ValueString() != "postgres" || m.Port.ValueInt64() != 5432 || m.CreatedAt.ValueString() == "" {
		t.Errorf("fill: %+v", m)
	}
	m.fill(&client.Tunnel{TrustDomain: "example.org", Name: "db", Service: "db"})
	if !m.Port.IsNull() {
		t.Errorf("a tunnel without a port has a null port: %v", m.Port)
	}
	if knownInt64(types.Int64Null()) != nil || knownInt64(types.Int64Unknown()) != nil || *knownInt64(types.Int64Value(7)) != 7 {
		t.Error("knownInt64")
	}
}

func TestAddTunnelError(t *testing.T) {
	cases := []struct {
		err        error
		want       path.Path
		wantInText []string
	}{
		{apiErr("TUNNEL_EXISTS", `trust domain example.org already has a tunnel "db"`), path.Root("name"),
			[]string{"already has a tunnel", "terraform import ADDRESS example.org/db", "sigil tunnel delete --trust-domain example.org db"}},
		{apiErr("TUNNEL_INVALID", `name "DB": use lower-case letters, digits, '-' and '.' (a DNS label, at most 63)`), path.Root("name"), nil},
		{apiErr("TUNNEL_INVALID", `spiffeId "spiffe://o.org/x" is not in trust domain example.org`), path.Root("spiffe_id"), nil},
		{apiErr("TUNNEL_INVALID", `spiffeId: SPIFFE ID "spiffe://example.org" names the trust domain itself`), path.Root("spiffe_id"), nil},
		{apiErr("TUNNEL_INVALID", `agent "spiffe://example.org/db" is not an agent SPIFFE ID (spiffe://example.org/sigil/agent/...)`), path.Root("agent"), nil},
		{apiErr("TUNNEL_INVALID", `service "A" is not a valid name`), path.Root("service"), nil},
		{apiErr("TUNNEL_INVALID", `port 70000 is out of range (1-65535)`), path.Root("port"), nil},
		{apiErr("VALIDATION_FAILED", `body field port must be <= 65535`), path.Root("port"), nil},
		{apiErr("TRUST_DOMAIN_NOT_FOUND", `trust domain "x.org" does not exist`), path.Root("trust_domain"), nil},
		{apiErr("TOKEN_INVALID", "bad token"), path.Empty(), []string{`provider "sigil" attribute: token`}},
	}
	for _, c := range cases {
		var diags diag.Diagnostics
		addTunnelError(&diags, c.err, "create tunnel db in trust domain example.org", "example.org", "db")
		if len(diags) != 1 {
			t.Errorf("%v: %v", c.err, diags)
			continue
		}
		got := path.Empty()
		if d, ok := diags[0].(diag.DiagnosticWithPath); ok {
			got = d.Path()
		}
		if !got.Equal(c.want) {
			t.Errorf("%v: on %s, want %s", c.err, got, c.want)
		}
		for _, w := range c.wantInText {
			if !strings.Contains(diags[0].Summary()+" "+diags[0].Detail(), w) {
				t.Errorf("%v: %q does not say %q", c.err, diags[0].Detail(), w)
			}
		}
	}
}

func TestTunnelImportID(t *testing.T) {
	ctx := context.Background()
	s := tunnelSchema(t)
	empty := tfsdk.State{Schema: s, Raw: tftypes.NewValue(s.Type().TerraformType(ctx), nil)}
	r := newTunnelResource().(resource.ResourceWithImportState)
	for id, want := range map[string]string{
		"example.org":         "Import with TRUST_DOMAIN/ID",
		"example.org/db/x":    "Import with TRUST_DOMAIN/ID",
		"Example.org/db":      "invalid trust domain",
		"example.org/My_DB":   "The tunnel name is invalid",
		"example.org/":        "Import with TRUST_DOMAIN/ID",
		"/db":                 "invalid trust domain",
		"example.org/db name": "The tunnel name is invalid",
	} {
		resp := &resource.ImportStateResponse{State: empty}
		r.ImportState(ctx, resource.ImportStateRequest{ID: id}, resp)
		if !resp.Diagnostics.HasError() || !strings.Contains(resp.Diagnostics[0].Detail(), want) {
			t.Errorf("import %q: %v, want an error with %q", id, resp.Diagnostics, want)
		}
	}
	resp := &resource.ImportStateResponse{State: empty}
	r.ImportState(ctx, resource.ImportStateRequest{ID: "example.org/db"}, resp)
	var td, name types.String
	resp.State.GetAttribute(ctx, path.Root("trust_domain"), &td)
	resp.State.GetAttribute(ctx, path.Root("name"), &name)
	if resp.Diagnostics.HasError() || td.ValueString() != "example.org" || name.ValueString() != "db" {
		t.Errorf("import example.org/db: %v %v %v", td, name, resp.Diagnostics)
	}
}
