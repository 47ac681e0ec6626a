package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/sigil-dev/terraform-provider-sigil/internal/client"
	"github.com/sigil-dev/terraform-provider-sigil/internal/spiffeid"
)

var (
	_                 resource.ResourceWithConfigure      = (*trustDomainResource)(nil)
	_                 resource.ResourceWithImportState    = (*trustDomainResource)(nil)
	_                 resource.ResourceWithValidateConfig = (*trustDomainResource)(nil)
	keyTypes                                              = []string{"ec-p256", "ec-p384", "rsa-2048", "rsa-3072"}
	policyModes                                           = []string{"baseline", "explicit"}
	trustDomainFields                                     = [][2]string{{"keyType", "key_type"}, {"caTtl", "ca_ttl"}, {"x509DefaultTtl", "x509_default_ttl"}, {"x509MaxTtl", "x509_max_ttl"}, {"jwtDefaultTtl", "jwt_default_ttl"}, {"jwtMaxTtl", "jwt_max_ttl"}, {"policyMode", "policy_mode"}}
	trustDomainHint                                       = byCodeAndField(map[string]string{"TRUST_DOMAIN_INVALID": "name", "TRUST_DOMAIN_EXISTS": "name"}, trustDomainFields)
)

type trustDomainResource struct{ client *client.Client }

func newTrustDomainResource() resource.Resource { return &trustDomainResource{} }

type trustDomainModel struct {
	ID             types.String  `tfsdk:"id"`
	Name           types.String  `tfsdk:"name"`
	KeyType        types.String  `tfsdk:"key_type"`
	CATTL          DurationValue `tfsdk:"ca_ttl"`
	X509DefaultTTL DurationValue `tfsdk:"x509_default_ttl"`
	X509MaxTTL     DurationValue `tfsdk:"x509_max_ttl"`
	JWTDefaultTTL  DurationValue `tfsdk:"jwt_default_ttl"`
	JWTMaxTTL      DurationValue `tfsdk:"jwt_max_ttl"`
	PolicyMode     types.String  `tfsdk:"policy_mode"`
	CreatedAt      types.String  `tfsdk:"created_at"`
}

const durationDoc = "A duration such as `\"90s\"`, `\"5m\"`, `\"1h30m\"` or `\"7d\"` (units `d`, `h`, `m`, `s`, largest first), " +
	"or a number of seconds such as `\"3600\"`. The API stores whole seconds; writing the same duration another way " +
	"(`\"60m\"` for `\"1h\"`) is not a change."

func settingDuration(what string) schema.StringAttribute {
	return schema.StringAttribute{
		CustomType:          DurationType{},
		Optional:            true,
		Computed:            true,
		MarkdownDescription: what + " Changed in place. When not set, the server's default applies and is read back. " + durationDoc,
		PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown(), durationsEquivalent()},
	}
}

func (r *trustDomainResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_trust_domain"
}

func (r *trustDomainResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "A SPIFFE trust domain: one tenant of Sigil, with its own root CA, registration entries, " +
			"join tokens, bundle and audit log. Creating it creates its root CA; destroying it deletes the trust domain " +
			"**with everything in it**.\n\nCreating a trust domain needs an installation admin token (an admin grant on `*`). " +
			"Import with the trust domain's name: `terraform import sigil_trust_domain.example example.org`.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "The trust domain's name.",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"name": schema.StringAttribute{
				Required: true,
				MarkdownDescription: "The trust domain name, e.g. `example.org`: lowercase letters, digits, `.`, `-` and `_`, " +
					"at most 255 bytes, no scheme, port or path (SPIFFE-ID standard). Changing it replaces the trust domain.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
				Validators:    []validator.String{trustDomainName()},
			},
			"key_type": schema.StringAttribute{
				Optional: true,
				Computed: true,
				MarkdownDescription: "The key type of the root CA: `ec-p256`, `ec-p384`, `rsa-2048` or `rsa-3072`. " +
					"Defaults to the server's default (`ec-p256`). Changing it replaces the trust domain (its root CA already exists).",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown(), stringplanmodifier.RequiresReplace()},
				Validators:    []validator.String{stringvalidator.OneOf(keyTypes...)},
			},
			"ca_ttl":           settingDuration("Lifetime of the trust domain's root CA certificate; must be at least twice `x509_max_ttl`. A change applies to root CAs created from then on."),
			"x509_default_ttl": settingDuration("Lifetime of X509-SVIDs when the request or the entry does not say; at most `x509_max_ttl`."),
			"x509_max_ttl":     settingDuration("Longest lifetime of an X509-SVID in this trust domain."),
			"jwt_default_ttl":  settingDuration("Lifetime of JWT-SVIDs when the request or the entry does not say; at most `jwt_max_ttl`."),
			"jwt_max_ttl":      settingDuration("Longest lifetime of a JWT-SVID in this trust domain."),
			"policy_mode": schema.StringAttribute{
				Optional: true,
				Computed: true,
				MarkdownDescription: "How agents enforce network policy: `baseline` (observe, let unidentified traffic through " +
					"and report it) or `explicit` (only what a rule allows). Changed in place. Defaults to `baseline`. " +
					"The mode belongs to the trust domain's network policy, and changing it writes a new policy version: " +
					"when a `sigil_policy` manages the policy, leave this unset and set the policy's `mode` instead.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
				Validators:    []validator.String{stringvalidator.OneOf(policyModes...)},
			},
			"created_at": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "When the trust domain was created (RFC 3339).",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
		},
	}
}

