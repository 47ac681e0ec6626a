package provider

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/sigil-dev/terraform-provider-sigil/internal/client"
	"github.com/sigil-dev/terraform-provider-sigil/internal/spiffeid"
)

var (
	_ resource.ResourceWithConfigure      = (*tunnelResource)(nil)
	_ resource.ResourceWithImportState    = (*tunnelResource)(nil)
	_ resource.ResourceWithValidateConfig = (*tunnelResource)(nil)

	// The server's messages start with the field they refuse: "agent \"...\" is not an agent SPIFFE ID",
	// "spiffeId: ...", "port 70000 is out of range", "service \"...\" is not a valid name".
	tunnelHint = byCodeAndField(
		map[string]string{"TRUST_DOMAIN_NOT_FOUND": "trust_domain", "TUNNEL_EXISTS": "name"},
		[][2]string{
			{"spiffeId", "spiffe_id"},
			{"agent", "agent"},
			{"service", "service"},
			{"port", "port"},
			{"name", "name"},
		},
	)
)

// tunnelNamePattern is the server's rule for tunnel and service names (services/broker/tunnels.ts).
var tunnelNamePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$`)

// agentPathPrefix is where agents' SPIFFE IDs live: spiffe://TD/sigil/agent/ATTESTOR/ID.
const agentPathPrefix = "/sigil/agent/"

type tunnelResource struct{ client *client.Client }

func newTunnelResource() resource.Resource { return &tunnelResource{} }

type tunnelModel struct {
	ID          types.String `tfsdk:"id"`
	TrustDomain types.String `tfsdk:"trust_domain"`
	Name        types.String `tfsdk:"name"`
	SpiffeID    types.String `tfsdk:"spiffe_id"`
	Agent       types.String `tfsdk:"agent"`
	Service     types.String `tfsdk:"service"`
	Port        types.Int64  `tfsdk:"port"`
	CreatedAt   types.String `tfsdk:"created_at"`
}

func (r *tunnelResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_tunnel"
}

func (r *tunnelResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	keep := []planmodifier.String{stringplanmodifier.UseStateForUnknown()}
	resp.Schema = schema.Schema{
		MarkdownDescription: "A tunnel: a service behind one agent, reachable by name through Sigil's tunnel broker from " +
			"agents in networks that cannot reach it directly (another cloud, a data center behind NAT). Agents use it with " +
			"`tunnel: NAME` on an upstream of their proxy configuration; the serving agent offers it as one of its " +
			"`services`. The two agents run mutual TLS with the workloads' SVIDs inside the relayed stream, so the broker " +
			"never sees the traffic, and the trust domain's policy (`sigil_policy`) decides who may use the tunnel, like " +
			"any other flow.\n\n" +
			"A tunnel cannot be changed in place: **every argument forces a new tunnel** (Terraform deletes it and " +
			"creates it again; connections open through it end at the broker).\n\n" +
			"Everything is checked at plan time: the name, that `spiffe_id` and `agent` belong to `trust_domain`, that " +
			"`agent` is an agent's SPIFFE ID, and the port.\n\n" +
			"Import with `TRUST_DOMAIN/NAME`: `terraform import sigil_tunnel.db example.org/db`.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "`TRUST_DOMAIN/NAME`.",
				PlanModifiers:       keep,
			},
			"trust_domain": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "The trust domain of the tunnel, of its service and of its agent. Changing it replaces the tunnel.",
				PlanModifiers:       replace,
				Validators:          []validator.String{trustDomainName()},
			},
			"name": schema.StringAttribute{
				Required: true,
				MarkdownDescription: "The tunnel's name, unique in the trust domain, which callers' agents use as `tunnel: NAME`: " +
					"a DNS label, 1 to 63 lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit, " +
					"e.g. `db`. Changing it replaces the tunnel.",
				PlanModifiers: replace,
				Validators:    []validator.String{tunnelName("name")},
			},
			"spiffe_id": schema.StringAttribute{
				Required: true,
				MarkdownDescription: "The service's SPIFFE ID, in `trust_domain` and with a path, e.g. `spiffe://example.org/db`: " +
					"the serving side must prove it inside the relayed stream. Changing it replaces the tunnel.",
				PlanModifiers: replace,
				Validators:    []validator.String{workloadSpiffeID()},
			},
			"agent": schema.StringAttribute{
				Required: true,
				MarkdownDescription: "The SPIFFE ID of the agent that offers the service, " +
					"`spiffe://TRUST_DOMAIN/sigil/agent/ATTESTOR/ID` (see the `sigil_agents` data source, or " +
					"`sigil agent list`); it need not have attested yet. Changing it replaces the tunnel.",
				PlanModifiers: replace,
				Validators:    []validator.String{agentSpiffeID()},
			},
			"service": schema.StringAttribute{
				Optional: true,
				Computed: true,
				MarkdownDescription: "The service's name in the serving agent's proxy configuration (its `services[].name`), " +
					"a DNS label like `name`. Defaults to `name`. Changing it replaces the tunnel.",
				PlanModifiers: []planmodifier.String{serviceDefaultsToName{}, stringplanmodifier.RequiresReplace()},
				Validators:    []validator.String{tunnelName("service")},
			},
			"port": schema.Int64Attribute{
				Optional: true,
				MarkdownDescription: "The service's TCP port, 1 to 65535. Optional; when set, the broker also applies the " +
					"policy's allow rules that name ports. Changing it (or removing it) replaces the tunnel.",
				PlanModifiers: []planmodifier.Int64{int64planmodifier.RequiresReplace()},
				Validators:    []validator.Int64{int64validator.Between(1, 65535)},
			},
			"created_at": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "When the tunnel was created (RFC 3339).",
				PlanModifiers:       keep,
			},
		},
	}
}

