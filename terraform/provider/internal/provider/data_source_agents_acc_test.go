package provider

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"

	"github.com/sigil-dev/terraform-provider-sigil/internal/client"
)

// attestAgent attests an agent through the real agent API with a join token that fixes its ID.
func attestAgent(t *testing.T, s *sigilServer, td, spiffeID string) {
	t.Helper()
	ctx := context.Background()
	tok, err := s.API.CreateJoinToken(ctx, td, client.JoinTokenInput{SpiffeID: &spiffeID})
	if err != nil {
		t.Fatalf("join token: %v", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	body := map[string]any{
		"trustDomain": td,
		"attestor":    "join_token",
		"evidence":    map[string]string{"token": tok.Token},
		"csr":         base64.StdEncoding.EncodeToString(csr),
	}
	var out map[string]any
	if err := s.API.Do(ctx, "POST", "/v1/agent/attest", body, &out); err != nil {
		t.Fatalf("attest: %v", err)
	}
}

func TestAccAgentsDataSource(t *testing.T) {
	s := testServer(t)
	const td = "acc-agents.example.org"
	const agentID = "spiffe://acc-agents.example.org/sigil/agent/join_token/node-1"
	tdOnly := s.providerConfig() + fmt.Sprintf(`
resource "sigil_trust_domain" "td" {
  name = %q
}
`, td)
	withData := tdOnly + `
data "sigil_agents" "all" {
  trust_domain = sigil_trust_domain.td.name
}
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		CheckDestroy:             checkTrustDomainsDestroyed(s),
		Steps: []resource.TestStep{
			{Config: tdOnly},
			{
				PreConfig: func() { attestAgent(t, s, td, agentID) },
				Config:    withData,
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("data.sigil_agents.all", "agents.#", "1"),
					resource.TestCheckResourceAttr("data.sigil_agents.all", "agents.0.spiffe_id", agentID),
					resource.TestCheckResourceAttr("data.sigil_agents.all", "agents.0.attestor", "join_token"),
					resource.TestCheckResourceAttr("data.sigil_agents.all", "agents.0.banned", "false"),
					resource.TestCheckResourceAttrSet("data.sigil_agents.all", "agents.0.svid_expires_at"),
				),
			},
		},
	})
}
