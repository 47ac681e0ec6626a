package provider

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"

	"github.com/sigil-dev/terraform-provider-sigil/internal/client"
)

// How a failed request becomes a diagnostic. Every diagnostic names what to change: a provider
// attribute (server, token, ca_bundle) for connection and authentication problems, a resource
// attribute when the API's error is about one of its fields, and always the fix.

const (
	fixServer = "Check the provider's `server` attribute (or SIGIL_SERVER; default " + client.DefaultServer + "): " +
		"is the Sigil server running (`npm start`, or `sigil server run --listen HOST:PORT`) and listening at that address?"
	fixCABundle = "Set the provider's `ca_bundle` attribute (or SIGIL_CA_BUNDLE) to the server's server-ca.pem, " +
		"which the server writes into its data directory (for `npm start`: .sigil/server-ca.pem). A path or the PEM contents both work."
	fixToken = "Set the provider's `token` attribute (or SIGIL_TOKEN) to a valid Sigil API token. The bootstrap admin token is in " +
		"the server's data directory (for `npm start`: .sigil/admin.token); create a token for Terraform with " +
		"`sigil api-token create --name terraform --grant '*:admin'` (or `--grant TRUST_DOMAIN:admin` to manage one trust domain)."
	fixRole = "Use a token with an admin grant on the trust domain (`sigil api-token create --name terraform --grant TRUST_DOMAIN:admin`); " +
		"creating trust domains needs an installation admin token (`--grant '*:admin'`), such as the bootstrap token in .sigil/admin.token."
)

// problem is a failed request described for a person: which provider attribute to fix (if any), a
// summary and a detail.
type problem struct {
	providerAttribute string
	summary           string
	detail            string
}

// describe explains err; action says what the provider was doing ("create trust domain example.org").
func describe(err error, action string) problem {
	var te *client.TransportError
	var apiErr *client.APIError
	var ce *client.ConfigError
	switch {
	case errors.As(err, &ce):
		return problem{ce.Field, "Invalid Sigil provider configuration", ce.Message}
	case errors.As(err, &te):
		switch te.Kind {
		case client.UntrustedCertificate:
			return problem{"ca_bundle", "The Sigil server's certificate is not trusted",
				fmt.Sprintf("Could not %s: the certificate of %s does not chain to the trusted CA bundle (%v).\n\n%s", action, te.Server, te.Err, fixCABundle)}
		case client.CertificateNameMismatch:
			return problem{"server", "The Sigil server's certificate names another host",
				fmt.Sprintf("Could not %s: %v.\n\nConnect with a host name or IP address the server's certificate names: its --listen host or one of `serverNames` in its configuration.", action, te.Err)}
		case client.Timeout:
			return problem{"server", "The Sigil server did not answer in time",
				fmt.Sprintf("Could not %s: %v.\n\n%s", action, te.Err, fixServer)}
		case client.TLSFailure:
			return problem{"server", "TLS with the Sigil server failed",
				fmt.Sprintf("Could not %s: %v. The provider speaks TLS 1.2 or later only.\n\n%s\n\n%s", action, te.Err, fixServer, fixCABundle)}
		case client.NotSigil:
			return problem{"server", "The server did not answer like a Sigil server",
				fmt.Sprintf("Could not %s: %v.\n\n%s", action, te.Err, fixServer)}
		default:
			return problem{"server", "Cannot reach the Sigil server",
				fmt.Sprintf("Could not %s: %v.\n\n%s", action, te.Err, fixServer)}
		}
	case errors.As(err, &apiErr):
		switch apiErr.Code {
		case "UNAUTHENTICATED", "TOKEN_INVALID", "TOKEN_EXPIRED":
			return problem{"token", "The Sigil server refused the API token",
				fmt.Sprintf("Could not %s: %s: %s.\n\n%s", action, apiErr.Code, apiErr.Message, fixToken)}
		case "FORBIDDEN":
			return problem{"token", "The Sigil API token lacks a role",
				fmt.Sprintf("Could not %s: %s: %s.\n\n%s", action, apiErr.Code, apiErr.Message, fixRole)}
		case "RATE_LIMITED":
			return problem{"", "The Sigil server is rate limiting this token",
				fmt.Sprintf("Could not %s: %s. Retry later, or run Terraform with less parallelism (-parallelism=2).", action, apiErr.Message)}
		}
		return problem{"", fmt.Sprintf("Sigil refused to %s: %s", action, apiErr.Code), apiErr.Message}
	default:
		return problem{"", fmt.Sprintf("Could not %s", action), err.Error()}
	}
}

// fieldHint maps an API error to the resource attribute it is about.
type fieldHint func(code, message string) (path.Path, bool)

// byCodeAndField builds a fieldHint from error codes, and from API field names quoted in messages
// (the server names the field it refused: "x509Ttl 90000s exceeds ...", "body field settings.caTtl ...").
func byCodeAndField(codes map[string]string, fields [][2]string) fieldHint {
	return func(code, message string) (path.Path, bool) {
		if attr, ok := codes[code]; ok {
			return path.Root(attr), true
		}
		// The field named first is the one refused: "x509DefaultTtl must not exceed x509MaxTtl".
		best, at := -1, ""
		for _, f := range fields {
			if i := strings.Index(message, f[0]); i >= 0 && (best < 0 || i < best) {
				best, at = i, f[1]
			}
		}
		if best < 0 {
			return path.Empty(), false
		}
		return path.Root(at), true
	}
}

// addError adds err to diags for a resource or data source: on the attribute the API complained
// about when hint finds one, else as a general error that names the provider attribute to fix.
func addError(diags *diag.Diagnostics, err error, action string, hint fieldHint) {
	p := describe(err, action)
	if p.providerAttribute != "" {
		diags.AddError(p.summary, p.detail+fmt.Sprintf("\n\n(provider \"sigil\" attribute: %s)", p.providerAttribute))
		return
	}
	if hint != nil {
		if code := client.ErrorCode(err); code != "" {
			var apiErr *client.APIError
			errors.As(err, &apiErr)
			if at, ok := hint(code, apiErr.Message); ok {
				diags.AddAttributeError(at, p.summary, p.detail)
				return
			}
		}
	}
	diags.AddError(p.summary, p.detail)
}

// addProviderError adds err to diags during provider configuration, on the provider attribute to fix.
func addProviderError(diags *diag.Diagnostics, err error, action string) {
	p := describe(err, action)
	if p.providerAttribute != "" {
		diags.AddAttributeError(path.Root(p.providerAttribute), p.summary, p.detail)
		return
	}
	diags.AddError(p.summary, p.detail)
}
