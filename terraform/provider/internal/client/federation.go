package client

import "context"

// Federation is a trust domain's federation with a foreign one
// (GET /v1/trust-domains/{td}/federations/{foreign}).
type Federation struct {
	TrustDomain        string  `json:"trustDomain"`
	ForeignTrustDomain string  `json:"foreignTrustDomain"`
	BundleEndpointURL  string  `json:"bundleEndpointUrl"`
	Profile            string  `json:"profile"`
	EndpointSpiffeID   *string `json:"endpointSpiffeId"`
	CABundlePEM        *string `json:"caBundlePem"`
	Sequence           int64   `json:"sequence"`
	Roots              int64   `json:"roots"`
	JWTKeys            int64   `json:"jwtKeys"`
	RefreshHintSeconds int64   `json:"refreshHintSeconds"`
	LastRefreshAt      *string `json:"lastRefreshAt"`
	LastError          *string `json:"lastError"`
	LastErrorAt        *string `json:"lastErrorAt"`
	CreatedAt          string  `json:"createdAt"`
}

// FederationInput creates a federation. Nil fields are left out.
type FederationInput struct {
	ForeignTrustDomain string  `json:"foreignTrustDomain"`
	BundleEndpointURL  string  `json:"bundleEndpointUrl"`
	Profile            *string `json:"profile,omitempty"`
	EndpointSpiffeID   *string `json:"endpointSpiffeId,omitempty"`
	TrustBundle        *string `json:"trustBundle,omitempty"`
	CABundlePEM        *string `json:"caBundlePem,omitempty"`
}

func federationPath(td, foreign string) string {
	return tdPath(td) + "/federations/" + PathEscape(foreign)
}

// CreateFederation federates td with a foreign trust domain; the server fetches the bundle once (a failure
// is in LastError, not an error).
func (c *Client) CreateFederation(ctx context.Context, td string, in FederationInput) (*Federation, error) {
	var out Federation
	if err := c.Do(ctx, "POST", tdPath(td)+"/federations", in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetFederation reads one federation; a missing one is an *APIError with FEDERATION_NOT_FOUND.
func (c *Client) GetFederation(ctx context.Context, td, foreign string) (*Federation, error) {
	var out Federation
	if err := c.Do(ctx, "GET", federationPath(td, foreign), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteFederation stops federating.
func (c *Client) DeleteFederation(ctx context.Context, td, foreign string) error {
	return c.Do(ctx, "DELETE", federationPath(td, foreign), nil, nil)
}
