package provider

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/listdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/sigil-dev/terraform-provider-sigil/internal/client"
	"github.com/sigil-dev/terraform-provider-sigil/internal/spiffeid"
)

var (
	_ resource.ResourceWithConfigure      = (*policyResource)(nil)
	_ resource.ResourceWithImportState    = (*policyResource)(nil)
	_ resource.ResourceWithValidateConfig = (*policyResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*policyResource)(nil)
)

// policyActions are a rule's actions; the first is the default.
var policyActions = []string{"allow", "deny"}

type policyResource struct{ client *client.Client }

func newPolicyResource() resource.Resource { return &policyResource{} }

type policyModel struct {
	ID          types.String `tfsdk:"id"`
	TrustDomain types.String `tfsdk:"trust_domain"`
	Mode        types.String `tfsdk:"mode"`
	AllowWithin types.List   `tfsdk:"allow_within"`
	Rules       types.List   `tfsdk:"rule"`
	Version     types.Int64  `tfsdk:"version"`
	UpdatedAt   types.String `tfsdk:"updated_at"`
	UpdatedBy   types.String `tfsdk:"updated_by"`
}

type ruleModel struct {
	Name   types.String `tfsdk:"name"`
	Action types.String `tfsdk:"action"`
	From   types.Object `tfsdk:"from"`
	To     types.Object `tfsdk:"to"`
}

type sourceModel struct {
	SpiffeID types.String `tfsdk:"spiffe_id"`
	Selector types.String `tfsdk:"selector"`
}

type destinationModel struct {
	SpiffeID types.String `tfsdk:"spiffe_id"`
	Selector types.String `tfsdk:"selector"`
	FQDN     types.String `tfsdk:"fqdn"`
	Ports    types.List   `tfsdk:"ports"`
}

var (
	sourceAttrTypes = map[string]attr.Type{
		"spiffe_id": types.StringType,
		"selector":  types.StringType,
	}
	destinationAttrTypes = map[string]attr.Type{
		"spiffe_id": types.StringType,
		"selector":  types.StringType,
		"fqdn":      types.StringType,
		"ports":     types.ListType{ElemType: types.StringType},
	}
	ruleAttrTypes = map[string]attr.Type{
		"name":   types.StringType,
		"action": types.StringType,
		"from":   types.ObjectType{AttrTypes: sourceAttrTypes},
		"to":     types.ObjectType{AttrTypes: destinationAttrTypes},
	}
	ruleType = types.ObjectType{AttrTypes: ruleAttrTypes}
)

func (r *policyResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_policy"
}

const spiffeIDPatternDoc = "A SPIFFE ID in `trust_domain`, exact (`spiffe://example.org/web`) or a glob whose `*` is a whole " +
	"path segment: as the last segment it matches everything below (`spiffe://example.org/ns/prod/*`), elsewhere exactly one " +
	"segment (`spiffe://example.org/*/db`)."

const selectorDoc = "A workload selector `TYPE:KEY:VALUE` the process must match, e.g. `k8s:ns:prod`, `unix:uid:1000` or " +
	"`unix:sha256:HEX` (the code-DNA of the executable)."

