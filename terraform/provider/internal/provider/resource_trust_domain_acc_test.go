package provider

import (
	"context"
	"fmt"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/sigil-dev/terraform-provider-sigil/internal/client"
)

func trustDomainConfig(s *sigilServer, name, body string) string {
	return s.providerConfig() + fmt.Sprintf(`
resource "sigil_trust_domain" "test" {
  name = %q
%s
}
`, name, body)
}

// checkTrustDomainsDestroyed is a CheckDestroy: every trust domain in the state is gone from the API.
func checkTrustDomainsDestroyed(s *sigilServer) resource.TestCheckFunc {
	return func(st *terraform.State) error {
		for _, rs := range st.RootModule().Resources {
			if rs.Type != "sigil_trust_domain" {
				continue
			}
			_, err := s.API.GetTrustDomain(context.Background(), rs.Primary.Attributes["name"])
			if !client.HasCode(err, "TRUST_DOMAIN_NOT_FOUND") {
				return fmt.Errorf("trust domain %s still exists after destroy (err %v)", rs.Primary.Attributes["name"], err)
			}
		}
		return nil
	}
}

// checkAPI runs f against the server, as a step check.
func checkAPI(f func(ctx context.Context) error) resource.TestCheckFunc {
	return func(*terraform.State) error { return f(context.Background()) }
}

func TestAccTrustDomain(t *testing.T) {
	s := testServer(t)
	const name = "acc-td.example.org"
	const addr = "sigil_trust_domain.test"
	var createdAt string
	settings := func(x509Default, policyMode, jwtMax string) string {
		return fmt.Sprintf("  x509_default_ttl = %q\n  x509_max_ttl = \"1d\"\n  policy_mode = %q\n  jwt_max_ttl = %q\n", x509Default, policyMode, jwtMax)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		CheckDestroy:             checkTrustDomainsDestroyed(s),
		Steps: []resource.TestStep{
			{
				// Create. Unset settings take the server's defaults and are read back.
				Config: trustDomainConfig(s, name, settings("60m", "baseline", "1h")),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(addr, plancheck.ResourceActionCreate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(addr, "id", name),
					resource.TestCheckResourceAttr(addr, "name", name),
					resource.TestCheckResourceAttr(addr, "key_type", "ec-p256"),
					resource.TestCheckResourceAttr(addr, "x509_default_ttl", "60m"),
					resource.TestCheckResourceAttr(addr, "x509_max_ttl", "1d"),
					resource.TestCheckResourceAttr(addr, "jwt_default_ttl", "5m"),
					resource.TestCheckResourceAttr(addr, "jwt_max_ttl", "1h"),
					resource.TestCheckResourceAttr(addr, "ca_ttl", "365d"),
					resource.TestCheckResourceAttr(addr, "policy_mode", "baseline"),
					resource.TestCheckResourceAttrWith(addr, "created_at", func(v string) error {
						createdAt = v
						if v == "" {
							return fmt.Errorf("created_at is empty")
						}
						return nil
					}),
					checkAPI(func(ctx context.Context) error {
						td, err := s.API.GetTrustDomain(ctx, name)
						if err != nil {
							return err
						}
						if td.Settings.X509DefaultTTL != 3600 || td.Settings.X509MaxTTL != 86400 {
							return fmt.Errorf("the server has %+v", td.Settings)
						}
						return nil
					}),
				),
			},
			{
				// The same duration written another way is not a change.
				Config: trustDomainConfig(s, name, settings("1h", "baseline", "3600")),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.TestCheckResourceAttr(addr, "x509_default_ttl", "60m"),
			},
			{
				// Update in place (PATCH).
				Config: trustDomainConfig(s, name, settings("1h", "explicit", "2h")),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(addr, "policy_mode", "explicit"),
					resource.TestCheckResourceAttr(addr, "jwt_max_ttl", "2h"),
					resource.TestCheckResourceAttrWith(addr, "created_at", func(v string) error {
						if v != createdAt {
							return fmt.Errorf("created_at changed from %s to %s: the trust domain was replaced, not updated", createdAt, v)
						}
						return nil
					}),
					checkAPI(func(ctx context.Context) error {
						td, err := s.API.GetTrustDomain(ctx, name)
						if err != nil {
							return err
						}
						if td.Settings.PolicyMode != "explicit" || td.Settings.JWTMaxTTL != 7200 {
							return fmt.Errorf("the server has %+v", td.Settings)
						}
						return nil
					}),
				),
			},
			{
				// Drift: a change made outside Terraform shows in the plan...
				PreConfig: func() {
					mode := "baseline"
					if _, err := s.API.UpdateTrustDomain(context.Background(), name, client.SettingsInput{PolicyMode: &mode}); err != nil {
						t.Fatal(err)
					}
				},
				Config:             trustDomainConfig(s, name, settings("1h", "explicit", "2h")),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				// ...and apply converges.
				Config: trustDomainConfig(s, name, settings("1h", "explicit", "2h")),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: checkAPI(func(ctx context.Context) error {
					td, err := s.API.GetTrustDomain(ctx, name)
					if err == nil && td.Settings.PolicyMode != "explicit" {
						err = fmt.Errorf("policy mode is %s after apply", td.Settings.PolicyMode)
					}
					return err
				}),
			},
			{
				ResourceName:      addr,
				ImportState:       true,
				ImportStateId:     name,
				ImportStateVerify: true,
				// The state keeps "60m" as configured first; the server says 3600s, imported as "1h".
				ImportStateVerifyIgnore: []string{"x509_default_ttl"},
			},
			{
				// The root CA's key type cannot change: a new key type replaces the trust domain.
				Config: trustDomainConfig(s, name, settings("1h", "explicit", "2h")+"  key_type = \"ec-p384\"\n"),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(addr, plancheck.ResourceActionDestroyBeforeCreate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.TestCheckResourceAttr(addr, "key_type", "ec-p384"),
			},
			{
				// Deleted outside Terraform: Read drops it from the state and the plan re-creates it.
				PreConfig: func() {
					if err := s.API.DeleteTrustDomain(context.Background(), name); err != nil {
						t.Fatal(err)
					}
				},
				Config:             trustDomainConfig(s, name, settings("1h", "explicit", "2h")+"  key_type = \"ec-p384\"\n"),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
		},
	})
}

func TestAccTrustDomainImportMissing(t *testing.T) {
	s := testServer(t)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{{
			Config:        trustDomainConfig(s, "never-created.example.org", ""),
			ResourceName:  "sigil_trust_domain.test",
			ImportState:   true,
			ImportStateId: "never-created.example.org",
			ExpectError:   words("Cannot import non-existent remote object"),
		}},
	})
}
