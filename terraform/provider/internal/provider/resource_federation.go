package provider

import (
	"context"
	"regexp"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/sigil-dev/terraform-provider-sigil/internal/client"
	"github.com/sigil-dev/terraform-provider-sigil/internal/spiffeid"
)

var (
	_ resource.ResourceWithConfigure      = (*federationResource)(nil)
	_ resource.ResourceWithImportState    = (*federationResource)(nil)
	_ resource.ResourceWithValidateConfig = (*federationResource)(nil)

	federationHint = byCodeAndField(
		map[string]string{"TRUST_DOMAIN_NOT_FOUND": "trust_domain", "FEDERATION_EXISTS": "foreign_trust_domain"},
		[][2]string{
			{"bundleEndpointUrl", "bundle_endpoint_url"},
			{"endpointSpiffeId", "endpoint_spiffe_id"},
			{"trustBundle", "trust_bundle"},
			{"caBundlePem", "ca_bundle_pem"},
			{"profile", "profile"},
			{"itself", "foreign_trust_domain"},
		},
	)
)

var httpsURL = regexp.MustCompile(`^https://[^/\s?#]+`)

type federationResource struct{ client *client.Client }

func newFederationResource() resource.Resource { return &federationResource{} }

type federationModel struct {
	ID                 types.String `tfsdk:"id"`
	TrustDomain        types.String `tfsdk:"trust_domain"`
	ForeignTrustDomain types.String `tfsdk:"foreign_trust_domain"`
	BundleEndpointURL  types.String `tfsdk:"bundle_endpoint_url"`
	Profile            types.String `tfsdk:"profile"`
	EndpointSpiffeID   types.String `tfsdk:"endpoint_spiffe_id"`
	TrustBundle        types.String `tfsdk:"trust_bundle"`
	CABundlePEM        types.String `tfsdk:"ca_bundle_pem"`
	CreatedAt          types.String `tfsdk:"created_at"`
}

func (r *federationResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_federation"
}

func (r *federationResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	keep := []planmodifier.String{stringplanmodifier.UseStateForUnknown()}
	resp.Schema = schema.Schema{
		MarkdownDescription: "A trust domain's federation with a foreign trust domain (another tenant, another Sigil, or a " +
			"SPIRE server): the server fetches the foreign SPIFFE bundle from its bundle endpoint and refreshes it at the " +
			"bundle's refresh hint, and the workloads of entries that name the foreign trust domain in `federates_with` " +
			"receive it. Every argument forces a new federation.\n\n" +
			"How the refreshes go (the bundle sequence, the last error) changes all the time and is not part of the " +
			"resource: see `sigil federation show`. A failed first fetch does not fail the apply; it is retried.\n\n" +
			"Import with `TRUST_DOMAIN/FOREIGN_TRUST_DOMAIN`. `trust_bundle` is not read back (the server keeps the " +
			"bundles it fetched since), so an imported `https_spiffe` federation keeps it null.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "`TRUST_DOMAIN/FOREIGN_TRUST_DOMAIN`.",
				PlanModifiers:       keep,
			},
			"trust_domain": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "The (local) trust domain that trusts the foreign one.",
				PlanModifiers:       replace,
				Validators:          []validator.String{trustDomainName()},
			},
			"foreign_trust_domain": schema.StringAttribute{
				Required:            true,
				MarkdownDescription: "The foreign trust domain.",
				PlanModifiers:       replace,
				Validators:          []validator.String{trustDomainName()},
			},
			"bundle_endpoint_url": schema.StringAttribute{
				Required: true,
				MarkdownDescription: "The foreign bundle endpoint, `https://` only. For a Sigil trust domain: " +
					"`https://SERVER/v1/federation/TRUST_DOMAIN/bundle`.",
				PlanModifiers: replace,
				Validators:    []validator.String{stringvalidator.RegexMatches(httpsURL, "must be an https:// URL")},
			},
			"profile": schema.StringAttribute{
				Optional: true,
				Computed: true,
				Default:  stringdefault.StaticString("https_web"),
				MarkdownDescription: "`https_web` (default: the endpoint has a web certificate) or `https_spiffe` (the endpoint " +
					"presents an X509-SVID with `endpoint_spiffe_id`, verified against the foreign bundle).",
				PlanModifiers: replace,
				Validators:    []validator.String{stringvalidator.OneOf("https_web", "https_spiffe")},
			},
			"endpoint_spiffe_id": schema.StringAttribute{
				Optional:            true,
				MarkdownDescription: "`https_spiffe` only: the SPIFFE ID of the endpoint's server, in the foreign trust domain.",
				PlanModifiers:       replace,
				Validators:          []validator.String{spiffeID()},
			},
			"trust_bundle": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "`https_spiffe` only (and required there): the foreign trust domain's current bundle, " +
					"SPIFFE JSON or PEM, to authenticate its endpoint the first time.",
				PlanModifiers: replace,
			},
			"ca_bundle_pem": schema.StringAttribute{
				Optional: true,
				MarkdownDescription: "`https_web` only: extra roots (PEM) trusted for the endpoint's web certificate, beside the " +
					"system's; for a Sigil server, its `server-ca.pem`.",
				PlanModifiers: replace,
			},
			"created_at": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "When the federation was created (RFC 3339).",
				PlanModifiers:       keep,
			},
		},
	}
}