func (r *policyResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "The network policy of a trust domain: which identified workloads may connect to which, and to " +
			"which outside names (FQDNs), enforced by the agents' proxies. A trust domain has exactly one policy; this " +
			"resource manages all of it, so declare at most one `sigil_policy` per trust domain.\n\n" +
			"One rule allows (or denies) both ends of a connection: the caller's egress and the callee's ingress. A `deny` " +
			"rule always wins over an `allow` rule, whatever their order. In `baseline` mode traffic no rule matches is let " +
			"through and reported; in `explicit` mode only what a rule (or `allow_within`) allows gets through.\n\n" +
			"Every change is a new version of the policy on the server. An update is refused, without changing anything, when " +
			"the policy was changed outside Terraform since it was last read (the CLI's `sigil policy set`, the console): run " +
			"`terraform plan` again to see that change. Creating the resource replaces the trust domain's current policy; " +
			"destroying it resets the policy to the default (`baseline`, no rules) as a new version.\n\n" +
			"The policy's `mode` is also what `sigil_trust_domain`'s `policy_mode` (and `sigil policy mode`) changes: " +
			"with a `sigil_policy`, leave `policy_mode` unset on the trust domain, or the two fight over the mode.\n\n" +
			"Everything is checked at plan time (rule names, SPIFFE IDs of this trust domain, selectors, FQDN patterns, " +
			"ports); what only the server knows (selector types and keys) is reported at apply time on the attribute concerned.\n\n" +
			"Import with the trust domain's name: `terraform import sigil_policy.main example.org`.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "The trust domain's name (a trust domain has one policy).",
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"trust_domain": schema.StringAttribute{
				Required: true,
				MarkdownDescription: "The trust domain whose policy this is, e.g. `sigil_trust_domain.example.name`. " +
					"Changing it replaces the resource: the old trust domain's policy is reset and the new one's set.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
				Validators:    []validator.String{trustDomainName()},
			},
			"mode": schema.StringAttribute{
				Optional: true,
				Computed: true,
				Default:  stringdefault.StaticString("baseline"),
				MarkdownDescription: "`baseline` (the default): observe, let traffic no rule matches through and report it, so " +
					"that `sigil policy recommend` can propose rules. `explicit`: only what a rule or `allow_within` allows " +
					"gets through; everything else is refused.",
				Validators: []validator.String{stringvalidator.OneOf(policyModes...)},
			},
			"allow_within": schema.ListAttribute{
				ElementType: types.StringType,
				Optional:    true,
				Computed:    true,
				Default:     listdefault.StaticValue(types.ListValueMust(types.StringType, []attr.Value{})),
				MarkdownDescription: "Selector keys, such as `k8s:ns` or `k8s:pod-label:app.kubernetes.io/part-of`: identified " +
					"workloads that share the value of one of these keys (the same namespace, the same label value) may talk " +
					"to each other freely, without a rule. A key is `TYPE:KEY`, or `TYPE:KEY:NAME` for the keys whose values " +
					"are themselves `NAME:VALUE` (`k8s:pod-label`, `aws_iid:tag`, `x509pop:subject`). Defaults to none.",
				Validators: []validator.List{listvalidator.ValueStringsAre(stringCheck{
					summary:     "Invalid allow_within selector key",
					description: "a selector key, `TYPE:KEY` (e.g. `k8s:ns`) or `TYPE:KEY:NAME` (e.g. `k8s:pod-label:app`)",
					check:       checkSelectorKey,
				}), listvalidator.UniqueValues(), listvalidator.SizeAtMost(64)},
			},
			"version": schema.Int64Attribute{
				Computed: true,
				MarkdownDescription: "The policy's version on the server; every change, from Terraform or elsewhere, makes a " +
					"new one. An update is sent only if the server's version is still this one.",
			},
			"updated_at": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "When this version was set (RFC 3339).",
			},
			"updated_by": schema.StringAttribute{
				Computed:            true,
				MarkdownDescription: "Who set this version, as the server records it (the API token's name).",
			},
		},
		Blocks: map[string]schema.Block{
			"rule": schema.ListNestedBlock{
				MarkdownDescription: "A rule: `from` may connect to `to` (`action = \"allow\"`), or may not (`\"deny\"`). " +
					"Rules are kept in the order written; a `deny` wins over any `allow` regardless of order. " +
					"Every criterion set in `from` (or in `to`) must match.",
				Validators: []validator.List{listvalidator.SizeAtMost(10000)},
				NestedObject: schema.NestedBlockObject{
					Attributes: map[string]schema.Attribute{
						"name": schema.StringAttribute{
							Required: true,
							MarkdownDescription: "The rule's name, unique in the policy: 1 to 128 letters, digits, `.`, `-` " +
								"and `_`, starting with a letter or digit, e.g. `web-to-db`. Flow reports name the rule that " +
								"allowed or denied a connection.",
							Validators: []validator.String{stringCheck{
								summary:     "Invalid rule name",
								description: "1 to 128 letters, digits, `.`, `-` and `_`, starting with a letter or digit",
								check:       checkRuleName,
							}},
						},
						"action": schema.StringAttribute{
							Optional:            true,
							Computed:            true,
							Default:             stringdefault.StaticString(policyActions[0]),
							MarkdownDescription: "`allow` (the default) or `deny`. A `deny` always wins over an `allow`.",
							Validators:          []validator.String{stringvalidator.OneOf(policyActions...)},
						},
					},
					Blocks: map[string]schema.Block{
						"from": schema.SingleNestedBlock{
							MarkdownDescription: "Who opens the connection (required): set `spiffe_id`, `selector`, or both.",
							Attributes: map[string]schema.Attribute{
								"spiffe_id": schema.StringAttribute{
									Optional:            true,
									MarkdownDescription: "The caller's SPIFFE ID. " + spiffeIDPatternDoc,
									Validators:          []validator.String{spiffeIDPattern()},
								},
								"selector": schema.StringAttribute{
									Optional:            true,
									MarkdownDescription: "The caller's selector. " + selectorDoc,
									Validators:          []validator.String{ruleSelector()},
								},
							},
						},
						"to": schema.SingleNestedBlock{
							MarkdownDescription: "Who is called (required): set `spiffe_id`, `selector` or `fqdn` (an outside " +
								"name, which cannot be combined with `spiffe_id`), and optionally `ports`.",
							Attributes: map[string]schema.Attribute{
								"spiffe_id": schema.StringAttribute{
									Optional:            true,
									MarkdownDescription: "The callee's SPIFFE ID. " + spiffeIDPatternDoc + " Cannot be combined with `fqdn`.",
									Validators:          []validator.String{spiffeIDPattern()},
								},
								"selector": schema.StringAttribute{
									Optional:            true,
									MarkdownDescription: "The callee's selector. " + selectorDoc,
									Validators:          []validator.String{ruleSelector()},
								},
								"fqdn": schema.StringAttribute{
									Optional: true,
									MarkdownDescription: "An outside DNS name reached through the agent's egress proxy, lowercase, " +
										"e.g. `api.stripe.com`, or `*.s3.amazonaws.com` (`*` stands for exactly one leftmost label, " +
										"and needs at least two labels after it). Cannot be combined with `spiffe_id`.",
									Validators: []validator.String{stringCheck{
										summary:     "Invalid fqdn",
										description: "a lowercase DNS name, optionally with a leading `*.` label",
										check:       checkFQDNPattern,
									}},
								},
								"ports": schema.ListAttribute{
									ElementType: types.StringType,
									Optional:    true,
									MarkdownDescription: "The TCP ports allowed, each a port (`\"5432\"`) or an inclusive range " +
										"(`\"8000-8100\"`), 1 to 65535. Not set: every port. The server stores them sorted and " +
										"merged; writing the same ports another way (`[\"80\", \"81\"]` for `[\"80-81\"]`) is not a change.",
									Validators: []validator.List{
										notEmptyPorts{},
										listvalidator.SizeAtMost(256),
										listvalidator.ValueStringsAre(stringCheck{
											summary:     "Invalid port",
											description: "a port `\"443\"` or a range `\"8000-8100\"`, 1 to 65535",
											check:       checkPort,
										}),
									},
									PlanModifiers: []planmodifier.List{keepEquivalentPorts{}},
								},
							},
						},
					},
				},
			},
		},
	}
}

