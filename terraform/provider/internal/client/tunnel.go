package client

import "context"

// Tunnel is a service behind an agent, reached through the broker
// (GET /v1/trust-domains/{td}/tunnels/{name}). There is no update: a tunnel is created and deleted.
type Tunnel struct {
	TrustDomain string `json:"trustDomain"`
	Name        string `json:"name"`
	SpiffeID    string `json:"spiffeId"`
	Agent       string `json:"agent"`
	Service     string `json:"service"`
	// Port is nil when the tunnel declares none.
	Port      *int64 `json:"port"`
	CreatedAt string `json:"createdAt"`
}

// TunnelInput creates a tunnel. Nil fields are left out (the server's service defaults to Name).
type TunnelInput struct {
	Name     string  `json:"name"`
	SpiffeID string  `json:"spiffeId"`
	Agent    string  `json:"agent"`
	Service  *string `json:"service,omitempty"`
	Port     *int64  `json:"port,omitempty"`
}

func tunnelPath(td, name string) string { return tdPath(td) + "/tunnels/" + PathEscape(name) }

// CreateTunnel declares a tunnel; TUNNEL_INVALID (400) and TUNNEL_EXISTS (409) are *APIError.
func (c *Client) CreateTunnel(ctx context.Context, td string, in TunnelInput) (*Tunnel, error) {
	var out Tunnel
	if err := c.Do(ctx, "POST", tdPath(td)+"/tunnels", in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetTunnel reads one tunnel; a missing one is an *APIError with TUNNEL_NOT_FOUND.
func (c *Client) GetTunnel(ctx context.Context, td, name string) (*Tunnel, error) {
	var out Tunnel
	if err := c.Do(ctx, "GET", tunnelPath(td, name), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListTunnels lists a trust domain's tunnels.
func (c *Client) ListTunnels(ctx context.Context, td string) ([]Tunnel, error) {
	var out struct {
		Tunnels []Tunnel `json:"tunnels"`
	}
	if err := c.Do(ctx, "GET", tdPath(td)+"/tunnels", nil, &out); err != nil {
		return nil, err
	}
	return out.Tunnels, nil
}

// DeleteTunnel deletes a tunnel; open connections through it end at the broker.
func (c *Client) DeleteTunnel(ctx context.Context, td, name string) error {
	return c.Do(ctx, "DELETE", tunnelPath(td, name), nil, nil)
}
