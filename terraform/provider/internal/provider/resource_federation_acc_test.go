package provider

import (
	"context"
	"fmt"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/sigil-dev/terraform-provider-sigil/internal/client"
)

// Two trust domains of the test server; a federates with b through the server's own bundle endpoint.
func federationConfig(s *sigilServer, a, b, path string) string {
	return s.providerConfig() + fmt.Sprintf(`
resource "sigil_trust_domain" "a" {
  name = %[1]q
}

resource "sigil_trust_domain" "b" {
  name = %[2]q
}

resource "sigil_federation" "ab" {
  trust_domain         = sigil_trust_domain.a.name
  foreign_trust_domain = sigil_trust_domain.b.name
  bundle_endpoint_url  = "%[3]s%[4]s"
  ca_bundle_pem        = file(%[5]q)
}
`, a, b, s.URL, path, s.CAFile)
}

func TestAccFederation(t *testing.T) {
	s := testServer(t)
	const a, b = "acc-fed-a.example.org", "acc-fed-b.example.org"
	const addr = "sigil_federation.ab"
	good := "/v1/federation/" + b + "/bundle"
	held := func(wantRoots int64, wantError bool) resource.TestCheckFunc {
		return checkAPI(func(ctx context.Context) error {
			f, err := s.API.GetFederation(ctx, a, b)
			if err != nil {
				return err
			}
			if f.Roots != wantRoots || (f.LastError != nil) != wantError {
				return fmt.Errorf("federation holds %d roots (want %d), lastError %v (want an error: %v)",
					f.Roots, wantRoots, f.LastError, wantError)
			}
			return nil
		})
	}
	var createdAt string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		CheckDestroy: func(st *terraform.State) error {
			for _, rs := range st.RootModule().Resources {
				if rs.Type != "sigil_federation" {
					continue
				}
				_, err := s.API.GetFederation(context.Background(), a, b)
				if !client.HasCode(err, "FEDERATION_NOT_FOUND", "TRUST_DOMAIN_NOT_FOUND") {
					return fmt.Errorf("federation %s still exists after destroy (err %v)", rs.Primary.ID, err)
				}
			}
			return checkTrustDomainsDestroyed(s)(st)
		},
		Steps: []resource.TestStep{
			{
				Config: federationConfig(s, a, b, good),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(addr, plancheck.ResourceActionCreate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(addr, "id", a+"/"+b),
					resource.TestCheckResourceAttr(addr, "profile", "https_web"),
					resource.TestCheckNoResourceAttr(addr, "endpoint_spiffe_id"),
					resource.TestMatchResourceAttr(addr, "ca_bundle_pem", regexp.MustCompile(`BEGIN CERTIFICATE`)),
					resource.TestCheckResourceAttrWith(addr, "created_at", func(v string) error { createdAt = v; return nil }),
					held(1, false),
				),
			},
			{
				ResourceName:      addr,
				ImportState:       true,
				ImportStateId:     a + "/" + b,
				ImportStateVerify: true,
			},
			{
				// Another endpoint is another federation (replaced); a bad one is created, with its error
				// a warning, and the resource still converges.
				Config: federationConfig(s, a, b, "/v1/federation/no-such.example.org/bundle"),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(addr, plancheck.ResourceActionDestroyBeforeCreate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttrWith(addr, "created_at", func(v string) error {
						if v == createdAt {
							return fmt.Errorf("the federation was not replaced")
						}
						return nil
					}),
					held(0, true),
				),
			},
			{
				// Deleted behind Terraform's back: planned again.
				PreConfig: func() {
					if err := s.API.DeleteFederation(context.Background(), a, b); err != nil {
						t.Fatal(err)
					}
				},
				Config: federationConfig(s, a, b, good),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(addr, plancheck.ResourceActionCreate)},
				},
				Check: held(1, false),
			},
		},
	})
}

func TestAccFederationValidation(t *testing.T) {
	s := testServer(t)
	cases := []struct{ body, want string }{
		{`profile = "https_spiffe"`, `endpoint_spiffe_id is required with profile = "https_spiffe"`},
		{"profile = \"https_spiffe\"\n  endpoint_spiffe_id = \"spiffe://other.example/x\"\n  trust_bundle = \"x\"",
			`endpoint_spiffe_id must be in the foreign trust domain`},
		{`endpoint_spiffe_id = "spiffe://b.example/x"`, `endpoint_spiffe_id is used with profile = "https_spiffe" only`},
		{`profile = "web"`, `value must be one of`},
	}
	for _, c := range cases {
		resource.Test(t, resource.TestCase{
			ProtoV6ProviderFactories: testProviders,
			Steps: []resource.TestStep{{
				Config: s.providerConfig() + fmt.Sprintf(`
resource "sigil_federation" "x" {
  trust_domain         = "a.example"
  foreign_trust_domain = "b.example"
  bundle_endpoint_url  = "https://b.example/bundle"
  %s
}
`, c.body),
				PlanOnly:    true,
				ExpectError: words(c.want),
			}},
		})
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{{
			Config: s.providerConfig() + `
resource "sigil_federation" "x" {
  trust_domain         = "a.example"
  foreign_trust_domain = "b.example"
  bundle_endpoint_url  = "http://b.example/bundle"
}
`,
			PlanOnly:    true,
			ExpectError: words("must be an https:// URL"),
		}},
	})
}