func ruleSelector() validator.String {
	return stringCheck{
		summary:     "Invalid selector",
		description: "a selector with a value, `TYPE:KEY:VALUE`",
		check:       checkRuleSelector,
	}
}

func spiffeIDPattern() validator.String {
	return stringCheck{
		summary:     "Invalid SPIFFE ID",
		description: "a SPIFFE ID `spiffe://TRUST_DOMAIN/path`, or a glob with whole `*` segments",
		check:       func(s string) error { return checkSpiffeIDPattern(s, "") },
	}
}

func (r *policyResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.client = clientFrom(req.ProviderData, &resp.Diagnostics)
}

// ValidateConfig checks what spans attributes: a rule's ends name something, fqdn excludes
// spiffe_id, SPIFFE IDs belong to trust_domain, rule names are unique. Unknown values are skipped.
func (r *policyResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var m policyModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	td := ""
	if t := knownString(m.TrustDomain); t != nil && spiffeid.ValidateTrustDomain(*t) == nil {
		td = *t
	}
	resp.Diagnostics.Append(validateRules(ctx, m.Rules, td)...)
}

func validateRules(ctx context.Context, rules types.List, td string) diag.Diagnostics {
	var diags diag.Diagnostics
	if rules.IsNull() || rules.IsUnknown() {
		return diags
	}
	var list []types.Object
	diags.Append(rules.ElementsAs(ctx, &list, true)...)
	if diags.HasError() {
		return diags
	}
	firstUse := map[string]int{}
	for i, obj := range list {
		if obj.IsNull() || obj.IsUnknown() {
			continue
		}
		at := path.Root("rule").AtListIndex(i)
		var rule ruleModel
		if d := obj.As(ctx, &rule, objectAsOptions); d.HasError() {
			diags.Append(d...)
			return diags
		}
		if n := knownString(rule.Name); n != nil {
			if j, dup := firstUse[*n]; dup {
				diags.AddAttributeError(at.AtName("name"), "Duplicate rule name",
					fmt.Sprintf("rule[%d] and rule[%d] are both named %q; rule names must be unique in a policy. Rename one of them.", j, i, *n))
			} else {
				firstUse[*n] = i
			}
		}
		checkID := func(p path.Path, v types.String) {
			if s := knownString(v); s != nil && td != "" {
				if err := checkSpiffeIDPattern(*s, td); err != nil && checkSpiffeIDPattern(*s, "") == nil {
					diags.AddAttributeError(p, "SPIFFE ID of another trust domain",
						err.Error()+". A policy may only name identities of its own trust domain.")
				}
			}
		}
		// from
		switch {
		case rule.From.IsUnknown():
		case rule.From.IsNull():
			diags.AddAttributeError(at.AtName("name"), "Missing from block",
				fmt.Sprintf("rule[%d] has no `from` block: add one that names who opens the connection, e.g. `from { spiffe_id = \"spiffe://%s/web\" }`.", i, tdOr(td)))
		default:
			var from sourceModel
			diags.Append(rule.From.As(ctx, &from, objectAsOptions)...)
			if from.SpiffeID.IsNull() && from.Selector.IsNull() {
				diags.AddAttributeError(at.AtName("from"), "Empty from block",
					fmt.Sprintf("rule[%d].from names nothing: set `spiffe_id` (e.g. \"spiffe://%s/web\"), `selector` (e.g. \"k8s:ns:prod\"), or both.", i, tdOr(td)))
			}
			checkID(at.AtName("from").AtName("spiffe_id"), from.SpiffeID)
		}
		// to
		switch {
		case rule.To.IsUnknown():
		case rule.To.IsNull():
			diags.AddAttributeError(at.AtName("name"), "Missing to block",
				fmt.Sprintf("rule[%d] has no `to` block: add one that names who is called, e.g. `to { spiffe_id = \"spiffe://%s/db\" }` or `to { fqdn = \"api.example.com\" }`.", i, tdOr(td)))
		default:
			var to destinationModel
			diags.Append(rule.To.As(ctx, &to, objectAsOptions)...)
			if to.SpiffeID.IsNull() && to.Selector.IsNull() && to.FQDN.IsNull() {
				diags.AddAttributeError(at.AtName("to"), "Empty to block",
					fmt.Sprintf("rule[%d].to names nothing: set `spiffe_id`, `selector` or `fqdn` (and optionally `ports`).", i))
			}
			if !to.SpiffeID.IsNull() && !to.FQDN.IsNull() {
				diags.AddAttributeError(at.AtName("to").AtName("fqdn"), "fqdn and spiffe_id cannot be combined",
					fmt.Sprintf("rule[%d].to sets both `fqdn` and `spiffe_id`: an outside name has no SPIFFE ID. Write two rules, one with each.", i))
			}
			checkID(at.AtName("to").AtName("spiffe_id"), to.SpiffeID)
		}
	}
	return diags
}

