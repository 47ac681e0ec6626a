package provider

import (
	"context"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/setdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/sigil-dev/terraform-provider-sigil/internal/client"
	"github.com/sigil-dev/terraform-provider-sigil/internal/spiffeid"
)

var (
	_ resource.ResourceWithConfigure      = (*registrationEntryResource)(nil)
	_ resource.ResourceWithImportState    = (*registrationEntryResource)(nil)
	_ resource.ResourceWithValidateConfig = (*registrationEntryResource)(nil)

	entryHint = byCodeAndField(
		map[string]string{
			"SELECTOR_INVALID":       "selectors",
			"ENTRY_PARENT_NOT_FOUND": "parent_id",
			"DNS_NAME_INVALID":       "dns_names",
			"TRUST_DOMAIN_NOT_FOUND": "trust_domain",
			"TRUST_DOMAIN_INVALID":   "federates_with",
			"ENTRY_EXISTS":           "spiffe_id",
		},
		[][2]string{
			{"spiffeId", "spiffe_id"}, {"parentId", "parent_id"}, {"selector", "selectors"}, {"x509Ttl", "x509_ttl"},
			{"jwtTtl", "jwt_ttl"}, {"dnsNames", "dns_names"}, {"federatesWith", "federates_with"}, {"expiresAt", "expires_at"},
		},
	)
)

type registrationEntryResource struct{ client *client.Client }

func newRegistrationEntryResource() resource.Resource { return &registrationEntryResource{} }

type entryModel struct {
	ID            types.String   `tfsdk:"id"`
	TrustDomain   types.String   `tfsdk:"trust_domain"`
	SpiffeID      types.String   `tfsdk:"spiffe_id"`
	ParentID      types.String   `tfsdk:"parent_id"`
	Selectors     types.Set      `tfsdk:"selectors"`
	X509TTL       DurationValue  `tfsdk:"x509_ttl"`
	JWTTTL        DurationValue  `tfsdk:"jwt_ttl"`
	DNSNames      types.Set      `tfsdk:"dns_names"`
	Admin         types.Bool     `tfsdk:"admin"`
	Downstream    types.Bool     `tfsdk:"downstream"`
	FederatesWith types.Set      `tfsdk:"federates_with"`
	ExpiresAt     TimestampValue `tfsdk:"expires_at"`
	Revision      types.Int64    `tfsdk:"revision"`
}

func emptyStringSet() types.Set { return types.SetValueMust(types.StringType, []attr.Value{}) }

func (r *registrationEntryResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_registration_entry"
}

