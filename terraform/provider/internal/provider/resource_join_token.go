package provider

import (
	"context"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/boolplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/sigil-dev/terraform-provider-sigil/internal/client"
	"github.com/sigil-dev/terraform-provider-sigil/internal/spiffeid"
)

var (
	_ resource.ResourceWithConfigure      = (*joinTokenResource)(nil)
	_ resource.ResourceWithImportState    = (*joinTokenResource)(nil)
	_ resource.ResourceWithValidateConfig = (*joinTokenResource)(nil)

	joinTokenHint = byCodeAndField(
		map[string]string{"TRUST_DOMAIN_NOT_FOUND": "trust_domain", "TTL_INVALID": "ttl", "TTL_TOO_LONG": "ttl"},
		[][2]string{{"spiffeId", "spiffe_id"}, {"ttl", "ttl"}},
	)
)

// joinTokenMaxTTL is the server's limit (services/registry/join-tokens.ts).
const joinTokenMaxTTL = 30 * 24 * 3600

type joinTokenResource struct{ client *client.Client }

func newJoinTokenResource() resource.Resource { return &joinTokenResource{} }

type joinTokenModel struct {
	ID          types.String  `tfsdk:"id"`
	TrustDomain types.String  `tfsdk:"trust_domain"`
	TTL         DurationValue `tfsdk:"ttl"`
	SpiffeID    types.String  `tfsdk:"spiffe_id"`
	Token       types.String  `tfsdk:"token"`
	ExpiresAt   types.String  `tfsdk:"expires_at"`
	CreatedAt   types.String  `tfsdk:"created_at"`
	Unused      types.Bool    `tfsdk:"unused"`
}

func (r *joinTokenResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_join_token"
}

func (r *joinTokenResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	keep := []planmodifier.String{stringplanmodifier.UseStateForUnknown()}
	resp.Schema = schema.Schema{
		MarkdownDescription: "A single-use join token, with which one agent attests to the trust domain " +
			"(`sigil agent run --join-token ...`). The secret `token` is returned only when the token is created; the " +
			"server keeps only its hash. Every argument forces a new token.\n\n" +
			"**After use or expiry.** Once an agent has used the token, or it has expired or was revoked, the API no " +
			"longer lists it, and none of these can be told apart. The resource then **stays in the state** with " +
			"`unused = false` instead of disappearing: a token that did its job is not a drift, and removing it would make " +
			"every later `terraform apply` mint a new token nobody asked for. To issue a fresh token, run " +
			"`terraform apply -replace=sigil_join_token.NAME` or change an argument. (When the trust domain itself is gone, " +
			"the token does leave the state.)\n\n" +
			"Destroying the resource revokes the token if it is still unused.\n\n" +
			"Import with `TRUST_DOMAIN/TOKEN_ID` (the `id`, the token's SHA-256, as `sigil token list` shows it); only an " +
			"unused token can be imported, and its secret stays unknown (`token` is null).",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "The token's ID: the SHA-256 of the secret, in hex.",
				PlanModifiers:       keep,
			},
			"trust_domain": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "The trust domain the token lets an agent join.",
				PlanModifiers:       replace,
				Validators:          []validator.String{trustDomainName()},
			},
			"ttl": schema.StringAttribute{
				CustomType: DurationType{},
				Optional:   true,
				Computed:   true,
				Default:    stringdefault.StaticString("1h"),
				MarkdownDescription: "How long the token stays usable, at most `30d`. Defaults to `1h`. Counting starts at " +
					"creation: a token meant for a machine that boots later needs a longer `ttl`. " + durationDoc,
				PlanModifiers: []planmodifier.String{durationsEquivalent(), stringplanmodifier.RequiresReplace()},
			},
			"spiffe_id": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "The SPIFFE ID the agent gets when it attests with this token, in `trust_domain`, e.g. " +
					"`spiffe://example.org/sigil/agent/join_token/node-1`. When not set, the server derives one from the token.",
				PlanModifiers: replace,
				Validators:    []validator.String{spiffeID()},
			},
			"token": schema.StringAttribute{
				Computed:            true,
				Sensitive:           true,
				MarkdownDescription: "The secret to pass to `sigil agent run --join-token`. Known only to the Terraform run that created it (and its state); null after import.",
				PlanModifiers:       keep,
			},
			"expires_at": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "When the token stops being usable (RFC 3339).",
				PlanModifiers:       keep,
			},
			"created_at": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "When the token was created (RFC 3339).",
				PlanModifiers:       keep,
			},
			"unused": schema.BoolAttribute{
				Computed: true,
				MarkdownDescription: "Whether the API still lists the token as unused as of the last refresh. `false` once an " +
					"agent has used it, or it expired or was revoked.",
				PlanModifiers: []planmodifier.Bool{boolplanmodifier.UseStateForUnknown()},
			},
		},
	}
}

