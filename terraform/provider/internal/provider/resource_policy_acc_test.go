package provider

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/sigil-dev/terraform-provider-sigil/internal/client"
)

// policyConfig is a trust domain and, unless body is "", its policy.
func policyConfig(s *sigilServer, td, body string) string {
	config := s.providerConfig() + fmt.Sprintf(`
resource "sigil_trust_domain" "td" {
  name = %q
}
`, td)
	if body == "" {
		return config
	}
	return config + fmt.Sprintf(`
resource "sigil_policy" "main" {
  trust_domain = sigil_trust_domain.td.name
%s
}
`, body)
}

// policyRules renders rules in the resource's block syntax, one attribute per line so that a
// diagnostic's source line names the attribute.
func webToDB(td, ports string) string {
	return fmt.Sprintf(`
  rule {
    name = "web-to-db"
    from {
      spiffe_id = "spiffe://%[1]s/web"
    }
    to {
      spiffe_id = "spiffe://%[1]s/db"
      ports     = %[2]s
    }
  }
`, td, ports)
}

func webToS3(td, ports string) string {
	return fmt.Sprintf(`
  rule {
    name = "web-to-s3"
    from {
      spiffe_id = "spiffe://%[1]s/web"
    }
    to {
      fqdn  = "*.s3.amazonaws.com"
      ports = %[2]s
    }
  }
`, td, ports)
}

const noShells = `
  rule {
    name   = "no-debug-shells"
    action = "deny"
    from {
      selector = "unix:path:/bin/sh"
    }
    to {
      selector = "k8s:ns:prod"
    }
  }
`

// checkPolicy compares the server's policy with what the configuration says.
func checkPolicy(s *sigilServer, td string, check func(p *client.Policy) error) resource.TestCheckFunc {
	return checkAPI(func(ctx context.Context) error {
		p, err := s.API.GetPolicy(ctx, td)
		if err != nil {
			return err
		}
		if err := check(p); err != nil {
			return fmt.Errorf("the server's policy (version %d): %w\n%s", p.Version, err, p.Text)
		}
		return nil
	})
}

func ruleNames(p *client.Policy) string {
	names := make([]string, len(p.Rules))
	for i, r := range p.Rules {
		names[i] = r.Name
	}
	return strings.Join(names, ",")
}

func portsOf(r client.PolicyRule) string {
	out := make([]string, len(r.To.Ports))
	for i, p := range r.To.Ports {
		out[i] = string(p)
	}
	return strings.Join(out, ",")
}

// captureInt64 stores an integer attribute of the state in *into.
func captureInt64(addr, attr string, into *int64) resource.TestCheckFunc {
	return resource.TestCheckResourceAttrWith(addr, attr, func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("%s is %q, not a number", attr, v)
		}
		*into = n
		return nil
	})
}

func checkInt64(addr, attr string, want func() int64) resource.TestCheckFunc {
	return resource.TestCheckResourceAttrWith(addr, attr, func(v string) error {
		if w := strconv.FormatInt(want(), 10); v != w {
			return fmt.Errorf("%s is %s, want %s", attr, v, w)
		}
		return nil
	})
}

