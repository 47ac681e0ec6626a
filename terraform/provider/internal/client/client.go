// Package client is the provider's HTTPS client for Sigil's /v1 API. It owns TLS (1.2 or later, and
// only the CA bundle it was given), the bearer token, timeouts, retries of requests the server refused
// before doing anything (429, 503), and the decoding of the API's error shape
// `{ "error": { "code", "message" } }` into *APIError. It knows nothing about Terraform.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultServer is the address of a local `npm start`.
const DefaultServer = "https://127.0.0.1:8443"

// maxResponseBytes bounds what the client reads from a response: the API never sends more.
const maxResponseBytes = 8 << 20

// Config is what the client needs; the provider fills it from its configuration and environment.
type Config struct {
	// Server is the base URL, https://HOST:PORT.
	Server string
	// Token is the bearer token sent with every request.
	Token string
	// CABundlePEM holds the CA certificates to trust. When empty, the system roots are used.
	CABundlePEM []byte
	// UserAgent names the caller, e.g. terraform-provider-sigil/0.1.0.
	UserAgent string
	// Timeout bounds each attempt of a request (connect, TLS, answer). Zero means 60 seconds.
	Timeout time.Duration
	// MaxRetries is how often a request refused with 429 or 503 is retried. Negative means none.
	MaxRetries int
}

// Client talks to one Sigil server. It is safe for concurrent use.
type Client struct {
	base       *url.URL
	token      string
	userAgent  string
	http       *http.Client
	maxRetries int
}

// ConfigError is a problem with one configuration field, found before any request is sent.
type ConfigError struct {
	// Field is "server", "token" or "ca_bundle".
	Field   string
	Message string
}

func (e *ConfigError) Error() string { return e.Message }

// ParseServer checks that server is an https:// URL with a host and nothing after the port.
func ParseServer(server string) (*url.URL, error) {
	if !strings.Contains(server, "://") {
		return nil, &ConfigError{Field: "server", Message: fmt.Sprintf("%q must be an https:// URL (Sigil serves its API over TLS only), e.g. %s", server, DefaultServer)}
	}
	u, err := url.Parse(strings.TrimSpace(server))
	if err != nil || u.Host == "" {
		return nil, &ConfigError{Field: "server", Message: fmt.Sprintf("%q is not a URL; write it like %s", server, DefaultServer)}
	}
	if u.Scheme != "https" {
		return nil, &ConfigError{Field: "server", Message: fmt.Sprintf("%q must be an https:// URL (Sigil serves its API over TLS only), e.g. %s", server, DefaultServer)}
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, &ConfigError{Field: "server", Message: fmt.Sprintf("%q must be only https://HOST:PORT, without user info, path or query", server)}
	}
	u.Path = ""
	return u, nil
}

// LoadCABundle accepts either PEM text or the path of a PEM file, and returns the PEM bytes after
// checking that they hold at least one certificate.
func LoadCABundle(value string) ([]byte, error) {
	data := []byte(value)
	source := "the ca_bundle value"
	if !strings.Contains(value, "-----BEGIN") {
		p := strings.TrimSpace(value)
		if strings.HasPrefix(p, "~/") {
			if home, err := os.UserHomeDir(); err == nil {
				p = filepath.Join(home, p[2:])
			}
		}
		read, err := os.ReadFile(p)
		if err != nil {
			return nil, &ConfigError{Field: "ca_bundle", Message: fmt.Sprintf("ca_bundle is neither PEM text nor a readable file: %v. Give the server's server-ca.pem (in the server's data directory, e.g. .sigil/server-ca.pem) as a path or as its contents", err)}
		}
		data, source = read, fmt.Sprintf("the file %s", p)
	}
	pool := x509.NewCertPool()
	rest, n := data, 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, &ConfigError{Field: "ca_bundle", Message: fmt.Sprintf("%s holds a certificate that does not parse: %v", source, err)}
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, &ConfigError{Field: "ca_bundle", Message: fmt.Sprintf("%s holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the server's server-ca.pem", source)}
	}
	return data, nil
}

// New builds a client. It sends nothing; call WhoAmI to check the server, the CA and the token.
func New(cfg Config) (*Client, error) {
	base, err := ParseServer(cfg.Server)
	if err != nil {
		return nil, err
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(cfg.CABundlePEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cfg.CABundlePEM) {
			return nil, &ConfigError{Field: "ca_bundle", Message: "ca_bundle holds no PEM certificate; give the server's server-ca.pem"}
		}
		// Only the given CA: a server certificate from any other CA, public or not, is refused.
		tlsConfig.RootCAs = pool
	}
	transport := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
		ForceAttemptHTTP2:     true,
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	retries := cfg.MaxRetries
	if retries == 0 {
		retries = 3
	} else if retries < 0 {
		retries = 0
	}
	ua := cfg.UserAgent
	if ua == "" {
		ua = "terraform-provider-sigil"
	}
	return &Client{
		base:       base,
		token:      cfg.Token,
		userAgent:  ua,
		http:       &http.Client{Transport: transport, Timeout: timeout},
		maxRetries: retries,
	}, nil
}

// Server is the base URL the client talks to.
func (c *Client) Server() string { return c.base.String() }

// APIError is a request the server refused, with the API's stable code and its message.
type APIError struct {
	Status  int
	Code    string
	Message string
	// Details is the error's optional `details` object as the server sent it (e.g. the line, column
	// and path of a refused policy field), or nil.
	Details json.RawMessage
	Method  string
	Path    string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s %s: %s (HTTP %d): %s", e.Method, e.Path, e.Code, e.Status, e.Message)
}