func tdOr(td string) string {
	if td == "" {
		return "TRUST_DOMAIN"
	}
	return td
}

var objectAsOptions = basetypes.ObjectAsOptions{}

// ModifyPlan keeps version, updated_at and updated_by when nothing the policy says changes. The
// framework marks them unknown as soon as the configuration differs from the state in any way, also
// when a plan modifier then finds the difference to be a rewording (ports written another way).
func (r *policyResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() || req.State.Raw.IsNull() {
		return
	}
	var plan, state policyModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if plan.TrustDomain.Equal(state.TrustDomain) && plan.Mode.Equal(state.Mode) && plan.AllowWithin.Equal(state.AllowWithin) && plan.Rules.Equal(state.Rules) {
		plan.ID, plan.Version, plan.UpdatedAt, plan.UpdatedBy = state.ID, state.Version, state.UpdatedAt, state.UpdatedBy
		resp.Diagnostics.Append(resp.Plan.Set(ctx, &plan)...)
	}
}

// --- the API's JSON and the Terraform model ---

func stringOrNull(s string) types.String {
	if s == "" {
		return types.StringNull()
	}
	return types.StringValue(s)
}

func listOf(values []string) types.List {
	elems := make([]attr.Value, 0, len(values))
	for _, v := range values {
		elems = append(elems, types.StringValue(v))
	}
	return types.ListValueMust(types.StringType, elems)
}

