package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/sigil-dev/terraform-provider-sigil/internal/client"
)

type agentsDataSource struct{ client *client.Client }

func newAgentsDataSource() datasource.DataSource { return &agentsDataSource{} }

type agentModel struct {
	SpiffeID      types.String   `tfsdk:"spiffe_id"`
	Attestor      types.String   `tfsdk:"attestor"`
	Selectors     []types.String `tfsdk:"selectors"`
	SvidExpiresAt types.String   `tfsdk:"svid_expires_at"`
	AttestedAt    types.String   `tfsdk:"attested_at"`
	LastSeenAt    types.String   `tfsdk:"last_seen_at"`
	Banned        types.Bool     `tfsdk:"banned"`
}

type agentsModel struct {
	ID          types.String `tfsdk:"id"`
	TrustDomain types.String `tfsdk:"trust_domain"`
	Agents      []agentModel `tfsdk:"agents"`
}

func (d *agentsDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_agents"
}

func (d *agentsDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	str := func(desc string) schema.StringAttribute {
		return schema.StringAttribute{Computed: true, MarkdownDescription: desc}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "Lists the agents attested in a trust domain (nodes and VMs running `sigil agent run`). " +
			"Needs a viewer grant on the trust domain.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{Computed: true, MarkdownDescription: "The trust domain's name."},
			"trust_domain": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "The trust domain name, e.g. `example.org`.",
				Validators:          []validator.String{trustDomainName()},
			},
			"agents": schema.ListNestedAttribute{
				Computed:            true,
				MarkdownDescription: "The attested agents.",
				NestedObject: schema.NestedAttributeObject{
					Attributes: map[string]schema.Attribute{
						"spiffe_id": str("The agent's SPIFFE ID, `spiffe://TD/sigil/agent/<attestor>/<id>`."),
						"attestor":  str("The node attestor it used: `join_token`, `x509pop`, `aws_iid`, `k8s_psat`, `gcp_iit` or `azure_msi`."),
						"selectors": schema.ListAttribute{
							Computed:            true,
							ElementType:         types.StringType,
							MarkdownDescription: "Its node selectors, e.g. `aws_iid:region:eu-west-1`.",
						},
						"svid_expires_at": str("When the agent's current X509-SVID expires (RFC 3339)."),
						"attested_at":     str("When it attested (RFC 3339)."),
						"last_seen_at":    str("When it last talked to the server (RFC 3339)."),
						"banned":          schema.BoolAttribute{Computed: true, MarkdownDescription: "Whether an admin banned it."},
					},
				},
			},
		},
	}
}

func (d *agentsDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	d.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (d *agentsDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m agentsModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	td := m.TrustDomain.ValueString()
	agents, err := d.client.ListAgents(ctx, td)
	if err != nil {
		addError(&resp.Diagnostics, err, "list the agents of trust domain "+td, bundleHint)
		return
	}
	m.ID = types.StringValue(td)
	m.Agents = make([]agentModel, 0, len(agents))
	for _, a := range agents {
		sel := make([]types.String, 0, len(a.Selectors))
		for _, s := range a.Selectors {
			sel = append(sel, types.StringValue(s))
		}
		m.Agents = append(m.Agents, agentModel{
			SpiffeID:      types.StringValue(a.SpiffeID),
			Attestor:      types.StringValue(a.Attestor),
			Selectors:     sel,
			SvidExpiresAt: types.StringValue(a.SvidExpiresAt),
			AttestedAt:    types.StringValue(a.AttestedAt),
			LastSeenAt:    types.StringValue(a.LastSeenAt),
			Banned:        types.BoolValue(a.Banned),
		})
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