func TestAccPolicy(t *testing.T) {
	s := testServer(t)
	const td = "acc-policy.example.org"
	const addr = "sigil_policy.main"
	var created, version int64

	first := `  allow_within = ["k8s:ns"]` + webToDB(td, `["5432"]`)
	second := `  mode         = "explicit"
  allow_within = ["k8s:ns", "k8s:pod-label:app.kubernetes.io/part-of"]` + webToDB(td, `["5432", "8000-8100"]`) + webToS3(td, `["443"]`) + noShells

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		CheckDestroy:             checkTrustDomainsDestroyed(s),
		Steps: []resource.TestStep{
			{
				// Create.
				Config: policyConfig(s, td, first),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(addr, plancheck.ResourceActionCreate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(addr, "id", td),
					resource.TestCheckResourceAttr(addr, "trust_domain", td),
					resource.TestCheckResourceAttr(addr, "mode", "baseline"),
					resource.TestCheckResourceAttr(addr, "allow_within.#", "1"),
					resource.TestCheckResourceAttr(addr, "allow_within.0", "k8s:ns"),
					resource.TestCheckResourceAttr(addr, "rule.#", "1"),
					resource.TestCheckResourceAttr(addr, "rule.0.name", "web-to-db"),
					resource.TestCheckResourceAttr(addr, "rule.0.action", "allow"),
					resource.TestCheckResourceAttr(addr, "rule.0.from.spiffe_id", "spiffe://"+td+"/web"),
					resource.TestCheckNoResourceAttr(addr, "rule.0.from.selector"),
					resource.TestCheckResourceAttr(addr, "rule.0.to.spiffe_id", "spiffe://"+td+"/db"),
					resource.TestCheckResourceAttr(addr, "rule.0.to.ports.#", "1"),
					resource.TestCheckResourceAttr(addr, "rule.0.to.ports.0", "5432"),
					resource.TestCheckResourceAttrSet(addr, "updated_at"),
					captureInt64(addr, "version", &created),
					checkPolicy(s, td, func(p *client.Policy) error {
						if p.Version < 1 || p.Mode != "baseline" || strings.Join(p.AllowWithin, ",") != "k8s:ns" || ruleNames(p) != "web-to-db" ||
							p.Rules[0].Action != "allow" || portsOf(p.Rules[0]) != "5432" || p.Rules[0].From.SpiffeID != "spiffe://"+td+"/web" {
							return fmt.Errorf("got %+v", p)
						}
						return nil
					}),
				),
			},
			{
				// Update in place: add rules, switch the mode. A new version, the same resource.
				Config: policyConfig(s, td, second),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate),
						plancheck.ExpectUnknownValue(addr, tfjsonpath.New("version")),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkInt64(addr, "version", func() int64 { return created + 1 }),
					resource.TestCheckResourceAttr(addr, "mode", "explicit"),
					resource.TestCheckResourceAttr(addr, "allow_within.#", "2"),
					resource.TestCheckResourceAttr(addr, "rule.#", "3"),
					resource.TestCheckResourceAttr(addr, "rule.0.to.ports.#", "2"),
					resource.TestCheckResourceAttr(addr, "rule.0.to.ports.1", "8000-8100"),
					resource.TestCheckResourceAttr(addr, "rule.1.name", "web-to-s3"),
					resource.TestCheckResourceAttr(addr, "rule.1.to.fqdn", "*.s3.amazonaws.com"),
					resource.TestCheckNoResourceAttr(addr, "rule.1.to.spiffe_id"),
					resource.TestCheckResourceAttr(addr, "rule.2.action", "deny"),
					resource.TestCheckNoResourceAttr(addr, "rule.2.to.ports.#"),
					checkPolicy(s, td, func(p *client.Policy) error {
						if p.Version != created+1 || p.Mode != "explicit" || ruleNames(p) != "web-to-db,web-to-s3,no-debug-shells" ||
							portsOf(p.Rules[0]) != "5432,8000-8100" || p.Rules[1].To.FQDN != "*.s3.amazonaws.com" ||
							p.Rules[2].Action != "deny" || p.Rules[2].From.Selector != "unix:path:/bin/sh" || len(p.Rules[2].To.Ports) != 0 {
							return fmt.Errorf("got %+v", p)
						}
						return nil
					}),
				),
			},
			{
				// Import by the trust domain's name.
				ResourceName:      addr,
				ImportState:       true,
				ImportStateId:     td,
				ImportStateVerify: true,
			},
			{
				// Drift: the policy changed through the API shows in the plan...
				PreConfig: func() {
					p, err := s.API.GetPolicy(context.Background(), td)
					if err != nil {
						t.Fatal(err)
					}
					spec := p.Spec()
					spec.Mode = "baseline"
					spec.Rules = spec.Rules[:1]
					spec.Rules[0].To.Ports = []client.Port{"22"}
					if _, err := s.API.PutPolicy(context.Background(), td, spec, &p.Version); err != nil {
						t.Fatal(err)
					}
				},
				Config:             policyConfig(s, td, second),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				// ...and apply restores the configuration (as the next version after the API's).
				Config: policyConfig(s, td, second),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkInt64(addr, "version", func() int64 { return created + 3 }),
					checkPolicy(s, td, func(p *client.Policy) error {
						if p.Mode != "explicit" || ruleNames(p) != "web-to-db,web-to-s3,no-debug-shells" || portsOf(p.Rules[0]) != "5432,8000-8100" {
							return fmt.Errorf("not restored: %+v", p)
						}
						return nil
					}),
				),
			},
			{
				// Ports in another order than the server keeps them: applied, then no difference.
				Config: policyConfig(s, td, strings.Replace(second, `["443"]`, `["8443", "443"]`, 1)),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(addr, "rule.1.to.ports.0", "8443"),
					resource.TestCheckResourceAttr(addr, "rule.1.to.ports.1", "443"),
					checkPolicy(s, td, func(p *client.Policy) error {
						if portsOf(p.Rules[1]) != "443,8443" {
							return fmt.Errorf("ports %s", portsOf(p.Rules[1]))
						}
						return nil
					}),
				),
			},
			{
				// The same ports written yet another way are not a change.
				Config: policyConfig(s, td, strings.Replace(second, `["443"]`, `["443", "8443-8443"]`, 1)),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					captureInt64(addr, "version", &version),
				),
			},
			{
				// Destroy (the policy leaves the configuration, the trust domain stays): the policy is
				// reset to the default as the next version.
				Config: policyConfig(s, td, ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(addr, plancheck.ResourceActionDestroy)},
				},
				Check: checkPolicy(s, td, func(p *client.Policy) error {
					if p.Version != version+1 || p.Mode != "baseline" || len(p.Rules) != 0 || len(p.AllowWithin) != 0 {
						return fmt.Errorf("not reset to the default as version %d: %+v", version+1, p)
					}
					return nil
				}),
			},
		},
	})
}