// priorPorts are the ports of each rule (by name) as the prior state or plan writes them.
func priorPorts(ctx context.Context, rules types.List) map[string][]string {
	out := map[string][]string{}
	if rules.IsNull() || rules.IsUnknown() {
		return out
	}
	var list []ruleModel
	if rules.ElementsAs(ctx, &list, false).HasError() {
		return out
	}
	for _, r := range list {
		if r.Name.IsNull() || r.Name.IsUnknown() || r.To.IsNull() || r.To.IsUnknown() {
			continue
		}
		var to destinationModel
		if r.To.As(ctx, &to, objectAsOptions).HasError() {
			continue
		}
		if ports, ok := knownStrings(to.Ports); ok {
			out[r.Name.ValueString()] = ports
		}
	}
	return out
}

// rulesFromAPI turns the API's rules into the model's list. A rule's ports keep the spelling of
// prior (the plan, or the state before a refresh) when they allow the same ports, so that the
// server's normal form (sorted, merged, numbers) is not a difference.
func rulesFromAPI(rules []client.PolicyRule, prior map[string][]string) types.List {
	elems := make([]attr.Value, 0, len(rules))
	for _, r := range rules {
		ports := types.ListNull(types.StringType)
		if len(r.To.Ports) > 0 {
			api := make([]string, len(r.To.Ports))
			for i, p := range r.To.Ports {
				api[i] = string(p)
			}
			if was, ok := prior[r.Name]; ok && portsEquivalent(was, api) {
				api = was
			}
			ports = listOf(api)
		}
		action := r.Action
		if action == "" {
			action = policyActions[0]
		}
		from := types.ObjectValueMust(sourceAttrTypes, map[string]attr.Value{
			"spiffe_id": stringOrNull(r.From.SpiffeID),
			"selector":  stringOrNull(r.From.Selector),
		})
		to := types.ObjectValueMust(destinationAttrTypes, map[string]attr.Value{
			"spiffe_id": stringOrNull(r.To.SpiffeID),
			"selector":  stringOrNull(r.To.Selector),
			"fqdn":      stringOrNull(r.To.FQDN),
			"ports":     ports,
		})
		elems = append(elems, types.ObjectValueMust(ruleAttrTypes, map[string]attr.Value{
			"name":   types.StringValue(r.Name),
			"action": types.StringValue(action),
			"from":   from,
			"to":     to,
		}))
	}
	return types.ListValueMust(ruleType, elems)
}