func (r *registrationEntryResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	entryTTL := func(kind, setting string) schema.StringAttribute {
		return schema.StringAttribute{
			CustomType: DurationType{},
			Optional:   true,
			Computed:   true,
			MarkdownDescription: "Lifetime of the " + kind + "s issued for this entry, at most the trust domain's `" + setting +
				"_max_ttl`. When not set, the trust domain's `" + setting + "_default_ttl` at creation is used and read back. " + durationDoc,
			PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown(), durationsEquivalent()},
		}
	}
	resp.Schema = schema.Schema{
		MarkdownDescription: "A registration entry: the workloads (or nodes) that match all of its `selectors`, under the " +
			"agent or node entry `parent_id`, get the SPIFFE ID `spiffe_id`. Every attribute except `trust_domain` is " +
			"changed in place.\n\nImport with `TRUST_DOMAIN/ENTRY_ID`: " +
			"`terraform import sigil_registration_entry.web example.org/0b6f3c9e-...`.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "The entry's ID, assigned by the server.",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"trust_domain": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "The trust domain the entry belongs to. Changing it replaces the entry.",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
				Validators:          []validator.String{trustDomainName()},
			},
			"spiffe_id": schema.StringAttribute{
				Required: true,
				MarkdownDescription: "The SPIFFE ID the matching workloads get, in `trust_domain` and with a path, e.g. " +
					"`spiffe://example.org/ns/prod/sa/web`.",
				Validators: []validator.String{spiffeID()},
			},
			"parent_id": schema.StringAttribute{
				Required: true,
				MarkdownDescription: "Who may obtain the SPIFFE ID for its workloads: an agent " +
					"(`spiffe://TRUST_DOMAIN/sigil/agent/ATTESTOR/ID`, which need not have attested yet), the server " +
					"(`spiffe://TRUST_DOMAIN/sigil/server`), or the `spiffe_id` of another entry (a node alias). Anything " +
					"else is refused with `ENTRY_PARENT_NOT_FOUND`.",
				Validators: []validator.String{spiffeID()},
			},
			"selectors": schema.SetAttribute{
				ElementType: types.StringType,
				Required:    true,
				MarkdownDescription: "The selectors a workload must all match, each `TYPE:KEY[:VALUE]`, e.g. `unix:uid:1000`, " +
					"`k8s:ns:prod`, `k8s:pod-label:app:web`, `unix:sha256:HEX`. The shape is checked at plan time; the " +
					"server checks types, keys and values at apply time (`SELECTOR_INVALID`).",
				Validators: []validator.Set{setvalidator.SizeAtLeast(1), setvalidator.SizeAtMost(64), setvalidator.ValueStringsAre(selector())},
			},
			"x509_ttl": entryTTL("X509-SVID", "x509"),
			"jwt_ttl":  entryTTL("JWT-SVID", "jwt"),
			"dns_names": schema.SetAttribute{
				ElementType:         types.StringType,
				Optional:            true,
				Computed:            true,
				Default:             setdefault.StaticValue(emptyStringSet()),
				MarkdownDescription: "DNS names (SANs) for the X509-SVIDs, lowercase, a leading `*.` allowed. Defaults to none.",
				Validators:          []validator.Set{setvalidator.SizeAtMost(64), setvalidator.ValueStringsAre(dnsName())},
			},
			"admin": schema.BoolAttribute{
				Optional:            true,
				Computed:            true,
				Default:             booldefault.StaticBool(false),
				MarkdownDescription: "Whether the workload may call the trust domain's admin APIs with its SVID. Defaults to `false`.",
			},
			"downstream": schema.BoolAttribute{
				Optional:            true,
				Computed:            true,
				Default:             booldefault.StaticBool(false),
				MarkdownDescription: "Whether the workload is a downstream CA. Defaults to `false`.",
			},
			"federates_with": schema.SetAttribute{
				ElementType:         types.StringType,
				Optional:            true,
				Computed:            true,
				Default:             setdefault.StaticValue(emptyStringSet()),
				MarkdownDescription: "Other trust domains whose bundles the workload also receives. Defaults to none.",
				Validators:          []validator.Set{setvalidator.SizeAtMost(64), setvalidator.ValueStringsAre(trustDomainName())},
			},
			"expires_at": schema.StringAttribute{
				CustomType: TimestampType{},
				Optional:   true,
				MarkdownDescription: "RFC 3339 time after which the entry no longer applies, e.g. `2030-01-31T12:00:00Z`; " +
					"it must be in the future when set. Not set: the entry never expires (removing it clears the expiry).",
				PlanModifiers: []planmodifier.String{timestampsEquivalent()},
			},
			"revision": schema.Int64Attribute{
				Computed:            true,
				MarkdownDescription: "The entry's revision; the server increments it on every change.",
			},
		},
	}
}

