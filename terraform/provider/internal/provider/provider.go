// Package provider is the Terraform provider for Sigil, on terraform-plugin-framework.
//
// Each managed object of Sigil's API is one file here: resource_<noun>.go (and data_source_<noun>.go),
// with its schema, its mapping to and from the API's JSON (package client) and its import ID. Adding
// one (policy, agents, tunnels, federation, as the API grows them) means a new file, a constructor
// in Resources or DataSources below, and a clientFrom call in its Configure: nothing else changes.
package provider

import (
	"context"
	"os"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/sigil-dev/terraform-provider-sigil/internal/client"
)

var _ provider.Provider = (*sigilProvider)(nil)

type sigilProvider struct {
	version string
}

// New returns the provider factory for providerserver.
func New(version string) func() provider.Provider {
	return func() provider.Provider { return &sigilProvider{version: version} }
}

type providerModel struct {
	Server   types.String `tfsdk:"server"`
	Token    types.String `tfsdk:"token"`
	CABundle types.String `tfsdk:"ca_bundle"`
}

func (p *sigilProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "sigil"
	resp.Version = p.version
}

func (p *sigilProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Manages Sigil, a multi-tenant SPIFFE trust service: " +
			"trust domains, registration entries, join tokens, network policies, federations and tunnels, and " +
			"reads bundles and agents.\n\n" +
			"The provider talks to Sigil's HTTPS API (`/v1`) with an API token. It speaks TLS 1.2 or later and, when " +
			"`ca_bundle` is set, trusts only that CA: point it at the `server-ca.pem` the server writes into its data " +
			"directory. Every attribute can also come from the environment, like the `sigil` CLI's flags.",
		Attributes: map[string]schema.Attribute{
			"server": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "The Sigil server's base URL, `https://HOST:PORT`. Defaults to the environment variable " +
					"`SIGIL_SERVER`, then to `" + client.DefaultServer + "` (a local `npm start`).",
			},
			"token": schema.StringAttribute{
				Optional:  true,
				Sensitive: true,
				MarkdownDescription: "A Sigil API token. Defaults to the environment variable `SIGIL_TOKEN`. The bootstrap admin " +
					"token is in the server's data directory (`.sigil/admin.token`); create a narrower one with " +
					"`sigil api-token create --name terraform --grant TRUST_DOMAIN:admin`. Creating trust domains needs an " +
					"admin grant on `*`.",
			},
			"ca_bundle": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "The CA certificate(s) to trust for the server's HTTPS certificate: PEM text, or the path of " +
					"a PEM file. Defaults to the environment variable `SIGIL_CA_BUNDLE`. Give the server's `server-ca.pem` " +
					"(in its data directory, e.g. `.sigil/server-ca.pem`); when set, no other CA is trusted. When neither is " +
					"set, the system's CAs are used (for a server behind a publicly trusted certificate).",
			},
		},
	}
}

// providerData is what resources and data sources receive from Configure.
type providerData struct {
	client *client.Client
}

func (p *sigilProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var cfg providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	for attr, v := range map[string]types.String{"server": cfg.Server, "token": cfg.Token, "ca_bundle": cfg.CABundle} {
		if v.IsUnknown() {
			resp.Diagnostics.AddAttributeError(path.Root(attr), "Unknown Sigil provider "+attr,
				"The provider's `"+attr+"` depends on a value known only after apply. Give it a value known at plan time "+
					"(a literal, a variable or the environment), or apply the resources it depends on first with -target.")
		}
	}
	if resp.Diagnostics.HasError() {
		return
	}
	server := firstSet(cfg.Server, "SIGIL_SERVER", client.DefaultServer)
	token := firstSet(cfg.Token, "SIGIL_TOKEN", "")
	caBundle := firstSet(cfg.CABundle, "SIGIL_CA_BUNDLE", "")

	if _, err := client.ParseServer(server); err != nil {
		addProviderError(&resp.Diagnostics, err, "use the server address")
	}
	if token == "" {
		resp.Diagnostics.AddAttributeError(path.Root("token"), "No Sigil API token",
			"The provider needs an API token to call the Sigil API. "+fixToken)
	}
	var caPEM []byte
	if caBundle != "" {
		var err error
		if caPEM, err = client.LoadCABundle(caBundle); err != nil {
			addProviderError(&resp.Diagnostics, err, "load the CA bundle")
		}
	}
	if resp.Diagnostics.HasError() {
		return
	}
	c, err := client.New(client.Config{
		Server:      server,
		Token:       token,
		CABundlePEM: caPEM,
		UserAgent:   "terraform-provider-sigil/" + p.version + " (+terraform " + req.TerraformVersion + ")",
	})
	if err != nil {
		addProviderError(&resp.Diagnostics, err, "configure the client")
		return
	}
	// One cheap request checks the address, the CA and the token now, so that a mistake in the provider
	// block is reported on the provider attribute to fix, before any resource is planned.
	me, err := c.WhoAmI(ctx)
	if err != nil {
		addProviderError(&resp.Diagnostics, err, "call the Sigil server at "+c.Server())
		return
	}
	tflog.Debug(ctx, "connected to Sigil", map[string]any{"server": c.Server(), "token_name": me.Name, "grants": len(me.Grants)})
	data := &providerData{client: c}
	resp.ResourceData = data
	resp.DataSourceData = data
}

func firstSet(v types.String, env, fallback string) string {
	if !v.IsNull() && v.ValueString() != "" {
		return v.ValueString()
	}
	if e := os.Getenv(env); e != "" {
		return e
	}
	return fallback
}

func (p *sigilProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{
		newTrustDomainResource,
		newRegistrationEntryResource,
		newJoinTokenResource,
		newPolicyResource,
		newFederationResource,
		newTunnelResource,
	}
}

func (p *sigilProvider) DataSources(context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{
		newTrustDomainDataSource,
		newBundleDataSource,
		newAgentsDataSource,
	}
}

// clientFrom extracts the client from ProviderData in a resource's or data source's Configure.
// ProviderData is nil while Terraform validates a configuration without configuring the provider.
func clientFrom(data any, diags interface{ AddError(string, string) }) *client.Client {
	if data == nil {
		return nil
	}
	pd, ok := data.(*providerData)
	if !ok || pd == nil || pd.client == nil {
		diags.AddError("Unexpected provider data", "The Sigil provider was not configured as expected; this is a bug in the provider, please report it.")
		return nil
	}
	return pd.client
}
