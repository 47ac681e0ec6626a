package provider

import (
	"context"
	"testing"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
)

// The schemas are valid for the framework (no conflicting flags, defaults on computed attributes...)
// and every attribute is documented.
func TestSchemas(t *testing.T) {
	server, err := testProviders["sigil"]()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := server.GetProviderSchema(context.Background(), &tfprotov6.GetProviderSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range resp.Diagnostics {
		t.Errorf("%s: %s", d.Summary, d.Detail)
	}
	check := func(kind, name string, s *tfprotov6.Schema) {
		if s.Block.Description == "" {
			t.Errorf("%s %s has no description", kind, name)
		}
		for _, a := range s.Block.Attributes {
			if a.Description == "" {
				t.Errorf("%s %s: attribute %s has no description", kind, name, a.Name)
			}
		}
	}
	check("provider", "sigil", resp.Provider)
	for name, s := range resp.ResourceSchemas {
		check("resource", name, s)
	}
	for name, s := range resp.DataSourceSchemas {
		check("data source", name, s)
	}
	for _, want := range []string{"sigil_trust_domain", "sigil_registration_entry", "sigil_join_token", "sigil_policy"} {
		if resp.ResourceSchemas[want] == nil {
			t.Errorf("resource %s is missing", want)
		}
	}
	for _, want := range []string{"sigil_trust_domain", "sigil_bundle"} {
		if resp.DataSourceSchemas[want] == nil {
			t.Errorf("data source %s is missing", want)
		}
	}
}