// --- plan-time checks ---

// checkTunnelName checks a tunnel or service name the way the server does, and says how to fix it.
func checkTunnelName(s string) error {
	if tunnelNamePattern.MatchString(s) {
		return nil
	}
	const rule = "a tunnel name is a DNS label: 1 to 63 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, e.g. \"db\""
	switch {
	case s == "":
		return fmt.Errorf("the name is empty; %s", rule)
	case len(s) > 63:
		return fmt.Errorf("%q is %d characters long; %s", s, len(s), rule)
	case strings.ToLower(s) != s && tunnelNamePattern.MatchString(strings.ToLower(s)):
		return fmt.Errorf("%q has uppercase letters; use %q (%s)", s, strings.ToLower(s), rule)
	case strings.ContainsAny(s, "_ ") && tunnelNamePattern.MatchString(strings.NewReplacer("_", "-", " ", "-").Replace(s)):
		return fmt.Errorf("%q contains '_' or spaces; use %q (%s)", s, strings.NewReplacer("_", "-", " ", "-").Replace(s), rule)
	default:
		return fmt.Errorf("%q is not a valid name; %s", s, rule)
	}
}

func tunnelName(attr string) validator.String {
	return stringCheck{
		summary:     "Invalid tunnel " + attr,
		description: "a DNS label: 1 to 63 lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit",
		check:       checkTunnelName,
	}
}

// checkWorkloadID checks a SPIFFE ID with a path (the server refuses the trust domain's own ID).
func checkWorkloadID(s string) error {
	_, err := spiffeid.ParseWorkload(s, "")
	return err
}

func workloadSpiffeID() validator.String {
	return stringCheck{
		summary:     "Invalid SPIFFE ID",
		description: "a SPIFFE ID with a path, `spiffe://TRUST_DOMAIN/path`",
		check:       checkWorkloadID,
	}
}

// checkAgentID checks that s is an agent's SPIFFE ID, spiffe://TD/sigil/agent/ATTESTOR/ID.
func checkAgentID(s string) error {
	id, err := spiffeid.Parse(s)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(id.Path, agentPathPrefix) {
		return fmt.Errorf("%q is not an agent SPIFFE ID: agents are spiffe://%s%sATTESTOR/ID, e.g. spiffe://%s%sjoin_token/node-1 "+
			"(the sigil_agents data source and `sigil agent list` list them). Give the agent that offers the service, not the service's own ID",
			s, id.TrustDomain, agentPathPrefix, id.TrustDomain, agentPathPrefix)
	}
	return nil
}

func agentSpiffeID() validator.String {
	return stringCheck{
		summary:     "Not an agent SPIFFE ID",
		description: "an agent's SPIFFE ID, `spiffe://TRUST_DOMAIN/sigil/agent/ATTESTOR/ID`",
		check:       checkAgentID,
	}
}

// checkTunnelMembership reports spiffe_id and agent outside trust_domain. Values that are unknown, or
// whose syntax is wrong (the attribute validators report that), are skipped.
func checkTunnelMembership(m *tunnelModel) diag.Diagnostics {
	var diags diag.Diagnostics
	td := knownString(m.TrustDomain)
	if td == nil || spiffeid.ValidateTrustDomain(*td) != nil {
		return diags
	}
	for _, c := range []struct {
		attr, what, form string
		value            types.String
	}{
		{"spiffe_id", "The service's SPIFFE ID", "/...", m.SpiffeID},
		{"agent", "The agent", agentPathPrefix + "...", m.Agent},
	} {
		v := knownString(c.value)
		if v == nil {
			continue
		}
		parsed, err := spiffeid.Parse(*v)
		if err != nil || parsed.TrustDomain == *td {
			continue
		}
		diags.AddAttributeError(path.Root(c.attr), "SPIFFE ID of another trust domain",
			fmt.Sprintf("%s %q belongs to trust domain %q, but it must be in the tunnel's trust domain %s: a tunnel connects a "+
				"service and an agent of its own trust domain. Change %s to an ID of the form spiffe://%s%s, or change trust_domain.",
				c.what, *v, parsed.TrustDomain, *td, c.attr, *td, c.form))
	}
	return diags
}