func (r *registrationEntryResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (r *registrationEntryResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m entryModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	td := ""
	if !m.TrustDomain.IsNull() && !m.TrustDomain.IsUnknown() && spiffeid.ValidateTrustDomain(m.TrustDomain.ValueString()) == nil {
		td = m.TrustDomain.ValueString()
	}
	if s := knownString(m.SpiffeID); s != nil {
		if _, err := spiffeid.ParseWorkload(*s, td); err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("spiffe_id"), "Invalid SPIFFE ID", err.Error())
		}
	}
	if p := knownString(m.ParentID); p != nil {
		if _, err := spiffeid.ParseIn(*p, td); err != nil {
			resp.Diagnostics.AddAttributeError(path.Root("parent_id"), "Invalid parent ID", err.Error())
		} else if s := knownString(m.SpiffeID); s != nil && *s == *p {
			resp.Diagnostics.AddAttributeError(path.Root("parent_id"), "Invalid parent ID", "parent_id must differ from spiffe_id")
		}
	}
	if td != "" && !m.FederatesWith.IsNull() && !m.FederatesWith.IsUnknown() {
		for _, v := range m.FederatesWith.Elements() {
			if s, ok := v.(types.String); ok && s.ValueString() == td {
				resp.Diagnostics.AddAttributeError(path.Root("federates_with"), "Invalid federates_with",
					"federates_with must not name the entry's own trust domain "+td)
			}
		}
	}
}

func stringsOf(ctx context.Context, set types.Set, diags *diag.Diagnostics) []string {
	if set.IsNull() || set.IsUnknown() {
		return nil
	}
	out := []string{}
	diags.Append(set.ElementsAs(ctx, &out, false)...)
	return out
}

func setOf(values []string) types.Set {
	elems := make([]attr.Value, 0, len(values))
	for _, v := range values {
		elems = append(elems, types.StringValue(v))
	}
	return types.SetValueMust(types.StringType, elems)
}

func knownBool(v types.Bool) *bool {
	if v.IsNull() || v.IsUnknown() {
		return nil
	}
	b := v.ValueBool()
	return &b
}

// fill sets every attribute from the API's view: what Read does, so drift always shows.
func (m *entryModel) fill(e *client.Entry) {
	m.ID = types.StringValue(e.ID)
	m.TrustDomain = types.StringValue(e.TrustDomain)
	m.SpiffeID = types.StringValue(e.SpiffeID)
	m.ParentID = types.StringValue(e.ParentID)
	m.Selectors = setOf(e.Selectors)
	m.X509TTL = NewDurationSeconds(e.X509TTL)
	m.JWTTTL = NewDurationSeconds(e.JWTTTL)
	m.DNSNames = setOf(e.DNSNames)
	m.Admin = types.BoolValue(e.Admin)
	m.Downstream = types.BoolValue(e.Downstream)
	m.FederatesWith = setOf(e.FederatesWith)
	m.ExpiresAt = NewTimestampPointer(e.ExpiresAt)
	m.Revision = types.Int64Value(e.Revision)
}

