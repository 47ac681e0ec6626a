package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// PolicySpec is what a policy says: the body's `policy` of a PUT, and the same fields of a GET.
type PolicySpec struct {
	Mode        string       `json:"mode"`
	AllowWithin []string     `json:"allowWithin"`
	Rules       []PolicyRule `json:"rules"`
}

// MarshalJSON sends [] rather than null for empty lists: the API refuses null where it expects a list.
func (p PolicySpec) MarshalJSON() ([]byte, error) {
	type plain PolicySpec
	out := plain(p)
	if out.AllowWithin == nil {
		out.AllowWithin = []string{}
	}
	if out.Rules == nil {
		out.Rules = []PolicyRule{}
	}
	return json.Marshal(out)
}

// PolicyRule is one rule. Action is "allow" or "deny".
type PolicyRule struct {
	Name   string            `json:"name"`
	Action string            `json:"action,omitempty"`
	From   PolicySource      `json:"from"`
	To     PolicyDestination `json:"to"`
}

// PolicySource is who opens a connection; every criterion given must match.
type PolicySource struct {
	SpiffeID string `json:"spiffeId,omitempty"`
	Selector string `json:"selector,omitempty"`
}

// PolicyDestination is who is called. No Ports means every port.
type PolicyDestination struct {
	SpiffeID string `json:"spiffeId,omitempty"`
	Selector string `json:"selector,omitempty"`
	FQDN     string `json:"fqdn,omitempty"`
	Ports    []Port `json:"ports,omitempty"`
}

// Port is a port ("5432") or an inclusive range ("8000-8100"). The API writes a single port as a JSON
// number and a range as a string; Port reads both and writes a single port back as a number.
type Port string

// MarshalJSON writes a single port as a number, anything else as a string.
func (p Port) MarshalJSON() ([]byte, error) {
	s := string(p)
	if n, err := strconv.Atoi(s); err == nil && s != "" && !strings.HasPrefix(s, "+") && !strings.HasPrefix(s, "-") {
		return json.Marshal(n)
	}
	return json.Marshal(s)
}

// UnmarshalJSON reads a JSON number or string.
func (p *Port) UnmarshalJSON(data []byte) error {
	var n json.Number
	if err := json.Unmarshal(data, &n); err == nil {
		*p = Port(n.String())
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("a port must be a number or a string such as \"8000-8100\", got %s", data)
	}
	*p = Port(s)
	return nil
}

// Policy is a trust domain's network policy as the API returns it. Version 0 is the default policy
// that was never set (baseline, no rules).
type Policy struct {
	TrustDomain string       `json:"trustDomain"`
	Version     int64        `json:"version"`
	Mode        string       `json:"mode"`
	AllowWithin []string     `json:"allowWithin"`
	Rules       []PolicyRule `json:"rules"`
	// Text is the policy as YAML, in the policy file's format.
	Text string `json:"text"`
	// UpdatedAt is when this version was set, as the server writes it (RFC 3339, or milliseconds since
	// the epoch); see Updated.
	UpdatedAt json.RawMessage `json:"updatedAt"`
	// UpdatedBy names who set this version; see Author.
	UpdatedBy json.RawMessage `json:"updatedBy"`
}

// Updated is when this version was set, in RFC 3339, or "" when never (version 0).
func (p *Policy) Updated() string {
	if len(p.UpdatedAt) == 0 || string(p.UpdatedAt) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(p.UpdatedAt, &s) == nil {
		return s
	}
	var ms int64
	if json.Unmarshal(p.UpdatedAt, &ms) == nil && ms > 0 {
		return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
	}
	return ""
}

// Spec is what the policy says.
func (p *Policy) Spec() PolicySpec {
	return PolicySpec{Mode: p.Mode, AllowWithin: p.AllowWithin, Rules: p.Rules}
}

// IsDefault reports whether the policy says what the default does: baseline, no allowWithin, no rules.
func (p *Policy) IsDefault() bool {
	return p.Mode == "baseline" && len(p.AllowWithin) == 0 && len(p.Rules) == 0
}

// Author is who set this version: UpdatedBy when it is a string, else the name (or ID) in it, or "".
func (p *Policy) Author() string {
	if len(p.UpdatedBy) == 0 || string(p.UpdatedBy) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(p.UpdatedBy, &s) == nil {
		return s
	}
	var o map[string]any
	if json.Unmarshal(p.UpdatedBy, &o) == nil {
		for _, k := range []string{"name", "tokenName", "id", "tokenId", "spiffeId", "subject"} {
			if v, ok := o[k].(string); ok && v != "" {
				return v
			}
		}
	}
	return string(p.UpdatedBy)
}

// PolicyErrorDetails is where a refused policy went wrong: `details` of a POLICY_INVALID error.
// Path names the field in the API's spelling, e.g. "rules[0].to.ports[1]" ("" for the whole policy).
type PolicyErrorDetails struct {
	Line   int    `json:"line"`
	Column int    `json:"column"`
	Path   string `json:"path"`
}

// PolicyDetails returns the details of a POLICY_INVALID error, when err is one and has them.
func PolicyDetails(err error) (*PolicyErrorDetails, bool) {
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Code != "POLICY_INVALID" || len(apiErr.Details) == 0 {
		return nil, false
	}
	var d PolicyErrorDetails
	if json.Unmarshal(apiErr.Details, &d) != nil {
		return nil, false
	}
	return &d, true
}

func policyPath(td string) string { return tdPath(td) + "/policy" }

// GetPolicy reads a trust domain's policy.
func (c *Client) GetPolicy(ctx context.Context, td string) (*Policy, error) {
	var out Policy
	if err := c.Do(ctx, "GET", policyPath(td), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PutPolicy replaces a trust domain's policy. With expectedVersion set, the server refuses
// (POLICY_VERSION_CONFLICT, 409) when the policy's current version is another one.
func (c *Client) PutPolicy(ctx context.Context, td string, spec PolicySpec, expectedVersion *int64) (*Policy, error) {
	body := map[string]any{"policy": spec}
	if expectedVersion != nil {
		body["expectedVersion"] = *expectedVersion
	}
	var out Policy
	if err := c.Do(ctx, "PUT", policyPath(td), body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeletePolicy resets a trust domain's policy to the default (baseline, no rules) as a new version.
// It returns the new policy when the server answers with it, else nil.
func (c *Client) DeletePolicy(ctx context.Context, td string) (*Policy, error) {
	var raw []byte
	if err := c.Do(ctx, "DELETE", policyPath(td), nil, &raw); err != nil {
		return nil, err
	}
	var out Policy
	if len(strings.TrimSpace(string(raw))) == 0 || json.Unmarshal(raw, &out) != nil || out.TrustDomain == "" {
		return nil, nil
	}
	return &out, nil
}
