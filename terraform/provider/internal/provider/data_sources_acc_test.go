package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
)

func TestAccDataSources(t *testing.T) {
	s := testServer(t)
	const td = "acc-data.example.org"
	config := s.providerConfig() + fmt.Sprintf(`
resource "sigil_trust_domain" "td" {
  name         = %q
  x509_max_ttl = "1d"
}

data "sigil_trust_domain" "td" {
  name = sigil_trust_domain.td.name
}

data "sigil_bundle" "td" {
  trust_domain = sigil_trust_domain.td.name
}

output "x509_roots" {
  value = tostring(length([for k in jsondecode(data.sigil_bundle.td.spiffe).keys : k if k.use == "x509-svid"]))
}
`, td)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		CheckDestroy:             checkTrustDomainsDestroyed(s),
		Steps: []resource.TestStep{{
			Config: config,
			Check: resource.ComposeAggregateTestCheckFunc(
				resource.TestCheckResourceAttr("data.sigil_trust_domain.td", "name", td),
				resource.TestCheckResourceAttr("data.sigil_trust_domain.td", "x509_max_ttl", "1d"),
				resource.TestCheckResourceAttrPair("data.sigil_trust_domain.td", "created_at", "sigil_trust_domain.td", "created_at"),
				resource.TestCheckResourceAttrPair("data.sigil_trust_domain.td", "key_type", "sigil_trust_domain.td", "key_type"),
				resource.TestCheckResourceAttrWith("data.sigil_bundle.td", "pem", func(v string) error {
					b, err := s.API.GetBundle(context.Background(), td)
					if err != nil {
						return err
					}
					if !strings.HasPrefix(v, "-----BEGIN CERTIFICATE-----") || v != b.PEM {
						return fmt.Errorf("pem %q is not the server's bundle", v)
					}
					return nil
				}),
				resource.TestCheckResourceAttrWith("data.sigil_bundle.td", "spiffe", func(v string) error {
					var jwks struct {
						Keys []struct {
							Use string `json:"use"`
						} `json:"keys"`
						Sequence int64 `json:"spiffe_sequence"`
					}
					if err := json.Unmarshal([]byte(v), &jwks); err != nil || len(jwks.Keys) == 0 || jwks.Keys[0].Use != "x509-svid" {
						return fmt.Errorf("spiffe is not a SPIFFE bundle: %v %s", err, v)
					}
					return nil
				}),
				resource.TestCheckResourceAttrWith("data.sigil_bundle.td", "sequence", func(v string) error {
					n, err := strconv.ParseInt(v, 10, 64)
					if err != nil || n < 1 {
						return fmt.Errorf("sequence %q", v)
					}
					return nil
				}),
				resource.TestCheckOutput("x509_roots", "1"),
			),
		}},
	})
}