func (r *registrationEntryResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan entryModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	in := client.EntryInput{
		SpiffeID:      knownString(plan.SpiffeID),
		ParentID:      knownString(plan.ParentID),
		Selectors:     stringsOf(ctx, plan.Selectors, &resp.Diagnostics),
		X509TTL:       knownSeconds(plan.X509TTL),
		JWTTTL:        knownSeconds(plan.JWTTTL),
		DNSNames:      stringsOf(ctx, plan.DNSNames, &resp.Diagnostics),
		Admin:         knownBool(plan.Admin),
		Downstream:    knownBool(plan.Downstream),
		FederatesWith: stringsOf(ctx, plan.FederatesWith, &resp.Diagnostics),
		ExpiresAt:     knownString(plan.ExpiresAt.StringValue),
	}
	if resp.Diagnostics.HasError() {
		return
	}
	td := plan.TrustDomain.ValueString()
	e, err := r.client.CreateEntry(ctx, td, in)
	if err != nil {
		addError(&resp.Diagnostics, err, "create a registration entry for "+plan.SpiffeID.ValueString()+" in trust domain "+td, entryHint)
		return
	}
	plan.fill(e)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *registrationEntryResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state entryModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	td, id := state.TrustDomain.ValueString(), state.ID.ValueString()
	e, err := r.client.GetEntry(ctx, td, id)
	if client.HasCode(err, "ENTRY_NOT_FOUND", "TRUST_DOMAIN_NOT_FOUND") {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addError(&resp.Diagnostics, err, "read registration entry "+td+"/"+id, nil)
		return
	}
	state.fill(e)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *registrationEntryResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state entryModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	// A PATCH of what changes only: a field this configuration leaves to the server (an unset TTL)
	// is never written back.
	in := client.EntryInput{
		SpiffeID:   changed(knownString(plan.SpiffeID), knownString(state.SpiffeID)),
		ParentID:   changed(knownString(plan.ParentID), knownString(state.ParentID)),
		X509TTL:    changed(knownSeconds(plan.X509TTL), knownSeconds(state.X509TTL)),
		JWTTTL:     changed(knownSeconds(plan.JWTTTL), knownSeconds(state.JWTTTL)),
		Admin:      changed(knownBool(plan.Admin), knownBool(state.Admin)),
		Downstream: changed(knownBool(plan.Downstream), knownBool(state.Downstream)),
	}
	if !plan.Selectors.Equal(state.Selectors) {
		in.Selectors = stringsOf(ctx, plan.Selectors, &resp.Diagnostics)
	}
	if !plan.DNSNames.Equal(state.DNSNames) {
		in.DNSNames = stringsOf(ctx, plan.DNSNames, &resp.Diagnostics)
	}
	if !plan.FederatesWith.Equal(state.FederatesWith) {
		in.FederatesWith = stringsOf(ctx, plan.FederatesWith, &resp.Diagnostics)
	}
	if !plan.ExpiresAt.Equal(state.ExpiresAt) {
		if plan.ExpiresAt.IsNull() {
			in.ClearExpiresAt = true
		} else {
			in.ExpiresAt = knownString(plan.ExpiresAt.StringValue)
		}
	}
	if resp.Diagnostics.HasError() {
		return
	}
	td, id := state.TrustDomain.ValueString(), state.ID.ValueString()
	e, err := r.client.UpdateEntry(ctx, td, id, in)
	if err != nil {
		addError(&resp.Diagnostics, err, "update registration entry "+td+"/"+id, entryHint)
		return
	}
	plan.fill(e)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *registrationEntryResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state entryModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	td, id := state.TrustDomain.ValueString(), state.ID.ValueString()
	err := r.client.DeleteEntry(ctx, td, id)
	if err != nil && !client.HasCode(err, "ENTRY_NOT_FOUND", "TRUST_DOMAIN_NOT_FOUND") {
		addError(&resp.Diagnostics, err, "delete registration entry "+td+"/"+id, nil)
	}
}

// splitImportID splits TRUST_DOMAIN/ID (a trust domain name never contains "/").
func splitImportID(id, example string, diags *diag.Diagnostics) (string, string, bool) {
	td, rest, ok := strings.Cut(id, "/")
	if !ok || rest == "" || strings.Contains(rest, "/") {
		diags.AddError("Invalid import ID", "Import with TRUST_DOMAIN/ID, e.g. "+example+"; got "+id)
		return "", "", false
	}
	if err := spiffeid.ValidateTrustDomain(td); err != nil {
		diags.AddError("Invalid import ID", "The import ID starts with an invalid trust domain: "+err.Error())
		return "", "", false
	}
	return td, rest, true
}

// updateFromPlan is the Update of a resource whose every argument forces replacement: Terraform only
// calls it when nothing the API knows changes, so the plan becomes the state as it is.
func updateFromPlan[M any](ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan M
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *registrationEntryResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	td, id, ok := splitImportID(req.ID, "`terraform import sigil_registration_entry.web example.org/ENTRY_ID`", &resp.Diagnostics)
	if !ok {
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("trust_domain"), td)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), id)...)
}
