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

// entryConfig is a trust domain, a node entry under an agent, and a workload entry under the node.
func entryConfig(s *sigilServer, td, web string) string {
	return s.providerConfig() + fmt.Sprintf(`
resource "sigil_trust_domain" "td" {
  name = %[1]q
}

resource "sigil_registration_entry" "node" {
  trust_domain = sigil_trust_domain.td.name
  spiffe_id    = "spiffe://%[1]s/node/n1"
  parent_id    = "spiffe://%[1]s/sigil/agent/join_token/n1"
  selectors    = ["join_token:token:n1"]
}

resource "sigil_registration_entry" "web" {
  trust_domain = sigil_trust_domain.td.name
  spiffe_id    = "spiffe://%[1]s/web"
  parent_id    = sigil_registration_entry.node.spiffe_id
%[2]s
}
`, td, web)
}

func checkEntriesDestroyed(s *sigilServer) resource.TestCheckFunc {
	return func(st *terraform.State) error {
		for _, rs := range st.RootModule().Resources {
			if rs.Type != "sigil_registration_entry" {
				continue
			}
			td, id := rs.Primary.Attributes["trust_domain"], rs.Primary.ID
			_, err := s.API.GetEntry(context.Background(), td, id)
			if !client.HasCode(err, "ENTRY_NOT_FOUND", "TRUST_DOMAIN_NOT_FOUND") {
				return fmt.Errorf("entry %s/%s still exists after destroy (err %v)", td, id, err)
			}
		}
		return checkTrustDomainsDestroyed(s)(st)
	}
}

func TestAccRegistrationEntry(t *testing.T) {
	s := testServer(t)
	const td = "acc-entry.example.org"
	const addr = "sigil_registration_entry.web"
	var id string
	first := `
  selectors    = ["unix:uid:1000", "k8s:ns:prod"]
  x509_ttl     = "30m"
  dns_names    = ["web.example.org"]
  expires_at   = "2035-01-01T00:00:00Z"
`
	second := `
  selectors    = ["unix:uid:1000", "k8s:ns:prod", "k8s:sa:web"]
  x509_ttl     = "30m"
  jwt_ttl      = "10m"
  admin        = true
  federates_with = ["partner.example.com"]
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		CheckDestroy:             checkEntriesDestroyed(s),
		Steps: []resource.TestStep{
			{
				Config: entryConfig(s, td, first),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttrWith(addr, "id", func(v string) error {
						id = v
						if v == "" {
							return fmt.Errorf("no id")
						}
						return nil
					}),
					resource.TestCheckResourceAttr(addr, "trust_domain", td),
					resource.TestCheckResourceAttr(addr, "spiffe_id", "spiffe://"+td+"/web"),
					resource.TestCheckResourceAttr(addr, "parent_id", "spiffe://"+td+"/node/n1"),
					resource.TestCheckResourceAttr(addr, "selectors.#", "2"),
					resource.TestCheckTypeSetElemAttr(addr, "selectors.*", "k8s:ns:prod"),
					resource.TestCheckResourceAttr(addr, "x509_ttl", "30m"),
					resource.TestCheckResourceAttr(addr, "jwt_ttl", "5m"), // the trust domain's default
					resource.TestCheckResourceAttr(addr, "dns_names.#", "1"),
					resource.TestCheckResourceAttr(addr, "admin", "false"),
					resource.TestCheckResourceAttr(addr, "downstream", "false"),
					resource.TestCheckResourceAttr(addr, "federates_with.#", "0"),
					resource.TestCheckResourceAttr(addr, "expires_at", "2035-01-01T00:00:00Z"),
					resource.TestCheckResourceAttr(addr, "revision", "1"),
				),
			},
			{
				// Update in place: same ID, a new revision.
				Config: entryConfig(s, td, second),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttrPtr(addr, "id", &id),
					resource.TestCheckResourceAttr(addr, "selectors.#", "3"),
					resource.TestCheckResourceAttr(addr, "jwt_ttl", "10m"),
					resource.TestCheckResourceAttr(addr, "admin", "true"),
					resource.TestCheckResourceAttr(addr, "dns_names.#", "0"),
					resource.TestCheckResourceAttr(addr, "federates_with.#", "1"),
					resource.TestCheckNoResourceAttr(addr, "expires_at"),
					resource.TestCheckResourceAttr(addr, "revision", "2"),
					checkAPI(func(ctx context.Context) error {
						e, err := s.API.GetEntry(ctx, td, id)
						if err != nil {
							return err
						}
						if e.JWTTTL != 600 || !e.Admin || e.ExpiresAt != nil || len(e.Selectors) != 3 || len(e.DNSNames) != 0 {
							return fmt.Errorf("the server has %+v", e)
						}
						return nil
					}),
				),
			},
			{
				// Drift made with the CLI shows in the plan...
				PreConfig: func() {
					s.cli(t, "entry", "update", id, "--trust-domain", td, "--jwt-ttl", "20m", "--dns", "drift.example.org")
				},
				Config:             entryConfig(s, td, second),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				// ...and apply converges.
				Config: entryConfig(s, td, second),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(addr, "jwt_ttl", "10m"),
					resource.TestCheckResourceAttr(addr, "dns_names.#", "0"),
					checkAPI(func(ctx context.Context) error {
						e, err := s.API.GetEntry(ctx, td, id)
						if err == nil && (e.JWTTTL != 600 || len(e.DNSNames) != 0) {
							err = fmt.Errorf("not converged: %+v", e)
						}
						return err
					}),
				),
			},
			{
				ResourceName:      addr,
				ImportState:       true,
				ImportStateIdFunc: func(*terraform.State) (string, error) { return td + "/" + id, nil },
				ImportStateVerify: true,
			},
			{
				// Deleted outside Terraform: Read drops it and the plan re-creates it...
				PreConfig: func() {
					if err := s.API.DeleteEntry(context.Background(), td, id); err != nil {
						t.Fatal(err)
					}
				},
				Config:             entryConfig(s, td, second),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				// ...which apply does.
				Config: entryConfig(s, td, second),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(addr, plancheck.ResourceActionCreate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
		},
	})
}

func TestAccRegistrationEntryImportBadID(t *testing.T) {
	s := testServer(t)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		Steps: []resource.TestStep{{
			Config:        entryConfig(s, "acc-import.example.org", `  selectors = ["unix:uid:1"]`),
			ResourceName:  "sigil_registration_entry.web",
			ImportState:   true,
			ImportStateId: "just-an-id",
			ExpectError:   words("Import with TRUST_DOMAIN/ID"),
		}},
	})
}