// TransportErrorKind says why a request got no answer from the API.
type TransportErrorKind int

const (
	// Unreachable: the connection failed (refused, no route, DNS).
	Unreachable TransportErrorKind = iota + 1
	// Timeout: no answer in time.
	Timeout
	// UntrustedCertificate: the server's certificate does not chain to the trusted CA bundle.
	UntrustedCertificate
	// CertificateNameMismatch: the certificate is trusted but not issued for the server's host name.
	CertificateNameMismatch
	// TLSFailure: any other TLS problem (protocol version, handshake).
	TLSFailure
	// NotSigil: an answer came, but not in the API's shape (wrong port, a proxy, plain HTTP).
	NotSigil
)

// TransportError is a request that got no usable answer from the API.
type TransportError struct {
	Kind   TransportErrorKind
	Server string
	Err    error
}

func (e *TransportError) Error() string { return fmt.Sprintf("%s: %v", e.Server, e.Err) }
func (e *TransportError) Unwrap() error { return e.Err }

// ErrorCode is the API error code of err, or "" when err is not an *APIError.
func ErrorCode(err error) string {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code
	}
	return ""
}

// HasCode reports whether err is an *APIError with one of codes.
func HasCode(err error, codes ...string) bool {
	code := ErrorCode(err)
	for _, c := range codes {
		if code == c {
			return true
		}
	}
	return false
}

func (c *Client) classify(err error) error {
	server := c.base.String()
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var recordHeader tls.RecordHeaderError
	var netErr net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return err
	case errors.As(err, &unknownAuthority):
		return &TransportError{Kind: UntrustedCertificate, Server: server, Err: err}
	case errors.As(err, &hostname):
		return &TransportError{Kind: CertificateNameMismatch, Server: server, Err: err}
	case errors.As(err, &invalid):
		return &TransportError{Kind: UntrustedCertificate, Server: server, Err: err}
	case errors.As(err, &recordHeader), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return &TransportError{Kind: NotSigil, Server: server, Err: fmt.Errorf("the server did not answer with TLS (is it plain HTTP, or another service on that port?): %w", err)}
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return &TransportError{Kind: Timeout, Server: server, Err: err}
	case strings.Contains(err.Error(), "tls:"):
		return &TransportError{Kind: TLSFailure, Server: server, Err: err}
	default:
		return &TransportError{Kind: Unreachable, Server: server, Err: err}
	}
}

// Do sends one request and decodes a JSON answer into out (when out is not nil). A *[]byte out
// receives the raw body instead. Errors are *APIError, *TransportError or the context's error.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("encoding the request body: %w", err)
		}
	}
	// path is already escaped (PathEscape) and may carry a query.
	target := strings.TrimSuffix(c.base.String(), "/") + path
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(payload))
		if err != nil {
			return fmt.Errorf("building the request: %w", err)
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", c.userAgent)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		if payload != nil {
			req.Header.Set("Content-Type", "application/json")
		} else {
			req.Body, req.ContentLength = http.NoBody, 0
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return c.classify(err)
		}
		data, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
		_ = resp.Body.Close()
		if readErr != nil {
			return c.classify(readErr)
		}
		if (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) && attempt < c.maxRetries {
			// Refused before any work was done, so a retry is safe for every method.
			if err := sleep(ctx, retryAfter(resp.Header.Get("Retry-After"), attempt)); err != nil {
				return err
			}
			continue
		}
		if resp.StatusCode >= 400 {
			return decodeError(resp, data, method, path)
		}
		switch o := out.(type) {
		case nil:
			return nil
		case *[]byte:
			*o = data
			return nil
		default:
			if !strings.Contains(resp.Header.Get("Content-Type"), "json") {
				return &TransportError{Kind: NotSigil, Server: c.base.String(), Err: fmt.Errorf("%s %s answered %s, not JSON: is %s a Sigil server?", method, path, resp.Header.Get("Content-Type"), c.base)}
			}
			if err := json.Unmarshal(data, out); err != nil {
				return &TransportError{Kind: NotSigil, Server: c.base.String(), Err: fmt.Errorf("%s %s: the answer does not decode: %w", method, path, err)}
			}
			return nil
		}
	}
}

func decodeError(resp *http.Response, data []byte, method, path string) error {
	var shape struct {
		Error *struct {
			Code    string          `json:"code"`
			Message string          `json:"message"`
			Details json.RawMessage `json:"details"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &shape) == nil && shape.Error != nil && shape.Error.Code != "" {
		details := shape.Error.Details
		if string(details) == "null" {
			details = nil
		}
		return &APIError{Status: resp.StatusCode, Code: shape.Error.Code, Message: shape.Error.Message, Details: details, Method: method, Path: path}
	}
	text := strings.TrimSpace(string(data))
	if len(text) > 300 {
		text = text[:300] + "…"
	}
	if text == "" {
		text = http.StatusText(resp.StatusCode)
	}
	return &APIError{Status: resp.StatusCode, Code: "HTTP_" + strconv.Itoa(resp.StatusCode), Message: text, Method: method, Path: path}
}

func retryAfter(header string, attempt int) time.Duration {
	backoff := time.Duration(250*(1<<attempt)) * time.Millisecond
	if s, err := strconv.Atoi(strings.TrimSpace(header)); err == nil && s >= 0 {
		backoff = time.Duration(s) * time.Second
	}
	if backoff > 10*time.Second {
		backoff = 10 * time.Second
	}
	return backoff
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// PathEscape escapes one path segment (a trust domain name, an ID).
func PathEscape(s string) string { return url.PathEscape(s) }
