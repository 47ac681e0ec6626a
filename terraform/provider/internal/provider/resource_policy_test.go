package provider

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/sigil-dev/terraform-provider-sigil/internal/client"
)

func TestParsePort(t *testing.T) {
	good := map[string]portRange{"1": {1, 1}, "443": {443, 443}, "65535": {65535, 65535}, "8000-8100": {8000, 8100}, "22-22": {22, 22}}
	for in, want := range good {
		got, err := parsePort(in)
		if err != nil || got != want {
			t.Errorf("parsePort(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	bad := map[string]string{
		"70000":      "out of range",
		"0":          "out of range",
		"8000-70000": "out of range",
		"8100-8000":  `reversed; write "8000-8100"`,
		"":           "neither a port",
		"https":      "neither a port",
		"443/tcp":    "neither a port",
		"80 - 90":    "neither a port",
		"-1":         "neither a port",
		"123456":     "neither a port",
	}
	for in, want := range bad {
		if _, err := parsePort(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parsePort(%q) = %v; want an error with %q", in, err, want)
		}
	}
}

func TestNormalizePortsAndEquivalence(t *testing.T) {
	got, err := normalizePorts([]string{"443", "80", "8000-8100", "8050", "8101", "81", "22-22"})
	if err != nil || strings.Join(got, ",") != "22,80-81,443,8000-8101" {
		t.Errorf("normalizePorts = %v, %v", got, err)
	}
	equivalent := [][2][]string{
		{{"5432"}, {"5432"}},
		{{"443", "80"}, {"80", "443"}},
		{{"5432-5432"}, {"5432"}},
		{{"80", "81"}, {"80-81"}},
		{{"443", "443"}, {"443"}},
	}
	for _, c := range equivalent {
		if !portsEquivalent(c[0], c[1]) {
			t.Errorf("%v and %v should be equivalent", c[0], c[1])
		}
	}
	different := [][2][]string{
		{{"5432"}, {"5433"}},
		{{"80", "443"}, {"80"}},
		{{"80-90"}, {"80-91"}},
		{{"bad"}, {"bad"}},
	}
	for _, c := range different {
		if portsEquivalent(c[0], c[1]) {
			t.Errorf("%v and %v should differ", c[0], c[1])
		}
	}
}

func TestCheckSpiffeIDPattern(t *testing.T) {
	for _, ok := range []string{"spiffe://example.org/web", "spiffe://example.org/ns/prod/*", "spiffe://example.org/*/db", "spiffe://example.org/*"} {
		if err := checkSpiffeIDPattern(ok, "example.org"); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	bad := map[string]string{
		"spiffe://other.org/web":      `belongs to trust domain "other.org", not "example.org"`,
		"spiffe://other.org/ns/*":     `"spiffe://other.org/ns/*" belongs to trust domain "other.org"`,
		"spiffe://example.org/web-*":  `"*" must be a whole path segment`,
		"spiffe://*.example.org/web":  "trust domain of a SPIFFE ID cannot contain",
		"spiffe://example.org":        "has no path",
		"spiffe://example.org/a//b":   "empty path segment",
		"https://example.org/web":     "invalid scheme",
		"spiffe://Example.org/web":    "lowercase",
		"spiffe://example.org/web/":   "trailing slash",
		"spiffe://example.org/ns/**/": `"*" must be a whole path segment`,
	}
	for in, want := range bad {
		if err := checkSpiffeIDPattern(in, "example.org"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v; want %q", in, err, want)
		}
	}
	if err := checkSpiffeIDPattern("spiffe://other.org/web", ""); err != nil {
		t.Errorf("without a trust domain, any trust domain is fine: %v", err)
	}
}

func TestCheckFQDNPattern(t *testing.T) {
	for _, ok := range []string{"api.stripe.com", "*.s3.amazonaws.com", "localhost", "a-b.example.org"} {
		if err := checkFQDNPattern(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	bad := map[string]string{
		"":                       "empty",
		"API.example.com":        `write "api.example.com"`,
		"example.com.":           `must not end with "."`,
		"*.com":                  "too broad",
		"a.*.example.com":        "whole leftmost label",
		"api*.example.com":       "whole leftmost label",
		"-a.example.com":         "not a DNS label",
		"https://x.org":          "bare DNS name",
		"example.com:443":        "bare DNS name",
		"under_score.org":        "not a DNS label",
		"a..example.org":         "not a DNS label",
		strings.Repeat("a", 254): "limit is 253",
	}
	for in, want := range bad {
		if err := checkFQDNPattern(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v; want %q", in, err, want)
		}
	}
}

func TestCheckSelectorKeyAndRuleName(t *testing.T) {
	for _, ok := range []string{"k8s:ns", "unix:uid", "k8s:pod-label:app", "k8s:pod-label:app.kubernetes.io/part-of", "aws_iid:tag:team"} {
		if err := checkSelectorKey(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	bad := map[string]string{
		"k8s":               "not a selector key",
		"k8s:":              "not a selector key",
		":ns":               "not a selector key",
		"k8s:ns:prod":       `drop the value, as in "k8s:ns"`,
		"k8s:pod-label":     `must name the inner key, as in "k8s:pod-label:NAME"`,
		"k8s:pod-label:a:b": "must name the inner key",
		"K8S:ns":            "not a selector key",
	}
	for in, want := range bad {
		if err := checkSelectorKey(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v; want %q", in, err, want)
		}
	}
	for _, ok := range []string{"k8s:ns:prod", "unix:path:/bin/sh", "k8s:pod-label:app:web", "unix:uid:0"} {
		if err := checkRuleSelector(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for in, want := range map[string]string{"k8s:ns": `put the key "k8s:ns" in allow_within`, "k8s:ns:": "has no value", "nocolon": "has no type"} {
		if err := checkRuleSelector(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v; want %q", in, err, want)
		}
	}
	for _, ok := range []string{"web-to-db", "a", "R1.v2_x", strings.Repeat("a", 128)} {
		if err := checkRuleName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-web", "web to db", "web/db", strings.Repeat("a", 129), "é"} {
		if err := checkRuleName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestPolicyAttributePath(t *testing.T) {
	cases := []struct {
		api  string
		want path.Path
		text string
	}{
		{"rules[0].to.ports", path.Root("rule").AtListIndex(0).AtName("to").AtName("ports"), "rule[0].to.ports"},
		{"rules[2].to.ports[1]", path.Root("rule").AtListIndex(2).AtName("to").AtName("ports").AtListIndex(1), "rule[2].to.ports[1]"},
		{"policy.rules[1].from.spiffeId", path.Root("rule").AtListIndex(1).AtName("from").AtName("spiffe_id"), "rule[1].from.spiffe_id"},
		{"rules[0].name", path.Root("rule").AtListIndex(0).AtName("name"), "rule[0].name"},
		{"rules[0].to.fqdn", path.Root("rule").AtListIndex(0).AtName("to").AtName("fqdn"), "rule[0].to.fqdn"},
		{"rules[3]", path.Root("rule").AtListIndex(3), "rule[3]"},
		{"rules", path.Root("rule"), "rule"},
		{"allowWithin[1]", path.Root("allow_within").AtListIndex(1), "allow_within[1]"},
		{"mode", path.Root("mode"), "mode"},
		// As much as the resource has: an unknown field stops the mapping.
		{"rules[0].to.protocol", path.Root("rule").AtListIndex(0).AtName("to"), "rule[0].to"},
		{"rules[0].from.fqdn", path.Root("rule").AtListIndex(0).AtName("from"), "rule[0].from"},
	}
	for _, c := range cases {
		got, text, ok := policyAttributePath(c.api)
		if !ok || !got.Equal(c.want) || text != c.text {
			t.Errorf("%q: %s %q %v; want %s %q", c.api, got, text, ok, c.want, c.text)
		}
	}
	for _, none := range []string{"", "policy", "(document)", "unknown.field", "[0]"} {
		if _, _, ok := policyAttributePath(none); ok {
			t.Errorf("%q should not map", none)
		}
	}
}

func policyErr(status int, code, message string, details any) error {
	e := &client.APIError{Status: status, Code: code, Message: message, Method: "PUT", Path: "/v1/trust-domains/example.org/policy"}
	if details != nil {
		e.Details, _ = json.Marshal(details)
	}
	return e
}

func TestAddPolicyError(t *testing.T) {
	cases := []struct {
		err        error
		wantPath   path.Path
		wantInText []string
	}{
		{
			policyErr(400, "POLICY_INVALID", "line 9, rules[0].to.ports[0]: port 70000 is out of range 1-65535", map[string]any{"line": 9, "column": 7, "path": "rules[0].to.ports[0]"}),
			path.Root("rule").AtListIndex(0).AtName("to").AtName("ports").AtListIndex(0),
			[]string{"rule[0].to.ports[0]: port 70000 is out of range 1-65535", "POLICY_INVALID"},
		},
		{
			// No details: the path is read from the message.
			policyErr(400, "POLICY_INVALID", "line 4, allowWithin[0]: \"k8s:nope\" has unknown key \"nope\" for type k8s", nil),
			path.Root("allow_within").AtListIndex(0),
			[]string{"allow_within[0]: \"k8s:nope\" has unknown key"},
		},
		{
			// The JSON form's message names the field under "policy."; details hold the path only.
			policyErr(400, "POLICY_INVALID", "policy.rules[1].from.spiffeId: SPIFFE ID \"spiffe://o.org/x\" is in trust domain \"o.org\"", map[string]any{"path": "rules[1].from.spiffeId"}),
			path.Root("rule").AtListIndex(1).AtName("from").AtName("spiffe_id"),
			[]string{"rule[1].from.spiffe_id: SPIFFE ID \"spiffe://o.org/x\" is in trust domain"},
		},
		{
			// The request schema's refusal.
			policyErr(400, "VALIDATION_FAILED", "body field policy.rules.0.to.ports.1 must be integer", nil),
			path.Root("rule").AtListIndex(0).AtName("to").AtName("ports").AtListIndex(1),
			[]string{"rule[0].to.ports[1]: must be integer"},
		},
		{
			policyErr(400, "POLICY_INVALID", "line 1, (document): the policy is empty", map[string]any{"line": 1, "column": 1, "path": ""}),
			path.Empty(),
			[]string{"the policy is empty"},
		},
		{
			policyErr(409, "POLICY_VERSION_CONFLICT", "the policy is at version 5, not 4", nil),
			path.Empty(),
			[]string{"changed outside Terraform", "terraform plan", "version 5, not 4"},
		},
		{
			policyErr(404, "TRUST_DOMAIN_NOT_FOUND", "trust domain \"x.org\" does not exist", nil),
			path.Root("trust_domain"),
			[]string{"TRUST_DOMAIN_NOT_FOUND"},
		},
		{
			policyErr(401, "TOKEN_INVALID", "bad token", nil),
			path.Empty(),
			[]string{"refused the API token", "(provider \"sigil\" attribute: token)"},
		},
	}
	for _, c := range cases {
		var diags diag.Diagnostics
		addPolicyError(&diags, c.err, "set the policy", "example.org")
		if len(diags) != 1 || !diags.HasError() {
			t.Fatalf("%v: %v", c.err, diags)
		}
		got := path.Empty()
		if d, ok := diags[0].(diag.DiagnosticWithPath); ok {
			got = d.Path()
		}
		if !got.Equal(c.wantPath) {
			t.Errorf("%v: on %q, want %q", c.err, got, c.wantPath)
		}
		text := diags[0].Summary() + "\n" + diags[0].Detail()
		for _, w := range c.wantInText {
			if !strings.Contains(text, w) {
				t.Errorf("%v: %q lacks %q", c.err, text, w)
			}
		}
		if strings.Contains(diags[0].Detail(), "line 9,") {
			t.Errorf("the YAML line of the server's rendering is not shown: %q", diags[0].Detail())
		}
	}
}

// --- the model ---

func strList(values ...string) types.List {
	if values == nil {
		return types.ListNull(types.StringType)
	}
	return listOf(values)
}

func str(s string) types.String { return stringOrNull(s) }

func fromObj(spiffeID, sel string) types.Object {
	return types.ObjectValueMust(sourceAttrTypes, map[string]attr.Value{"spiffe_id": str(spiffeID), "selector": str(sel)})
}

func toObj(spiffeID, sel, fqdn string, ports types.List) types.Object {
	return types.ObjectValueMust(destinationAttrTypes, map[string]attr.Value{"spiffe_id": str(spiffeID), "selector": str(sel), "fqdn": str(fqdn), "ports": ports})
}

func ruleObj(name, action string, from, to types.Object) attr.Value {
	return types.ObjectValueMust(ruleAttrTypes, map[string]attr.Value{"name": str(name), "action": str(action), "from": from, "to": to})
}

func rulesList(rules ...attr.Value) types.List { return types.ListValueMust(ruleType, rules) }

func TestValidateRules(t *testing.T) {
	ctx := context.Background()
	nullFrom := types.ObjectNull(sourceAttrTypes)
	nullTo := types.ObjectNull(destinationAttrTypes)
	rules := rulesList(
		ruleObj("ok", "allow", fromObj("spiffe://example.org/web", ""), toObj("spiffe://example.org/db", "", "", strList("5432"))),
		ruleObj("ok", "allow", fromObj("", "k8s:ns:prod"), toObj("", "", "*.s3.amazonaws.com", strList("443"))), // duplicate name
		ruleObj("empty-from", "allow", fromObj("", ""), toObj("spiffe://example.org/db", "", "", strList())),
		ruleObj("no-from", "allow", nullFrom, toObj("spiffe://example.org/db", "", "", strList())),
		ruleObj("empty-to", "deny", fromObj("spiffe://example.org/web", ""), toObj("", "", "", strList())),
		ruleObj("no-to", "deny", fromObj("spiffe://example.org/web", ""), nullTo),
		ruleObj("both", "allow", fromObj("spiffe://example.org/web", ""), toObj("spiffe://example.org/db", "", "db.example.org", strList())),
		ruleObj("foreign", "allow", fromObj("spiffe://other.org/web", ""), toObj("spiffe://other.org/ns/*", "", "", strList())),
		ruleObj("unknowns", "allow", types.ObjectUnknown(sourceAttrTypes), toObj("", "", "", strList())),
	)
	diags := validateRules(ctx, rules, "example.org")
	want := map[string]string{
		`rule[1].name`:           "rule[0] and rule[1] are both named \"ok\"",
		`rule[2].from`:           "rule[2].from names nothing",
		`rule[3].name`:           "rule[3] has no `from` block",
		`rule[4].to`:             "rule[4].to names nothing",
		`rule[5].name`:           "rule[5] has no `to` block",
		`rule[6].to.fqdn`:        "Write two rules",
		`rule[7].from.spiffe_id`: `belongs to trust domain "other.org", not "example.org"`,
		`rule[7].to.spiffe_id`:   `"spiffe://other.org/ns/*" belongs to trust domain "other.org"`,
		`rule[8].to`:             "rule[8].to names nothing",
	}
	seen := map[string]bool{}
	for _, d := range diags {
		p := ""
		if dp, ok := d.(diag.DiagnosticWithPath); ok {
			p = dp.Path().String()
		}
		w, ok := want[p]
		if !ok {
			t.Errorf("unexpected diagnostic on %q: %s: %s", p, d.Summary(), d.Detail())
			continue
		}
		if !strings.Contains(d.Detail(), w) {
			t.Errorf("%s: %q lacks %q", p, d.Detail(), w)
		}
		seen[p] = true
	}
	for p := range want {
		if !seen[p] {
			t.Errorf("no diagnostic on %s", p)
		}
	}
	// Unknown rules, or an unknown trust domain, are left for later.
	if d := validateRules(ctx, types.ListUnknown(ruleType), "example.org"); d.HasError() {
		t.Errorf("unknown rules: %v", d)
	}
	if d := validateRules(ctx, rulesList(ruleObj("x", "allow", fromObj("spiffe://other.org/web", ""), toObj("", "k8s:ns:a", "", strList()))), ""); d.HasError() {
		t.Errorf("unknown trust domain: %v", d)
	}
}

func TestPolicyModelToAPI(t *testing.T) {
	ctx := context.Background()
	m := policyModel{
		TrustDomain: types.StringValue("example.org"),
		Mode:        types.StringValue("explicit"),
		AllowWithin: strList("k8s:ns"),
		Rules: rulesList(
			ruleObj("web-to-db", "allow", fromObj("spiffe://example.org/web", ""), toObj("spiffe://example.org/db", "", "", strList("5432", "8000-8100"))),
			ruleObj("no-shells", "deny", fromObj("", "unix:path:/bin/sh"), toObj("spiffe://example.org/db", "", "", strList())),
		),
	}
	spec, diags := m.spec(ctx)
	if diags.HasError() {
		t.Fatal(diags)
	}
	body, err := json.Marshal(map[string]any{"policy": spec, "expectedVersion": 3})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"expectedVersion":3,"policy":{"mode":"explicit","allowWithin":["k8s:ns"],"rules":[` +
		`{"name":"web-to-db","action":"allow","from":{"spiffeId":"spiffe://example.org/web"},"to":{"spiffeId":"spiffe://example.org/db","ports":[5432,"8000-8100"]}},` +
		`{"name":"no-shells","action":"deny","from":{"selector":"unix:path:/bin/sh"},"to":{"spiffeId":"spiffe://example.org/db"}}]}}`
	if string(body) != want {
		t.Errorf("body\n%s\nwant\n%s", body, want)
	}
	// An empty policy sends empty lists, never null.
	empty, _ := (&policyModel{Mode: types.StringValue("baseline"), AllowWithin: strList(), Rules: types.ListNull(ruleType)}).spec(ctx)
	if b, _ := json.Marshal(empty); string(b) != `{"mode":"baseline","allowWithin":[],"rules":[]}` {
		t.Errorf("empty policy: %s", b)
	}
}

func TestPolicyModelFromAPI(t *testing.T) {
	ctx := context.Background()
	raw := `{"trustDomain":"example.org","version":7,"mode":"explicit","allowWithin":["k8s:ns"],
	  "rules":[
	    {"name":"web-to-db","action":"allow","from":{"spiffeId":"spiffe://example.org/web"},"to":{"spiffeId":"spiffe://example.org/db","ports":[80,443,"8000-8100"]}},
	    {"name":"web-to-s3","action":"allow","from":{"spiffeId":"spiffe://example.org/web"},"to":{"fqdn":"*.s3.amazonaws.com","ports":[443]}},
	    {"name":"any","from":{"selector":"k8s:ns:a"},"to":{"selector":"k8s:ns:b"}}
	  ],
	  "text":"mode: explicit\n","updatedAt":"2030-01-01T00:00:00.000Z","updatedBy":"terraform"}`
	var p client.Policy
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		t.Fatal(err)
	}
	// The prior spelling of web-to-db's ports is kept (same ports), web-to-s3's is not (other ports).
	prior := rulesList(
		ruleObj("web-to-db", "allow", fromObj("spiffe://example.org/web", ""), toObj("spiffe://example.org/db", "", "", strList("443", "8000-8100", "80"))),
		ruleObj("web-to-s3", "allow", fromObj("spiffe://example.org/web", ""), toObj("", "", "*.s3.amazonaws.com", strList("8443"))),
	)
	var m policyModel
	m.fill(ctx, &p, prior)
	if m.ID.ValueString() != "example.org" || m.TrustDomain.ValueString() != "example.org" || m.Version.ValueInt64() != 7 ||
		m.Mode.ValueString() != "explicit" || m.UpdatedBy.ValueString() != "terraform" || m.UpdatedAt.ValueString() != "2030-01-01T00:00:00.000Z" {
		t.Errorf("model %+v", m)
	}
	if !m.AllowWithin.Equal(strList("k8s:ns")) {
		t.Errorf("allow_within %v", m.AllowWithin)
	}
	want := rulesList(
		ruleObj("web-to-db", "allow", fromObj("spiffe://example.org/web", ""), toObj("spiffe://example.org/db", "", "", strList("443", "8000-8100", "80"))),
		ruleObj("web-to-s3", "allow", fromObj("spiffe://example.org/web", ""), toObj("", "", "*.s3.amazonaws.com", strList("443"))),
		ruleObj("any", "allow", fromObj("", "k8s:ns:a"), toObj("", "k8s:ns:b", "", strList())),
	)
	if !m.Rules.Equal(want) {
		t.Errorf("rules\n%v\nwant\n%v", m.Rules, want)
	}
	// Back to the API: the same policy.
	spec, diags := m.spec(ctx)
	if diags.HasError() {
		t.Fatal(diags)
	}
	if len(spec.Rules) != 3 || spec.Rules[2].Action != "allow" || spec.Rules[1].To.FQDN != "*.s3.amazonaws.com" || spec.Rules[0].From.SpiffeID != "spiffe://example.org/web" {
		t.Errorf("spec %+v", spec)
	}
	// Version 0, never set: the default, with null times and author.
	var zero client.Policy
	_ = json.Unmarshal([]byte(`{"trustDomain":"example.org","version":0,"mode":"baseline","allowWithin":[],"rules":[],"text":"","updatedAt":null,"updatedBy":null}`), &zero)
	var d policyModel
	d.fill(ctx, &zero, types.ListNull(ruleType))
	if !d.UpdatedAt.IsNull() || !d.UpdatedBy.IsNull() || len(d.Rules.Elements()) != 0 || len(d.AllowWithin.Elements()) != 0 || d.Rules.IsNull() {
		t.Errorf("default policy %+v", d)
	}
}

func TestKeepEquivalentPorts(t *testing.T) {
	ctx := context.Background()
	run := func(state, config types.List) types.List {
		resp := &planmodifier.ListResponse{PlanValue: config}
		keepEquivalentPorts{}.PlanModifyList(ctx, planmodifier.ListRequest{StateValue: state, ConfigValue: config, PlanValue: config}, resp)
		return resp.PlanValue
	}
	if got := run(strList("80", "443"), strList("443", "80")); !got.Equal(strList("80", "443")) {
		t.Errorf("reordered ports plan %v", got)
	}
	if got := run(strList("80-81"), strList("80", "81")); !got.Equal(strList("80-81")) {
		t.Errorf("split range plans %v", got)
	}
	if got := run(strList("80"), strList("80", "443")); !got.Equal(strList("80", "443")) {
		t.Errorf("a change plans %v", got)
	}
	if got := run(types.ListNull(types.StringType), strList("443")); !got.Equal(strList("443")) {
		t.Errorf("a create plans %v", got)
	}
	if got := run(strList("443"), types.ListNull(types.StringType)); !got.IsNull() {
		t.Errorf("removing ports plans %v", got)
	}
}
