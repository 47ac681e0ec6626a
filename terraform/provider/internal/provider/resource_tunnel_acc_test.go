package provider

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/sigil-dev/terraform-provider-sigil/internal/client"
)

// A trust domain of the test server and one tunnel in it; body holds the tunnel's arguments.
func tunnelConfig(s *sigilServer, td, body string) string {
	return s.providerConfig() + fmt.Sprintf(`
resource "sigil_trust_domain" "t" {
  name = %q
}

resource "sigil_tunnel" "db" {
  trust_domain = sigil_trust_domain.t.name
%s
}
`, td, body)
}

// tunnelError matches a Terraform diagnostic with summary, on the configuration line of attr, whose
// detail says detail.
func tunnelError(summary, attr, detail string) *regexp.Regexp {
	return regexp.MustCompile(`(?s)` + words(summary).String() + `.*` + onAttribute(attr) + `.*` + words(detail).String())
}

func TestAccTunnel(t *testing.T) {
	s := testServer(t)
	const td = "acc-tunnel.example.org"
	const addr = "sigil_tunnel.db"
	agent := "spiffe://" + td + "/sigil/agent/join_token/node-1"
	args := func(name, service, port string) string {
		b := fmt.Sprintf("  name      = %q\n  spiffe_id = \"spiffe://%s/db\"\n  agent     = %q\n", name, td, agent)
		if service != "" {
			b += fmt.Sprintf("  service   = %q\n", service)
		}
		if port != "" {
			b += "  port      = " + port + "\n"
		}
		return b
	}
	// tunnelIs checks the server's tunnel, and that it is the only one.
	tunnelIs := func(name, service string, port int64) resource.TestCheckFunc {
		return checkAPI(func(ctx context.Context) error {
			list, err := s.API.ListTunnels(ctx, td)
			if err != nil {
				return err
			}
			if len(list) != 1 {
				return fmt.Errorf("the trust domain has %d tunnels, want 1: %+v", len(list), list)
			}
			got := list[0]
			gotPort := int64(0)
			if got.Port != nil {
				gotPort = *got.Port
			}
			if got.Name != name || got.Service != service || gotPort != port || got.SpiffeID != "spiffe://"+td+"/db" || got.Agent != agent {
				return fmt.Errorf("the server has %+v (port %d), want name %s, service %s, port %d", got, gotPort, name, service, port)
			}
			return nil
		})
	}
	var createdAt string
	replaced := resource.TestCheckResourceAttrWith(addr, "created_at", func(v string) error {
		if v == createdAt {
			return fmt.Errorf("the tunnel was not replaced (created_at %s)", v)
		}
		createdAt = v
		return nil
	})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		CheckDestroy: func(st *terraform.State) error {
			for _, rs := range st.RootModule().Resources {
				if rs.Type != "sigil_tunnel" {
					continue
				}
				_, err := s.API.GetTunnel(context.Background(), td, rs.Primary.Attributes["name"])
				if !client.HasCode(err, "TUNNEL_NOT_FOUND", "TRUST_DOMAIN_NOT_FOUND") {
					return fmt.Errorf("tunnel %s still exists after destroy (err %v)", rs.Primary.ID, err)
				}
			}
			return checkTrustDomainsDestroyed(s)(st)
		},
		Steps: []resource.TestStep{
			{
				// Create: service defaults to the name.
				Config: tunnelConfig(s, td, args("db", "", "5432")),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(addr, plancheck.ResourceActionCreate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(addr, "id", td+"/db"),
					resource.TestCheckResourceAttr(addr, "name", "db"),
					resource.TestCheckResourceAttr(addr, "service", "db"),
					resource.TestCheckResourceAttr(addr, "port", "5432"),
					resource.TestCheckResourceAttr(addr, "agent", agent),
					resource.TestMatchResourceAttr(addr, "created_at", regexp.MustCompile(`^\d{4}-\d\d-\d\dT`)),
					resource.TestCheckResourceAttrWith(addr, "created_at", func(v string) error { createdAt = v; return nil }),
					tunnelIs("db", "db", 5432),
				),
			},
			{
				ResourceName:      addr,
				ImportState:       true,
				ImportStateId:     td + "/db",
				ImportStateVerify: true,
			},
			{
				// Another port and an explicit service: a new tunnel.
				Config: tunnelConfig(s, td, args("db", "postgres", "5433")),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(addr, plancheck.ResourceActionDestroyBeforeCreate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(addr, "service", "postgres"),
					resource.TestCheckResourceAttr(addr, "port", "5433"),
					replaced,
					tunnelIs("db", "postgres", 5433),
				),
			},
			{
				// Another name, and service and port removed: a new tunnel, whose service is the new name.
				Config: tunnelConfig(s, td, args("cache", "", "")),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(addr, plancheck.ResourceActionDestroyBeforeCreate),
						plancheck.ExpectKnownValue(addr, tfjsonpath.New("service"), knownvalue.StringExact("cache")),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(addr, "id", td+"/cache"),
					resource.TestCheckResourceAttr(addr, "service", "cache"),
					resource.TestCheckNoResourceAttr(addr, "port"),
					replaced,
					tunnelIs("cache", "cache", 0),
				),
			},
			{
				// Deleted behind Terraform's back: the plan creates it again, and apply does.
				PreConfig: func() {
					if err := s.API.DeleteTunnel(context.Background(), td, "cache"); err != nil {
						t.Fatal(err)
					}
				},
				Config: tunnelConfig(s, td, args("cache", "", "")),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(addr, plancheck.ResourceActionCreate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(replaced, tunnelIs("cache", "cache", 0)),
			},
			{
				// Recreated outside Terraform with a port: Read sees it, and the plan replaces it.
				PreConfig: func() {
					ctx := context.Background()
					port := int64(6379)
					if err := s.API.DeleteTunnel(ctx, td, "cache"); err != nil {
						t.Fatal(err)
					}
					if _, err := s.API.CreateTunnel(ctx, td, client.TunnelInput{Name: "cache", SpiffeID: "spiffe://" + td + "/db", Agent: agent, Port: &port}); err != nil {
						t.Fatal(err)
					}
				},
				Config: tunnelConfig(s, td, args("cache", "", "")),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction(addr, plancheck.ResourceActionDestroyBeforeCreate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: resource.ComposeAggregateTestCheckFunc(resource.TestCheckNoResourceAttr(addr, "port"), tunnelIs("cache", "cache", 0)),
			},
			{
				// trust_domain is a reference: checked at plan time all the same, on the attribute.
				Config:      tunnelConfig(s, td, strings.Replace(args("cache", "", ""), "spiffe://"+td+"/db", "spiffe://other.example.org/db", 1)),
				PlanOnly:    true,
				ExpectError: tunnelError("SPIFFE ID of another trust domain", "spiffe_id", "must be in the tunnel's trust domain "+td),
			},
			{
				// A tunnel created outside Terraform is refused on name, with the import command.
				PreConfig: func() {
					if _, err := s.API.CreateTunnel(context.Background(), td, client.TunnelInput{Name: "taken", SpiffeID: "spiffe://" + td + "/db", Agent: agent}); err != nil {
						t.Fatal(err)
					}
				},
				Config: tunnelConfig(s, td, args("cache", "", "")) + fmt.Sprintf(`
resource "sigil_tunnel" "taken" {
  trust_domain = sigil_trust_domain.t.name
  name         = "taken"
  spiffe_id    = "spiffe://%s/db"
  agent        = %q
}
`, td, agent),
				ExpectError: tunnelError("The tunnel already exists", "name", "terraform import ADDRESS "+td+"/taken"),
			},
			{
				// The failed create left nothing behind in the state: the plan is empty.
				PreConfig: func() {
					if err := s.API.DeleteTunnel(context.Background(), td, "taken"); err != nil {
						t.Fatal(err)
					}
				},
				Config:   tunnelConfig(s, td, args("cache", "", "")),
				PlanOnly: true,
			},
		},
	})
}

