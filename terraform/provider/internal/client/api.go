package client

import (
	"context"
	"encoding/json"
	"fmt"
)

// WhoAmI is the caller's token and its grants (GET /v1/whoami).
type WhoAmI struct {
	TokenID string  `json:"tokenId"`
	Name    string  `json:"name"`
	Grants  []Grant `json:"grants"`
}

// Grant is a role on a trust domain ("*" for all).
type Grant struct {
	TrustDomain string `json:"trustDomain"`
	Role        string `json:"role"`
}

// WhoAmI checks the server, the CA and the token in one cheap request.
func (c *Client) WhoAmI(ctx context.Context) (*WhoAmI, error) {
	var out WhoAmI
	if err := c.Do(ctx, "GET", "/v1/whoami", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Settings are a trust domain's settings as the API returns them. TTLs are seconds.
type Settings struct {
	KeyType        string `json:"keyType"`
	CATTL          int64  `json:"caTtl"`
	X509DefaultTTL int64  `json:"x509DefaultTtl"`
	X509MaxTTL     int64  `json:"x509MaxTtl"`
	JWTDefaultTTL  int64  `json:"jwtDefaultTtl"`
	JWTMaxTTL      int64  `json:"jwtMaxTtl"`
	PolicyMode     string `json:"policyMode"`
}

// SettingsInput is a partial change of settings: nil fields are left as they are.
type SettingsInput struct {
	KeyType        *string `json:"keyType,omitempty"`
	CATTL          *int64  `json:"caTtl,omitempty"`
	X509DefaultTTL *int64  `json:"x509DefaultTtl,omitempty"`
	X509MaxTTL     *int64  `json:"x509MaxTtl,omitempty"`
	JWTDefaultTTL  *int64  `json:"jwtDefaultTtl,omitempty"`
	JWTMaxTTL      *int64  `json:"jwtMaxTtl,omitempty"`
	PolicyMode     *string `json:"policyMode,omitempty"`
}

// TrustDomain is a tenant (GET /v1/trust-domains/{td}).
type TrustDomain struct {
	Name      string   `json:"name"`
	CreatedAt string   `json:"createdAt"`
	Settings  Settings `json:"settings"`
}

func tdPath(name string) string { return "/v1/trust-domains/" + PathEscape(name) }

// CreateTrustDomain creates a trust domain and its root CA.
func (c *Client) CreateTrustDomain(ctx context.Context, name string, settings SettingsInput) (*TrustDomain, error) {
	body := map[string]any{"name": name}
	if settings != (SettingsInput{}) {
		body["settings"] = settings
	}
	var out TrustDomain
	if err := c.Do(ctx, "POST", "/v1/trust-domains", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetTrustDomain reads one trust domain; a missing one is an *APIError with TRUST_DOMAIN_NOT_FOUND.
func (c *Client) GetTrustDomain(ctx context.Context, name string) (*TrustDomain, error) {
	var out TrustDomain
	if err := c.Do(ctx, "GET", tdPath(name), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateTrustDomain changes settings (PATCH); fields left nil keep their value.
func (c *Client) UpdateTrustDomain(ctx context.Context, name string, settings SettingsInput) (*TrustDomain, error) {
	var out TrustDomain
	if err := c.Do(ctx, "PATCH", tdPath(name), map[string]any{"settings": settings}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteTrustDomain deletes a trust domain with everything in it.
func (c *Client) DeleteTrustDomain(ctx context.Context, name string) error {
	return c.Do(ctx, "DELETE", tdPath(name), nil, nil)
}

// Entry is a registration entry as the API returns it.
type Entry struct {
	ID            string   `json:"id"`
	TrustDomain   string   `json:"trustDomain"`
	SpiffeID      string   `json:"spiffeId"`
	ParentID      string   `json:"parentId"`
	Selectors     []string `json:"selectors"`
	X509TTL       int64    `json:"x509Ttl"`
	JWTTTL        int64    `json:"jwtTtl"`
	DNSNames      []string `json:"dnsNames"`
	Admin         bool     `json:"admin"`
	Downstream    bool     `json:"downstream"`
	FederatesWith []string `json:"federatesWith"`
	// ExpiresAt is an RFC 3339 time, or nil for never.
	ExpiresAt *string `json:"expiresAt"`
	CreatedAt string  `json:"createdAt"`
	UpdatedAt string  `json:"updatedAt"`
	Revision  int64   `json:"revision"`
}

// EntryInput is the body of a create (all required fields set) or a PATCH (only the fields to
// change). Nil fields are not sent; ClearExpiresAt sends `"expiresAt": null`.
type EntryInput struct {
	SpiffeID       *string
	ParentID       *string
	Selectors      []string
	X509TTL        *int64
	JWTTTL         *int64
	DNSNames       []string
	Admin          *bool
	Downstream     *bool
	FederatesWith  []string
	ExpiresAt      *string
	ClearExpiresAt bool
}

// MarshalJSON sends exactly the fields that are set: the API refuses unknown fields and a null
// where it expects an array, and an empty array must go out as [] (it clears the list).
func (in EntryInput) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	if in.SpiffeID != nil {
		m["spiffeId"] = *in.SpiffeID
	}
	if in.ParentID != nil {
		m["parentId"] = *in.ParentID
	}
	if in.Selectors != nil {
		m["selectors"] = in.Selectors
	}
	if in.X509TTL != nil {
		m["x509Ttl"] = *in.X509TTL
	}
	if in.JWTTTL != nil {
		m["jwtTtl"] = *in.JWTTTL
	}
	if in.DNSNames != nil {
		m["dnsNames"] = in.DNSNames
	}
	if in.Admin != nil {
		m["admin"] = *in.Admin
	}
	if in.Downstream != nil {
		m["downstream"] = *in.Downstream
	}
	if in.FederatesWith != nil {
		m["federatesWith"] = in.FederatesWith
	}
	if in.ExpiresAt != nil {
		m["expiresAt"] = *in.ExpiresAt
	} else if in.ClearExpiresAt {
		m["expiresAt"] = nil
	}
	return json.Marshal(m)
}

func entryPath(td, id string) string { return tdPath(td) + "/entries/" + PathEscape(id) }

// CreateEntry creates a registration entry.
func (c *Client) CreateEntry(ctx context.Context, td string, in EntryInput) (*Entry, error) {
	var out Entry
	if err := c.Do(ctx, "POST", tdPath(td)+"/entries", in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetEntry reads one entry; a missing one is an *APIError with ENTRY_NOT_FOUND.
func (c *Client) GetEntry(ctx context.Context, td, id string) (*Entry, error) {
	var out Entry
	if err := c.Do(ctx, "GET", entryPath(td, id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateEntry changes the fields set in in (PATCH).
func (c *Client) UpdateEntry(ctx context.Context, td, id string, in EntryInput) (*Entry, error) {
	var out Entry
	if err := c.Do(ctx, "PATCH", entryPath(td, id), in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteEntry deletes an entry.
func (c *Client) DeleteEntry(ctx context.Context, td, id string) error {
	return c.Do(ctx, "DELETE", entryPath(td, id), nil, nil)
}

// JoinToken is a join token. Token (the secret) is set only in the answer to its creation.
type JoinToken struct {
	ID        string  `json:"id"`
	Token     string  `json:"token,omitempty"`
	SpiffeID  *string `json:"spiffeId"`
	ExpiresAt string  `json:"expiresAt"`
	CreatedAt string  `json:"createdAt"`
}

// JoinTokenInput is the body of a join token creation.
type JoinTokenInput struct {
	TTL      *int64  `json:"ttl,omitempty"`
	SpiffeID *string `json:"spiffeId,omitempty"`
}

// CreateJoinToken creates a single-use join token; the answer is the only time its secret is seen.
func (c *Client) CreateJoinToken(ctx context.Context, td string, in JoinTokenInput) (*JoinToken, error) {
	var out JoinToken
	if err := c.Do(ctx, "POST", tdPath(td)+"/join-tokens", in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListJoinTokens lists the unused join tokens (consumed, expired and revoked ones are not listed).
func (c *Client) ListJoinTokens(ctx context.Context, td string) ([]JoinToken, error) {
	var out struct {
		JoinTokens []JoinToken `json:"joinTokens"`
	}
	if err := c.Do(ctx, "GET", tdPath(td)+"/join-tokens", nil, &out); err != nil {
		return nil, err
	}
	return out.JoinTokens, nil
}

// FindJoinToken returns the unused join token with id, or nil when it is not (or no longer) listed.
func (c *Client) FindJoinToken(ctx context.Context, td, id string) (*JoinToken, error) {
	tokens, err := c.ListJoinTokens(ctx, td)
	if err != nil {
		return nil, err
	}
	for i := range tokens {
		if tokens[i].ID == id {
			return &tokens[i], nil
		}
	}
	return nil, nil
}

// RevokeJoinToken deletes an unused join token; a used, expired or revoked one is JOIN_TOKEN_NOT_FOUND.
func (c *Client) RevokeJoinToken(ctx context.Context, td, id string) error {
	return c.Do(ctx, "DELETE", tdPath(td)+"/join-tokens/"+PathEscape(id), nil, nil)
}

// Bundle is a trust domain's bundle in both of its forms.
type Bundle struct {
	PEM string
	// SPIFFE is the SPIFFE bundle (a JWK Set) as the server sent it.
	SPIFFE   json.RawMessage
	Sequence int64
}

// GetBundle reads the bundle as PEM and as a SPIFFE bundle.
func (c *Client) GetBundle(ctx context.Context, td string) (*Bundle, error) {
	var spiffe []byte
	if err := c.Do(ctx, "GET", tdPath(td)+"/bundle?format=spiffe", nil, &spiffe); err != nil {
		return nil, err
	}
	var meta struct {
		Keys     []json.RawMessage `json:"keys"`
		Sequence *int64            `json:"spiffe_sequence"`
	}
	if err := json.Unmarshal(spiffe, &meta); err != nil || meta.Keys == nil {
		return nil, &TransportError{Kind: NotSigil, Server: c.Server(), Err: fmt.Errorf("the SPIFFE bundle of %s is not a JWK Set", td)}
	}
	var pemBytes []byte
	if err := c.Do(ctx, "GET", tdPath(td)+"/bundle?format=pem", nil, &pemBytes); err != nil {
		return nil, err
	}
	b := &Bundle{PEM: string(pemBytes), SPIFFE: json.RawMessage(spiffe)}
	if meta.Sequence != nil {
		b.Sequence = *meta.Sequence
	}
	return b, nil
}

// Agent is an attested node agent.
type Agent struct {
	SpiffeID      string   `json:"spiffeId"`
	Attestor      string   `json:"attestor"`
	Selectors     []string `json:"selectors"`
	SvidExpiresAt string   `json:"svidExpiresAt"`
	AttestedAt    string   `json:"attestedAt"`
	LastSeenAt    string   `json:"lastSeenAt"`
	Banned        bool     `json:"banned"`
}

// ListAgents lists a trust domain's attested agents.
func (c *Client) ListAgents(ctx context.Context, td string) ([]Agent, error) {
	var out struct {
		Agents []Agent `json:"agents"`
	}
	if err := c.Do(ctx, "GET", tdPath(td)+"/agents", nil, &out); err != nil {
		return nil, err
	}
	return out.Agents, nil
}