// A policy set outside Terraform is replaced by the configuration when the resource is created.
func TestAccPolicyReplacesExisting(t *testing.T) {
	s := testServer(t)
	const td = "acc-policy-existing.example.org"
	const addr = "sigil_policy.main"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		CheckDestroy:             checkTrustDomainsDestroyed(s),
		Steps: []resource.TestStep{
			{Config: policyConfig(s, td, "")},
			{
				PreConfig: func() {
					spec := client.PolicySpec{Mode: "explicit", Rules: []client.PolicyRule{{
						Name: "from-the-cli", Action: "allow",
						From: client.PolicySource{Selector: "k8s:ns:a"}, To: client.PolicyDestination{Selector: "k8s:ns:b"},
					}}}
					if _, err := s.API.PutPolicy(context.Background(), td, spec, nil); err != nil {
						t.Fatal(err)
					}
				},
				Config: policyConfig(s, td, webToDB(td, `["5432"]`)),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(addr, "mode", "baseline"),
					resource.TestCheckResourceAttr(addr, "rule.#", "1"),
					checkPolicy(s, td, func(p *client.Policy) error {
						if p.Mode != "baseline" || ruleNames(p) != "web-to-db" || p.Version < 2 {
							return fmt.Errorf("not replaced: %+v", p)
						}
						return nil
					}),
				),
			},
			{
				// Deleted with its trust domain outside Terraform: both leave the state, the plan re-creates them.
				PreConfig: func() {
					if err := s.API.DeleteTrustDomain(context.Background(), td); err != nil {
						t.Fatal(err)
					}
				},
				Config:             policyConfig(s, td, webToDB(td, `["5432"]`)),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
		},
	})
}

func TestAccPolicyImportBadID(t *testing.T) {
	s := testServer(t)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		CheckDestroy:             checkTrustDomainsDestroyed(s),
		Steps: []resource.TestStep{{
			Config:        policyConfig(s, "acc-policy-import.example.org", webToDB("acc-policy-import.example.org", `["5432"]`)),
			ResourceName:  "sigil_policy.main",
			ImportState:   true,
			ImportStateId: "spiffe://acc-policy-import.example.org",
			ExpectError:   words("Import a policy by its trust domain's name"),
		}},
	})
}