func (r *joinTokenResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (r *joinTokenResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m joinTokenModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if ttl := knownSeconds(m.TTL); ttl != nil && *ttl > joinTokenMaxTTL {
		resp.Diagnostics.AddAttributeError(path.Root("ttl"), "Join token ttl too long",
			"ttl "+m.TTL.ValueString()+" exceeds the join token maximum of 30d")
	}
	td := ""
	if t := knownString(m.TrustDomain); t != nil && spiffeid.ValidateTrustDomain(*t) == nil {
		td = *t
	}
	if s := knownString(m.SpiffeID); s != nil {
		if _, err := spiffeid.ParseWorkload(*s, td); err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("spiffe_id"), "Invalid SPIFFE ID", err.Error())
		}
	}
}

func (m *joinTokenModel) fill(t *client.JoinToken) {
	m.ID = types.StringValue(t.ID)
	if t.SpiffeID != nil {
		m.SpiffeID = types.StringValue(*t.SpiffeID)
	} else {
		m.SpiffeID = types.StringNull()
	}
	m.ExpiresAt = types.StringValue(t.ExpiresAt)
	m.CreatedAt = types.StringValue(t.CreatedAt)
	m.Unused = types.BoolValue(true)
	if m.TTL.IsNull() || m.TTL.IsUnknown() {
		// After an import: the lifetime it was created with.
		created, errC := time.Parse(time.RFC3339Nano, t.CreatedAt)
		expires, errE := time.Parse(time.RFC3339Nano, t.ExpiresAt)
		if errC == nil && errE == nil {
			m.TTL = NewDurationSeconds(int64(expires.Sub(created).Round(time.Second) / time.Second))
		}
	}
}

func (r *joinTokenResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan joinTokenModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	td := plan.TrustDomain.ValueString()
	t, err := r.client.CreateJoinToken(ctx, td, client.JoinTokenInput{TTL: knownSeconds(plan.TTL), SpiffeID: knownString(plan.SpiffeID)})
	if err != nil {
		addError(&resp.Diagnostics, err, "create a join token in trust domain "+td, joinTokenHint)
		return
	}
	plan.fill(t)
	plan.Token = types.StringValue(t.Token)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *joinTokenResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state joinTokenModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	td, id := state.TrustDomain.ValueString(), state.ID.ValueString()
	t, err := r.client.FindJoinToken(ctx, td, id)
	if client.HasCode(err, "TRUST_DOMAIN_NOT_FOUND") {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addError(&resp.Diagnostics, err, "read the join tokens of trust domain "+td, nil)
		return
	}
	if t == nil {
		if state.ExpiresAt.IsNull() {
			// An import of a token that is not (or no longer) unused: nothing to import.
			resp.State.RemoveResource(ctx)
			return
		}
		// Used, expired or revoked: the token did its job or can no longer do it. Keep it (see the
		// resource description) rather than mint a new one on every apply.
		state.Unused = types.BoolValue(false)
	} else {
		state.fill(t)
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *joinTokenResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	updateFromPlan[joinTokenModel](ctx, req, resp)
}

func (r *joinTokenResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state joinTokenModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	td, id := state.TrustDomain.ValueString(), state.ID.ValueString()
	err := r.client.RevokeJoinToken(ctx, td, id)
	if err != nil && !client.HasCode(err, "JOIN_TOKEN_NOT_FOUND", "TRUST_DOMAIN_NOT_FOUND") {
		addError(&resp.Diagnostics, err, "revoke join token "+td+"/"+id, nil)
	}
}

func (r *joinTokenResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	td, id, ok := splitImportID(req.ID, "`terraform import sigil_join_token.node1 example.org/TOKEN_ID`", &resp.Diagnostics)
	if !ok {
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("trust_domain"), td)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), id)...)
}