func (r *trustDomainResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

// knownSeconds is the value in seconds when it is known and valid, else nil.
func knownSeconds(v DurationValue) *int64 {
	if v.IsNull() || v.IsUnknown() {
		return nil
	}
	s, err := v.Seconds()
	if err != nil {
		return nil
	}
	return &s
}

// changed is want when it differs from have, else nil (nothing to send).
func changed[T comparable](want, have *T) *T {
	if want == nil || (have != nil && *want == *have) {
		return nil
	}
	return want
}

func knownString(v types.String) *string {
	if v.IsNull() || v.IsUnknown() {
		return nil
	}
	s := v.ValueString()
	return &s
}

func (r *trustDomainResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m trustDomainModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	checks := []struct {
		smaller, larger DurationValue
		attr, rule      string
		factor          int64
	}{
		{m.X509DefaultTTL, m.X509MaxTTL, "x509_default_ttl", "must not exceed x509_max_ttl", 1},
		{m.JWTDefaultTTL, m.JWTMaxTTL, "jwt_default_ttl", "must not exceed jwt_max_ttl", 1},
		{m.X509MaxTTL, m.CATTL, "ca_ttl", "must be at least twice x509_max_ttl, so that X509-SVIDs outlive a CA rotation", 2},
	}
	for _, c := range checks {
		a, b := knownSeconds(c.smaller), knownSeconds(c.larger)
		if a != nil && b != nil && *a*c.factor > *b {
			resp.Diagnostics.AddAttributeError(path.Root(c.attr), "Inconsistent trust domain settings",
				fmt.Sprintf("%s %s (x509_default_ttl/x509_max_ttl/jwt_default_ttl/jwt_max_ttl/ca_ttl are %s/%s/%s/%s/%s).", c.attr, c.rule,
					m.X509DefaultTTL.ValueString(), m.X509MaxTTL.ValueString(), m.JWTDefaultTTL.ValueString(), m.JWTMaxTTL.ValueString(), m.CATTL.ValueString()))
		}
	}
}

func settingsFrom(m *trustDomainModel) client.SettingsInput {
	return client.SettingsInput{
		KeyType:        knownString(m.KeyType),
		CATTL:          knownSeconds(m.CATTL),
		X509DefaultTTL: knownSeconds(m.X509DefaultTTL),
		X509MaxTTL:     knownSeconds(m.X509MaxTTL),
		JWTDefaultTTL:  knownSeconds(m.JWTDefaultTTL),
		JWTMaxTTL:      knownSeconds(m.JWTMaxTTL),
		PolicyMode:     knownString(m.PolicyMode),
	}
}

// fill sets every attribute from the API's view: what Read does, so drift always shows.
func (m *trustDomainModel) fill(td *client.TrustDomain) {
	m.ID = types.StringValue(td.Name)
	m.Name = types.StringValue(td.Name)
	m.KeyType = types.StringValue(td.Settings.KeyType)
	m.CATTL = NewDurationSeconds(td.Settings.CATTL)
	m.X509DefaultTTL = NewDurationSeconds(td.Settings.X509DefaultTTL)
	m.X509MaxTTL = NewDurationSeconds(td.Settings.X509MaxTTL)
	m.JWTDefaultTTL = NewDurationSeconds(td.Settings.JWTDefaultTTL)
	m.JWTMaxTTL = NewDurationSeconds(td.Settings.JWTMaxTTL)
	m.PolicyMode = types.StringValue(td.Settings.PolicyMode)
	m.CreatedAt = types.StringValue(td.CreatedAt)
}

func (r *trustDomainResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan trustDomainModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	name := plan.Name.ValueString()
	td, err := r.client.CreateTrustDomain(ctx, name, settingsFrom(&plan))
	if err != nil {
		addError(&resp.Diagnostics, err, "create trust domain "+name, trustDomainHint)
		return
	}
	plan.fill(td)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *trustDomainResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state trustDomainModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	name := state.Name.ValueString()
	td, err := r.client.GetTrustDomain(ctx, name)
	if client.HasCode(err, "TRUST_DOMAIN_NOT_FOUND") {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addError(&resp.Diagnostics, err, "read trust domain "+name, nil)
		return
	}
	state.fill(td)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *trustDomainResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state trustDomainModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	name := plan.Name.ValueString()
	// Send only what changes, so a setting this configuration does not manage is never written back.
	want, have := settingsFrom(&plan), settingsFrom(&state)
	settings := client.SettingsInput{
		CATTL:          changed(want.CATTL, have.CATTL),
		X509DefaultTTL: changed(want.X509DefaultTTL, have.X509DefaultTTL),
		X509MaxTTL:     changed(want.X509MaxTTL, have.X509MaxTTL),
		JWTDefaultTTL:  changed(want.JWTDefaultTTL, have.JWTDefaultTTL),
		JWTMaxTTL:      changed(want.JWTMaxTTL, have.JWTMaxTTL),
		PolicyMode:     changed(want.PolicyMode, have.PolicyMode),
	}
	td, err := r.client.UpdateTrustDomain(ctx, name, settings)
	if err != nil {
		addError(&resp.Diagnostics, err, "update trust domain "+name, trustDomainHint)
		return
	}
	plan.fill(td)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *trustDomainResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state trustDomainModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	name := state.Name.ValueString()
	err := r.client.DeleteTrustDomain(ctx, name)
	if err != nil && !client.HasCode(err, "TRUST_DOMAIN_NOT_FOUND") {
		addError(&resp.Diagnostics, err, "delete trust domain "+name, nil)
	}
}

func (r *trustDomainResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if err := spiffeid.ValidateTrustDomain(req.ID); err != nil {
		resp.Diagnostics.AddError("Invalid import ID", "Import a trust domain by its name, e.g. `terraform import sigil_trust_domain.example example.org`: "+err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("name"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
}