// fill sets every attribute from the API's view (what Read does, so drift always shows); prior
// supplies the spelling of equivalent ports.
func (m *policyModel) fill(ctx context.Context, p *client.Policy, prior types.List) {
	td := p.TrustDomain
	if td == "" {
		td = m.TrustDomain.ValueString()
	}
	m.ID = types.StringValue(td)
	m.TrustDomain = types.StringValue(td)
	mode := p.Mode
	if mode == "" {
		mode = "baseline"
	}
	m.Mode = types.StringValue(mode)
	m.AllowWithin = listOf(p.AllowWithin)
	m.Rules = rulesFromAPI(p.Rules, priorPorts(ctx, prior))
	m.Version = types.Int64Value(p.Version)
	m.UpdatedAt = stringOrNull(p.Updated())
	m.UpdatedBy = stringOrNull(p.Author())
}

func valueOrEmpty(v types.String) string {
	if v.IsNull() || v.IsUnknown() {
		return ""
	}
	return v.ValueString()
}

// spec is the policy the plan asks for, in the API's shape.
func (m *policyModel) spec(ctx context.Context) (client.PolicySpec, diag.Diagnostics) {
	var diags diag.Diagnostics
	out := client.PolicySpec{Mode: valueOrEmpty(m.Mode), AllowWithin: []string{}, Rules: []client.PolicyRule{}}
	if out.Mode == "" {
		out.Mode = "baseline"
	}
	if !m.AllowWithin.IsNull() && !m.AllowWithin.IsUnknown() {
		diags.Append(m.AllowWithin.ElementsAs(ctx, &out.AllowWithin, false)...)
	}
	if m.Rules.IsNull() || m.Rules.IsUnknown() {
		return out, diags
	}
	var rules []ruleModel
	diags.Append(m.Rules.ElementsAs(ctx, &rules, false)...)
	if diags.HasError() {
		return out, diags
	}
	for _, r := range rules {
		rule := client.PolicyRule{Name: valueOrEmpty(r.Name), Action: valueOrEmpty(r.Action)}
		if !r.From.IsNull() && !r.From.IsUnknown() {
			var from sourceModel
			diags.Append(r.From.As(ctx, &from, objectAsOptions)...)
			rule.From = client.PolicySource{SpiffeID: valueOrEmpty(from.SpiffeID), Selector: valueOrEmpty(from.Selector)}
		}
		if !r.To.IsNull() && !r.To.IsUnknown() {
			var to destinationModel
			diags.Append(r.To.As(ctx, &to, objectAsOptions)...)
			rule.To = client.PolicyDestination{SpiffeID: valueOrEmpty(to.SpiffeID), Selector: valueOrEmpty(to.Selector), FQDN: valueOrEmpty(to.FQDN)}
			if ports, ok := knownStrings(to.Ports); ok {
				for _, p := range ports {
					rule.To.Ports = append(rule.To.Ports, client.Port(p))
				}
			}
		}
		out.Rules = append(out.Rules, rule)
	}
	return out, diags
}

// --- errors ---

// policyFieldNames maps the API's field names in a policy path to the resource's attributes.
var policyFieldNames = map[string]string{
	"mode": "mode", "allowWithin": "allow_within", "rules": "rule",
	"name": "name", "action": "action", "from": "from", "to": "to",
	"spiffeId": "spiffe_id", "selector": "selector", "fqdn": "fqdn", "ports": "ports",
}

// Which attribute names may follow which, so that a path the resource does not have is never made.
var policyPathChildren = map[string][]string{
	"":     {"mode", "allow_within", "rule"},
	"rule": {"name", "action", "from", "to"},
	"from": {"spiffe_id", "selector"},
	"to":   {"spiffe_id", "selector", "fqdn", "ports"},
}

var (
	policyPathStep = regexp.MustCompile(`^([A-Za-z]+)((?:\[\d+\])*)$`)
	digits         = regexp.MustCompile(`\d+`)
)

