package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/sigil-dev/terraform-provider-sigil/internal/client"
)

var (
	_          datasource.DataSourceWithConfigure = (*trustDomainDataSource)(nil)
	_          datasource.DataSourceWithConfigure = (*bundleDataSource)(nil)
	readHint                                      = byCodeAndField(map[string]string{"TRUST_DOMAIN_NOT_FOUND": "name"}, nil)
	bundleHint                                    = byCodeAndField(map[string]string{"TRUST_DOMAIN_NOT_FOUND": "trust_domain"}, nil)
)

type trustDomainDataSource struct{ client *client.Client }

func newTrustDomainDataSource() datasource.DataSource { return &trustDomainDataSource{} }

func (d *trustDomainDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_trust_domain"
}

func (d *trustDomainDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	computed := func(doc string) schema.StringAttribute {
		return schema.StringAttribute{Computed: true, MarkdownDescription: doc}
	}
	duration := func(doc string) schema.StringAttribute {
		return schema.StringAttribute{Computed: true, CustomType: DurationType{}, MarkdownDescription: doc + " In canonical form (`\"1h30m\"`, `\"1d\"`)."}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Reads a trust domain and its settings by name. Needs a viewer grant on it.",
		Attributes: map[string]schema.Attribute{
			"id": computed("The trust domain's name."),
			"name": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "The trust domain name, e.g. `example.org`.",
				Validators:          []validator.String{trustDomainName()},
			},
			"key_type":         computed("The key type of the root CA."),
			"ca_ttl":           duration("Lifetime of the root CA certificate."),
			"x509_default_ttl": duration("Default X509-SVID lifetime."),
			"x509_max_ttl":     duration("Longest X509-SVID lifetime."),
			"jwt_default_ttl":  duration("Default JWT-SVID lifetime."),
			"jwt_max_ttl":      duration("Longest JWT-SVID lifetime."),
			"policy_mode":      computed("`baseline` or `explicit`."),
			"created_at":       computed("When the trust domain was created (RFC 3339)."),
		},
	}
}

func (d *trustDomainDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (d *trustDomainDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m trustDomainModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	name := m.Name.ValueString()
	td, err := d.client.GetTrustDomain(ctx, name)
	if err != nil {
		addError(&resp.Diagnostics, err, "read trust domain "+name, readHint)
		return
	}
	m.fill(td)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

type bundleDataSource struct{ client *client.Client }

func newBundleDataSource() datasource.DataSource { return &bundleDataSource{} }

type bundleModel struct {
	ID          types.String `tfsdk:"id"`
	TrustDomain types.String `tfsdk:"trust_domain"`
	PEM         types.String `tfsdk:"pem"`
	SPIFFE      types.String `tfsdk:"spiffe"`
	Sequence    types.Int64  `tfsdk:"sequence"`
}

func (d *bundleDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_bundle"
}

func (d *bundleDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Reads a trust domain's bundle: the root CA certificates workloads and other trust domains " +
			"use to verify its X509-SVIDs, and the keys that verify its JWT-SVIDs. Needs a viewer grant on the trust domain.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{Computed: true, MarkdownDescription: "The trust domain's name."},
			"trust_domain": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "The trust domain name, e.g. `example.org`.",
				Validators:          []validator.String{trustDomainName()},
			},
			"pem": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "The X.509 roots, concatenated PEM certificates (for `ssl_ca`, `--trust-bundle` and the like).",
			},
			"spiffe": schema.StringAttribute{
				Computed: true,
				MarkdownDescription: "The SPIFFE bundle as a JSON string: a JWK Set with `x509-svid` and `jwt-svid` keys, " +
					"`spiffe_sequence` and `spiffe_refresh_hint`. Decode it with `jsondecode()`.",
			},
			"sequence": schema.Int64Attribute{
				Computed:            true,
				MarkdownDescription: "The bundle's `spiffe_sequence`: it grows whenever the bundle changes.",
			},
		},
	}
}

func (d *bundleDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (d *bundleDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m bundleModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	td := m.TrustDomain.ValueString()
	b, err := d.client.GetBundle(ctx, td)
	if err != nil {
		addError(&resp.Diagnostics, err, "read the bundle of trust domain "+td, bundleHint)
		return
	}
	m.ID = types.StringValue(td)
	m.PEM = types.StringValue(b.PEM)
	m.SPIFFE = types.StringValue(string(b.SPIFFE))
	m.Sequence = types.Int64Value(b.Sequence)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