// Bad configurations fail at plan time, on the attribute, with the fix.
func TestAccPolicyInvalidAtPlanTime(t *testing.T) {
	s := testServer(t)
	const td = "acc-policy-bad.example.org"
	rule := func(from, to string) string {
		return fmt.Sprintf("  rule {\n    name = \"r\"\n    from {\n%s\n    }\n    to {\n%s\n    }\n  }\n", from, to)
	}
	cases := map[string]struct {
		body string
		want string
	}{
		"port out of range": {
			rule(`      spiffe_id = "spiffe://`+td+`/web"`, `      spiffe_id = "spiffe://`+td+`/db"`+"\n      ports = [\"70000\"]"),
			`(?s)Invalid port.*` + onAttribute("ports") + `.*port 70000 is out of range: ports are 1 to 65535`,
		},
		"empty ports": {
			rule(`      spiffe_id = "spiffe://`+td+`/web"`, `      spiffe_id = "spiffe://`+td+`/db"`+"\n      ports = []"),
			`(?s)Empty ports.*` + onAttribute("ports") + `.*leave ports out to allow every port`,
		},
		"selector without a value": {
			rule(`      selector = "k8s:ns"`, `      spiffe_id = "spiffe://`+td+`/db"`),
			`(?s)Invalid selector.*` + onAttribute("selector") + `.*"k8s:ns" has no value; a rule's selector is TYPE:KEY:VALUE`,
		},
		"reversed port range": {
			rule(`      spiffe_id = "spiffe://`+td+`/web"`, `      spiffe_id = "spiffe://`+td+`/db"`+"\n      ports = [\"9000-8000\"]"),
			`(?s)Invalid port.*is reversed; write "8000-9000"`,
		},
		"empty from": {
			rule(``, `      spiffe_id = "spiffe://`+td+`/db"`),
			`(?s)Empty from block.*rule\[0\]\.from names nothing: set ` + "`spiffe_id`",
		},
		"missing to": {
			"  rule {\n    name = \"r\"\n    from {\n      selector = \"k8s:ns:a\"\n    }\n  }\n",
			`(?s)Missing to block.*rule\[0\] has no ` + "`to`" + ` block`,
		},
		"SPIFFE ID of another trust domain": {
			rule(`      spiffe_id = "spiffe://other.example.org/web"`, `      spiffe_id = "spiffe://`+td+`/db"`),
			`(?s)SPIFFE ID of another trust domain.*` + onAttribute("spiffe_id") + `.*belongs to trust domain "other.example.org", not "` + regexp.QuoteMeta(td) + `"`,
		},
		"fqdn with spiffe_id": {
			rule(`      selector = "k8s:ns:a"`, `      spiffe_id = "spiffe://`+td+`/db"`+"\n      fqdn = \"db.example.com\""),
			`(?s)fqdn and spiffe_id cannot be combined.*` + onAttribute("fqdn") + `.*Write two rules`,
		},
		"duplicate rule names": {
			rule(`      selector = "k8s:ns:a"`, `      selector = "k8s:ns:b"`) + rule(`      selector = "k8s:ns:c"`, `      selector = "k8s:ns:d"`),
			`(?s)Duplicate rule name.*rule\[0\] and rule\[1\] are both named "r"`,
		},
		"bad glob": {
			rule(`      spiffe_id = "spiffe://`+td+`/web-*"`, `      selector = "k8s:ns:b"`),
			`(?s)Invalid SPIFFE ID.*"\*" must be a whole path segment`,
		},
		"bad fqdn": {
			rule(`      selector = "k8s:ns:a"`, `      fqdn = "*.com"`),
			`(?s)Invalid fqdn.*too broad`,
		},
		"bad mode": {
			`  mode = "strict"`,
			`(?s)Invalid Attribute Value Match.*mode.*value must be one of`,
		},
		"bad allow_within": {
			`  allow_within = ["k8s:ns:prod"]`,
			`(?s)Invalid allow_within selector key.*drop the value, as in "k8s:ns"`,
		},
		"bad rule name": {
			"  rule {\n    name = \"web to db\"\n    from {\n      selector = \"k8s:ns:a\"\n    }\n    to {\n      selector = \"k8s:ns:b\"\n    }\n  }\n",
			`(?s)Invalid rule name.*"web to db" must be 1 to 128 letters`,
		},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			resource.Test(t, resource.TestCase{
				ProtoV6ProviderFactories: testProviders,
				Steps: []resource.TestStep{{
					Config:      policyConfig(s, td, c.body),
					PlanOnly:    true,
					ExpectError: regexp.MustCompile(strings.ReplaceAll(c.want, " ", `\s+`)),
				}},
			})
		})
	}
}

// What only the server knows (selector types and keys) is refused at apply time, on the attribute.
func TestAccPolicyRefusedByServer(t *testing.T) {
	s := testServer(t)
	const td = "acc-policy-server.example.org"
	expectError(t, policyConfig(s, td, `  allow_within = ["k8s:ns", "k8s:nope"]`),
		regexp.MustCompile(`(?s)POLICY_INVALID.*`+onAttribute("allow_within")+`.*allow_within\[1\]:\s+"k8s:nope"\s+has\s+unknown\s+key`))
	expectError(t, policyConfig(s, td, `
  rule {
    name = "r"
    from {
      selector = "unix:uid:abc"
    }
    to {
      selector = "k8s:ns:b"
    }
  }`), regexp.MustCompile(`(?s)POLICY_INVALID.*`+onAttribute("selector")+`.*rule\[0\]\.from\.selector:.*unix:uid:abc.*non-negative\s+integer`))
}