// policyAttributePath maps a path of the API's policy ("rules[0].to.ports[1]", optionally under
// "policy.") to the resource's attribute path (rule[0].to.ports[1]) and its text. It maps as much of
// the path as the resource has; ok is false when not even the first step is known.
func policyAttributePath(apiPath string) (path.Path, string, bool) {
	apiPath = strings.TrimPrefix(strings.TrimSpace(apiPath), "policy.")
	if apiPath == "" || apiPath == "policy" {
		return path.Empty(), "", false
	}
	var p path.Path
	var text strings.Builder
	parent, started := "", false
	for _, step := range strings.Split(apiPath, ".") {
		m := policyPathStep.FindStringSubmatch(step)
		if m == nil {
			break
		}
		name, ok := policyFieldNames[m[1]]
		if !ok || !contains(policyPathChildren[parent], name) {
			break
		}
		if !started {
			p, started = path.Root(name), true
		} else {
			p = p.AtName(name)
			text.WriteByte('.')
		}
		text.WriteString(name)
		indexed := name == "rule" || name == "allow_within" || name == "ports"
		if m[2] != "" {
			if !indexed {
				break
			}
			for _, idx := range digits.FindAllString(m[2], -1) {
				n, err := strconv.Atoi(idx)
				if err != nil {
					break
				}
				p = p.AtListIndex(n)
				fmt.Fprintf(&text, "[%d]", n)
			}
		}
		parent = name
		if name == "mode" || name == "allow_within" || name == "ports" || name == "name" || name == "action" ||
			name == "spiffe_id" || name == "selector" || name == "fqdn" {
			break
		}
	}
	if !started {
		return path.Empty(), "", false
	}
	return p, text.String(), true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// policyMessagePrefix is how the server starts a POLICY_INVALID message: "line 3, rules[0].to.ports[0]: "
// for a policy file, "policy.rules[0].to.ports[0]: " for the API's JSON form.
var policyMessagePrefix = regexp.MustCompile(`^(?:line \d+, )?(?:policy\.)?([A-Za-z0-9_.\[\]]+|\(document\)): `)

// validationField is how the server names a field its request schema refused:
// "body field policy.rules.0.to.ports.0 must be integer".
var validationField = regexp.MustCompile(`^body field policy\.([A-Za-z0-9_.]+) `)

// policyProblem is the policy path a refused request names (in the API's spelling, "" when none) and
// the message without its position.
func policyProblem(apiErr *client.APIError) (string, string) {
	message := apiErr.Message
	if m := validationField.FindStringSubmatch(message); m != nil {
		steps := strings.Split(m[1], ".")
		var b strings.Builder
		for i, step := range steps {
			if _, err := strconv.Atoi(step); err == nil && i > 0 {
				fmt.Fprintf(&b, "[%s]", step)
				continue
			}
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(step)
		}
		return b.String(), message[len(m[0]):]
	}
	apiPath := ""
	if d, ok := client.PolicyDetails(&client.APIError{Code: "POLICY_INVALID", Details: apiErr.Details}); ok && apiErr.Code == "POLICY_INVALID" {
		apiPath = d.Path
	}
	if m := policyMessagePrefix.FindStringSubmatch(message); m != nil {
		if apiPath == "" && m[1] != "(document)" {
			apiPath = m[1]
		}
		message = message[len(m[0]):]
	}
	return apiPath, message
}

// firstClause is a message up to its first ";" (the rest of a conflict's message is advice for the CLI).
func firstClause(message string) string {
	if i := strings.Index(message, ";"); i > 0 {
		message = message[:i]
	}
	return strings.TrimSuffix(strings.TrimSpace(message), ".")
}

// addPolicyError reports a failed policy request: a refused field on the attribute it concerns,
// a version conflict with what to do, anything else like every other resource's errors.
func addPolicyError(diags *diag.Diagnostics, err error, action, td string) {
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) {
		addError(diags, err, action, nil)
		return
	}
	switch apiErr.Code {
	case "POLICY_VERSION_CONFLICT":
		diags.AddError("The policy was changed outside Terraform",
			fmt.Sprintf("Could not %s: the policy of trust domain %s was changed (through the CLI, the console, the API, "+
				"or the trust domain's policy_mode) after Terraform last read it, so the update was refused and nothing was "+
				"changed. The server said: %s.\n\n"+
				"Run `terraform plan` (or `terraform apply -refresh-only`) again to see what changed; then apply to "+
				"replace it with this configuration, or adopt the change in the configuration.", action, td, firstClause(apiErr.Message)))
		return
	case "POLICY_INVALID", "VALIDATION_FAILED":
		apiPath, message := policyProblem(apiErr)
		summary := "Sigil refused the policy: " + apiErr.Code
		if at, text, ok := policyAttributePath(apiPath); ok {
			diags.AddAttributeError(at, summary, fmt.Sprintf("Could not %s: %s: %s.", action, text, strings.TrimSuffix(message, ".")))
			return
		}
		diags.AddError(summary, fmt.Sprintf("Could not %s: %s", action, apiErr.Message))
		return
	}
	addError(diags, err, action, byCodeAndField(map[string]string{"TRUST_DOMAIN_NOT_FOUND": "trust_domain"}, nil))
}