func (r *federationResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

func (r *federationResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m federationModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	td, foreign := knownString(m.TrustDomain), knownString(m.ForeignTrustDomain)
	if td != nil && foreign != nil && *td == *foreign {
		resp.Diagnostics.AddAttributeError(path.Root("foreign_trust_domain"), "A trust domain cannot federate with itself",
			"foreign_trust_domain names trust_domain itself")
	}
	profile := "https_web"
	if p := knownString(m.Profile); p != nil {
		profile = *p
	} else if m.Profile.IsUnknown() {
		return
	}
	if profile == "https_web" {
		for attr, v := range map[string]types.String{"endpoint_spiffe_id": m.EndpointSpiffeID, "trust_bundle": m.TrustBundle} {
			if !v.IsNull() {
				resp.Diagnostics.AddAttributeError(path.Root(attr), "Argument is for https_spiffe",
					attr+" is used with profile = \"https_spiffe\" only")
			}
		}
		return
	}
	if !m.CABundlePEM.IsNull() {
		resp.Diagnostics.AddAttributeError(path.Root("ca_bundle_pem"), "Argument is for https_web",
			"ca_bundle_pem is used with profile = \"https_web\" only; https_spiffe endpoints are authenticated by trust_bundle")
	}
	for attr, v := range map[string]types.String{"endpoint_spiffe_id": m.EndpointSpiffeID, "trust_bundle": m.TrustBundle} {
		if v.IsNull() {
			resp.Diagnostics.AddAttributeError(path.Root(attr), "Missing argument for https_spiffe",
				attr+" is required with profile = \"https_spiffe\"")
		}
	}
	if id, f := knownString(m.EndpointSpiffeID), foreign; id != nil && f != nil {
		if parsed, err := spiffeid.Parse(*id); err == nil && parsed.TrustDomain != *f {
			resp.Diagnostics.AddAttributeError(path.Root("endpoint_spiffe_id"), "Endpoint SPIFFE ID in another trust domain",
				"endpoint_spiffe_id must be in the foreign trust domain "+*f)
		}
	}
}

func (m *federationModel) fill(f *client.Federation) {
	m.ID = types.StringValue(f.TrustDomain + "/" + f.ForeignTrustDomain)
	m.TrustDomain = types.StringValue(f.TrustDomain)
	m.ForeignTrustDomain = types.StringValue(f.ForeignTrustDomain)
	m.BundleEndpointURL = types.StringValue(f.BundleEndpointURL)
	m.Profile = types.StringValue(f.Profile)
	m.EndpointSpiffeID = types.StringPointerValue(f.EndpointSpiffeID)
	m.CABundlePEM = types.StringPointerValue(f.CABundlePEM)
	m.CreatedAt = types.StringValue(f.CreatedAt)
}

func (r *federationResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan federationModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	td := plan.TrustDomain.ValueString()
	f, err := r.client.CreateFederation(ctx, td, client.FederationInput{
		ForeignTrustDomain: plan.ForeignTrustDomain.ValueString(),
		BundleEndpointURL:  plan.BundleEndpointURL.ValueString(),
		Profile:            knownString(plan.Profile),
		EndpointSpiffeID:   knownString(plan.EndpointSpiffeID),
		TrustBundle:        knownString(plan.TrustBundle),
		CABundlePEM:        knownString(plan.CABundlePEM),
	})
	if err != nil {
		addError(&resp.Diagnostics, err, "federate trust domain "+td+" with "+plan.ForeignTrustDomain.ValueString(), federationHint)
		return
	}
	if f.LastError != nil {
		resp.Diagnostics.AddWarning("The first fetch of the foreign bundle failed",
			"The federation was created and is retried at the refresh hint; the server said: "+*f.LastError)
	}
	// The URL as configured stays (the server may normalize it, e.g. add a trailing slash).
	url := plan.BundleEndpointURL
	plan.fill(f)
	plan.BundleEndpointURL = url
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *federationResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state federationModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	td, foreign := state.TrustDomain.ValueString(), state.ForeignTrustDomain.ValueString()
	f, err := r.client.GetFederation(ctx, td, foreign)
	if client.HasCode(err, "FEDERATION_NOT_FOUND", "TRUST_DOMAIN_NOT_FOUND") {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addError(&resp.Diagnostics, err, "read federation "+td+"/"+foreign, nil)
		return
	}
	url := state.BundleEndpointURL
	state.fill(f)
	if !url.IsNull() && sameURL(url.ValueString(), f.BundleEndpointURL) {
		state.BundleEndpointURL = url
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// sameURL: the server stores URLs normalized (new URL(...).toString()), which may only add a "/" path.
func sameURL(configured, stored string) bool {
	return configured == stored || configured+"/" == stored || strings.EqualFold(configured, stored)
}

func (r *federationResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	updateFromPlan[federationModel](ctx, req, resp)
}

func (r *federationResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state federationModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	td, foreign := state.TrustDomain.ValueString(), state.ForeignTrustDomain.ValueString()
	err := r.client.DeleteFederation(ctx, td, foreign)
	if err != nil && !client.HasCode(err, "FEDERATION_NOT_FOUND", "TRUST_DOMAIN_NOT_FOUND") {
		addError(&resp.Diagnostics, err, "delete federation "+td+"/"+foreign, nil)
	}
}

func (r *federationResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	td, foreign, ok := splitImportID(req.ID, "`terraform import sigil_federation.partner example.org/partner.example`", &resp.Diagnostics)
	if !ok {
		return
	}
	if err := spiffeid.ValidateTrustDomain(foreign); err != nil {
		resp.Diagnostics.AddError("Invalid import ID", "The foreign trust domain is invalid: "+err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("trust_domain"), td)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("foreign_trust_domain"), foreign)...)
}
