package provider

import (
	"context"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"

	"github.com/sigil-dev/terraform-provider-sigil/internal/spiffeid"
)

// stringCheck adapts a syntax check from package spiffeid to a plan-time attribute validator.
type stringCheck struct {
	summary     string
	description string
	check       func(string) error
}

var _ validator.String = stringCheck{}

func (v stringCheck) Description(context.Context) string         { return v.description }
func (v stringCheck) MarkdownDescription(context.Context) string { return v.description }

func (v stringCheck) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if err := v.check(req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, v.summary, err.Error())
	}
}

func trustDomainName() validator.String {
	return stringCheck{
		summary:     "Invalid trust domain name",
		description: "a SPIFFE trust domain name: lowercase letters, digits, `.`, `-` and `_`, no scheme, port or path",
		check:       spiffeid.ValidateTrustDomain,
	}
}

func spiffeID() validator.String {
	return stringCheck{
		summary:     "Invalid SPIFFE ID",
		description: "a SPIFFE ID, `spiffe://TRUST_DOMAIN/path`",
		check:       func(s string) error { _, err := spiffeid.Parse(s); return err },
	}
}

func selector() validator.String {
	return stringCheck{
		summary:     "Invalid selector",
		description: "a selector, `TYPE:KEY[:VALUE]`",
		check:       spiffeid.ValidateSelector,
	}
}

func dnsName() validator.String {
	return stringCheck{
		summary:     "Invalid DNS name",
		description: "a lowercase DNS name, optionally with a leading `*.`",
		check:       spiffeid.ValidateDNSName,
	}
}

// keepStateWhenEquivalent plans the prior state's value when the configuration says the same thing
// differently ("60m" after "1h"), so a rewording is not an update. Terraform accepts a planned value
// equal to the prior one in place of the configured one for exactly this purpose.
type keepStateWhenEquivalent struct {
	equivalent func(a, b string) bool
}

var _ planmodifier.String = keepStateWhenEquivalent{}

func (m keepStateWhenEquivalent) Description(context.Context) string {
	return "keeps the prior value when the configured value is equivalent"
}

func (m keepStateWhenEquivalent) MarkdownDescription(ctx context.Context) string {
	return m.Description(ctx)
}

func (m keepStateWhenEquivalent) PlanModifyString(_ context.Context, req planmodifier.StringRequest, resp *planmodifier.StringResponse) {
	if req.StateValue.IsNull() || req.StateValue.IsUnknown() || req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() || req.PlanValue.IsUnknown() {
		return
	}
	if req.PlanValue.ValueString() != req.StateValue.ValueString() && m.equivalent(req.PlanValue.ValueString(), req.StateValue.ValueString()) {
		resp.PlanValue = req.StateValue
	}
}

func durationsEquivalent() planmodifier.String {
	return keepStateWhenEquivalent{equivalent: func(a, b string) bool {
		x, errX := ParseDuration(a)
		y, errY := ParseDuration(b)
		return errX == nil && errY == nil && x == y
	}}
}

func timestampsEquivalent() planmodifier.String {
	return keepStateWhenEquivalent{equivalent: func(a, b string) bool {
		x, errX := time.Parse(time.RFC3339Nano, a)
		y, errY := time.Parse(time.RFC3339Nano, b)
		return errX == nil && errY == nil && x.Equal(y)
	}}
}