func TestAccTunnelValidation(t *testing.T) {
	s := testServer(t)
	const ok = "  name = \"db\"\n  spiffe_id = \"spiffe://a.example/db\"\n  agent = \"spiffe://a.example/sigil/agent/join_token/n1\"\n"
	with := func(attr, value string) string {
		lines := strings.Split(strings.TrimSuffix(ok, "\n"), "\n")
		found := false
		for i, l := range lines {
			if strings.HasPrefix(strings.TrimSpace(l), attr+" =") {
				lines[i], found = "  "+attr+" = "+value, true
			}
		}
		if !found {
			lines = append(lines, "  "+attr+" = "+value)
		}
		return strings.Join(lines, "\n")
	}
	cases := []struct {
		body string
		want *regexp.Regexp
	}{
		{with("name", `"db_main"`), tunnelError("Invalid tunnel name", "name", `use "db-main"`)},
		{with("name", `"-db"`), tunnelError("Invalid tunnel name", "name", "a tunnel name is a DNS label")},
		{with("agent", `"spiffe://a.example/db"`), tunnelError("Not an agent SPIFFE ID", "agent", "agents are spiffe://a.example/sigil/agent/ATTESTOR/ID")},
		{with("agent", `"spiffe://b.example/sigil/agent/join_token/n1"`), tunnelError("SPIFFE ID of another trust domain", "agent", "must be in the tunnel's trust domain a.example")},
		{with("spiffe_id", `"spiffe://b.example/db"`), tunnelError("SPIFFE ID of another trust domain", "spiffe_id", "must be in the tunnel's trust domain a.example")},
		{with("spiffe_id", `"spiffe://a.example"`), tunnelError("Invalid SPIFFE ID", "spiffe_id", "has no path")},
		{with("port", "70000"), tunnelError("Invalid Attribute Value", "port", "value must be between 1 and 65535, got: 70000")},
		{with("port", "0"), tunnelError("Invalid Attribute Value", "port", "value must be between 1 and 65535, got: 0")},
		{with("service", `"Postgres"`), tunnelError("Invalid tunnel service", "service", `use "postgres"`)},
	}
	steps := make([]resource.TestStep, 0, len(cases))
	for _, c := range cases {
		steps = append(steps, resource.TestStep{
			Config: s.providerConfig() + fmt.Sprintf(`
resource "sigil_tunnel" "x" {
  trust_domain = "a.example"
%s
}
`, c.body),
			PlanOnly:    true,
			ExpectError: c.want,
		})
	}
	resource.Test(t, resource.TestCase{ProtoV6ProviderFactories: testProviders, Steps: steps})
}