// serviceDefaultsToName plans `service` as `name` when the configuration leaves it out, also after it
// was set (removing it goes back to the default, a replacement), so that the plan shows the value the
// server will store.
type serviceDefaultsToName struct{}

var _ planmodifier.String = serviceDefaultsToName{}

func (serviceDefaultsToName) Description(context.Context) string {
	return "defaults to the value of name"
}

func (m serviceDefaultsToName) MarkdownDescription(ctx context.Context) string {
	return "defaults to the value of `name`"
}

func (serviceDefaultsToName) PlanModifyString(ctx context.Context, req planmodifier.StringRequest, resp *planmodifier.StringResponse) {
	if !req.ConfigValue.IsNull() || req.Plan.Raw.IsNull() {
		return
	}
	var name types.String
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("name"), &name)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if name.IsNull() || name.IsUnknown() {
		resp.PlanValue = types.StringUnknown()
		return
	}
	resp.PlanValue = name
}

func (r *tunnelResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

// ValidateConfig checks that spiffe_id and agent belong to trust_domain. Terraform validates again
// during plan with references resolved, so `trust_domain = sigil_trust_domain.x.name` is checked too.
func (r *tunnelResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m tunnelModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(checkTunnelMembership(&m)...)
}

// --- the API's JSON and the Terraform model ---

func (m *tunnelModel) fill(t *client.Tunnel) {
	m.ID = types.StringValue(t.TrustDomain + "/" + t.Name)
	m.TrustDomain = types.StringValue(t.TrustDomain)
	m.Name = types.StringValue(t.Name)
	m.SpiffeID = types.StringValue(t.SpiffeID)
	m.Agent = types.StringValue(t.Agent)
	m.Service = types.StringValue(t.Service)
	m.Port = types.Int64PointerValue(t.Port)
	m.CreatedAt = types.StringValue(t.CreatedAt)
}

func knownInt64(v types.Int64) *int64 {
	if v.IsNull() || v.IsUnknown() {
		return nil
	}
	n := v.ValueInt64()
	return &n
}

// addTunnelError reports a failed request on the attribute it concerns, with what to do.
func addTunnelError(diags *diag.Diagnostics, err error, action, td, name string) {
	if client.HasCode(err, "TUNNEL_EXISTS") {
		var apiErr *client.APIError
		message := err.Error()
		if errors.As(err, &apiErr) {
			message = apiErr.Message
		}
		diags.AddAttributeError(path.Root("name"), "The tunnel already exists",
			fmt.Sprintf("Could not %s: %s.\n\nA tunnel of that name was created outside this configuration. Import it "+
				"(`terraform import ADDRESS %s/%s`), delete it (`sigil tunnel delete --trust-domain %s %s`), or choose another name.",
				action, strings.TrimSuffix(message, "."), td, name, td, name))
		return
	}
	addError(diags, err, action, tunnelHint)
}

// --- CRUD ---

func (r *tunnelResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan tunnelModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	td, name := plan.TrustDomain.ValueString(), plan.Name.ValueString()
	t, err := r.client.CreateTunnel(ctx, td, client.TunnelInput{
		Name:     name,
		SpiffeID: plan.SpiffeID.ValueString(),
		Agent:    plan.Agent.ValueString(),
		Service:  knownString(plan.Service),
		Port:     knownInt64(plan.Port),
	})
	if err != nil {
		addTunnelError(&resp.Diagnostics, err, "create tunnel "+name+" in trust domain "+td, td, name)
		return
	}
	plan.fill(t)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *tunnelResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state tunnelModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	td, name := state.TrustDomain.ValueString(), state.Name.ValueString()
	t, err := r.client.GetTunnel(ctx, td, name)
	if client.HasCode(err, "TUNNEL_NOT_FOUND", "TRUST_DOMAIN_NOT_FOUND") {
		// Deleted outside Terraform: the next plan creates it again.
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addError(&resp.Diagnostics, err, "read tunnel "+td+"/"+name, nil)
		return
	}
	state.fill(t)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *tunnelResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	updateFromPlan[tunnelModel](ctx, req, resp)
}

func (r *tunnelResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state tunnelModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	td, name := state.TrustDomain.ValueString(), state.Name.ValueString()
	err := r.client.DeleteTunnel(ctx, td, name)
	if err != nil && !client.HasCode(err, "TUNNEL_NOT_FOUND", "TRUST_DOMAIN_NOT_FOUND") {
		addError(&resp.Diagnostics, err, "delete tunnel "+td+"/"+name, nil)
	}
}

func (r *tunnelResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	td, name, ok := splitImportID(req.ID, "`terraform import sigil_tunnel.db example.org/db`", &resp.Diagnostics)
	if !ok {
		return
	}
	if err := checkTunnelName(name); err != nil {
		resp.Diagnostics.AddError("Invalid import ID", "The tunnel name is invalid: "+err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("trust_domain"), td)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("name"), name)...)
}