// --- CRUD ---

func (r *policyResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var plan policyModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	td := plan.TrustDomain.ValueString()
	spec, diags := plan.spec(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	// The policy always exists (version 0 is the default); creating the resource replaces it. Reading
	// it first lets the PUT refuse a concurrent change, and tells the user when a policy set outside
	// Terraform is replaced.
	current, err := r.client.GetPolicy(ctx, td)
	if err != nil {
		addPolicyError(&resp.Diagnostics, err, "read the policy of trust domain "+td, td)
		return
	}
	p, err := r.client.PutPolicy(ctx, td, spec, &current.Version)
	if err != nil {
		addPolicyError(&resp.Diagnostics, err, "set the policy of trust domain "+td, td)
		return
	}
	if current.Version > 0 && !current.IsDefault() {
		by := ""
		if a := current.Author(); a != "" {
			by = " by " + a
		}
		resp.Diagnostics.AddWarning("Replaced an existing policy",
			fmt.Sprintf("Trust domain %s already had a policy (version %d, set%s) with %d rule(s); it was replaced by this "+
				"configuration as version %d. Earlier versions stay in the trust domain's audit log.", td, current.Version, by, len(current.Rules), p.Version))
	}
	plan.fill(ctx, p, plan.Rules)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *policyResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var state policyModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	td := state.TrustDomain.ValueString()
	p, err := r.client.GetPolicy(ctx, td)
	if client.HasCode(err, "TRUST_DOMAIN_NOT_FOUND") {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		addPolicyError(&resp.Diagnostics, err, "read the policy of trust domain "+td, td)
		return
	}
	state.fill(ctx, p, state.Rules)
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

func (r *policyResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var plan, state policyModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	td := state.TrustDomain.ValueString()
	spec, diags := plan.spec(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	var expected *int64
	if !state.Version.IsNull() && !state.Version.IsUnknown() {
		v := state.Version.ValueInt64()
		expected = &v
	}
	p, err := r.client.PutPolicy(ctx, td, spec, expected)
	if err != nil {
		addPolicyError(&resp.Diagnostics, err, "update the policy of trust domain "+td, td)
		return
	}
	plan.fill(ctx, p, plan.Rules)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

func (r *policyResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var state policyModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	td := state.TrustDomain.ValueString()
	_, err := r.client.DeletePolicy(ctx, td)
	if err != nil && !client.HasCode(err, "TRUST_DOMAIN_NOT_FOUND") {
		addPolicyError(&resp.Diagnostics, err, "reset the policy of trust domain "+td, td)
	}
}

func (r *policyResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if err := spiffeid.ValidateTrustDomain(req.ID); err != nil {
		resp.Diagnostics.AddError("Invalid import ID", "Import a policy by its trust domain's name, e.g. `terraform import sigil_policy.main example.org`: "+err.Error())
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("trust_domain"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
}
