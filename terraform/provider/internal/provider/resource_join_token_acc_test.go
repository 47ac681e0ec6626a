package provider

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
)

func joinTokenConfig(s *sigilServer, td, ttl string) string {
	return s.providerConfig() + fmt.Sprintf(`
resource "sigil_trust_domain" "td" {
  name = %[1]q
}

resource "sigil_join_token" "node" {
  trust_domain = sigil_trust_domain.td.name
  ttl          = %[2]q
  spiffe_id    = "spiffe://%[1]s/sigil/agent/join_token/node-1"
}

resource "sigil_join_token" "defaults" {
  trust_domain = sigil_trust_domain.td.name
}
`, td, ttl)
}

func TestAccJoinToken(t *testing.T) {
	s := testServer(t)
	const td = "acc-token.example.org"
	const addr = "sigil_join_token.node"
	var id, token string
	listed := func(want bool) resource.TestCheckFunc {
		return checkAPI(func(ctx context.Context) error {
			found, err := s.API.FindJoinToken(ctx, td, id)
			if err == nil && (found != nil) != want {
				err = fmt.Errorf("join token %s listed: %v, want %v", id, found != nil, want)
			}
			return err
		})
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		CheckDestroy: func(st *terraform.State) error {
			// Destroy revokes the token (and here deletes its trust domain).
			return checkTrustDomainsDestroyed(s)(st)
		},
		Steps: []resource.TestStep{
			{
				Config: joinTokenConfig(s, td, "2h"),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(addr, plancheck.ResourceActionCreate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestMatchResourceAttr(addr, "token", regexp.MustCompile(`^sjt_[A-Za-z0-9_-]{20,}$`)),
					resource.TestMatchResourceAttr(addr, "id", regexp.MustCompile(`^[0-9a-f]{64}$`)),
					resource.TestCheckResourceAttr(addr, "ttl", "2h"),
					resource.TestCheckResourceAttr(addr, "unused", "true"),
					resource.TestCheckResourceAttrSet(addr, "expires_at"),
					resource.TestCheckResourceAttrWith(addr, "id", func(v string) error { id = v; return nil }),
					resource.TestCheckResourceAttrWith(addr, "token", func(v string) error { token = v; return nil }),
					listed(true),
					resource.TestCheckResourceAttr("sigil_join_token.defaults", "ttl", "1h"),
					resource.TestCheckNoResourceAttr("sigil_join_token.defaults", "spiffe_id"),
					resource.TestCheckResourceAttrWith("sigil_join_token.defaults", "expires_at", func(v string) error {
						exp, err := time.Parse(time.RFC3339, v)
						if err == nil && (time.Until(exp) < 50*time.Minute || time.Until(exp) > 61*time.Minute) {
							err = fmt.Errorf("expires_at %s is not an hour from now", v)
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
				// The secret is returned once, at creation: an import cannot know it.
				ImportStateVerifyIgnore: []string{"token"},
			},
			{
				// Once the token is used (here: revoked, which looks the same through the API), it stays
				// in the state: no new token is planned.
				PreConfig: func() {
					if err := s.API.RevokeJoinToken(context.Background(), td, id); err != nil {
						t.Fatal(err)
					}
				},
				Config: joinTokenConfig(s, td, "2h"),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(addr, "unused", "false"),
					resource.TestCheckResourceAttrPtr(addr, "id", &id),
					resource.TestCheckResourceAttrPtr(addr, "token", &token),
					listed(false),
				),
			},
			{
				// A new ttl is a new token.
				Config: joinTokenConfig(s, td, "3h"),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(addr, plancheck.ResourceActionDestroyBeforeCreate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(addr, "unused", "true"),
					resource.TestCheckResourceAttrWith(addr, "token", func(v string) error {
						if v == token {
							return fmt.Errorf("the token was not replaced")
						}
						return nil
					}),
					resource.TestCheckResourceAttrWith(addr, "id", func(v string) error { id = v; return nil }),
					listed(true),
				),
			},
			{
				// Destroying the token alone revokes it.
				Config: s.providerConfig() + fmt.Sprintf("resource \"sigil_trust_domain\" \"td\" {\n  name = %q\n}\n", td),
				Check:  listed(false),
			},
		},
	})
}
