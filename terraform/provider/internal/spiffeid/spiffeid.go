// Package spiffeid checks the syntax of the names Sigil's API accepts: trust domain names, SPIFFE IDs,
// selectors and DNS SANs. It mirrors services/authority/spiffe-id.ts, services/registry/selectors.ts and
// services/registry/dns-name.ts so that `terraform plan` refuses what the server would refuse at apply
// time. The server stays the authority: this package never accepts anything the server would refuse
// for syntax, but it does not know the server's list of selector types, which grows with attestors.
package spiffeid

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

const (
	// MaxTrustDomainBytes is the SPIFFE limit on a trust domain name.
	MaxTrustDomainBytes = 255
	// MaxIDBytes is the SPIFFE limit on a whole SPIFFE ID.
	MaxIDBytes = 2048
	// MaxSelectorLength is the server's limit on one selector.
	MaxSelectorLength = 1024

	scheme = "spiffe://"
)

// ID is a parsed SPIFFE ID.
type ID struct {
	TrustDomain string
	// Path is "" for the trust domain's own ID, else "/seg/seg...".
	Path string
}

func (id ID) String() string { return scheme + id.TrustDomain + id.Path }

func isTrustDomainChar(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_'
}

func isPathChar(c byte) bool {
	return isTrustDomainChar(c) || (c >= 'A' && c <= 'Z')
}

// describe names the character at byte offset i for an error message.
func describe(s string, i int) string {
	r, _ := utf8.DecodeRuneInString(s[i:])
	return fmt.Sprintf("%s (U+%04X) at index %d", strconv.QuoteToASCII(string(r)), r, i)
}

// ValidateTrustDomain returns an error that says how to fix name unless it is a valid SPIFFE trust
// domain name: 1 to 255 bytes of lowercase letters, digits, ".", "-" and "_" (no port, no user info).
func ValidateTrustDomain(name string) error {
	if name == "" {
		return fmt.Errorf(`trust domain name is empty; use a name such as "example.org"`)
	}
	if len(name) > MaxTrustDomainBytes {
		return fmt.Errorf("trust domain name %s is %d bytes long; the limit is %d bytes", quote(name), len(name), MaxTrustDomainBytes)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if isTrustDomainChar(c) {
			continue
		}
		hint := `only lowercase letters, digits, ".", "-" and "_" are allowed`
		switch {
		case strings.Contains(name, "@"):
			hint = `a trust domain cannot carry user info; remove everything up to and including "@"`
		case strings.HasPrefix(name, "spiffe:"), strings.Contains(name, "/"):
			hint = `give the bare trust domain name, without "spiffe://" or a path`
		case c == ':':
			hint = `a trust domain cannot carry a port; remove ":<port>"`
		case c >= 'A' && c <= 'Z':
			hint = "trust domain names must be lowercase; use " + quote(strings.ToLower(name))
		}
		return fmt.Errorf("trust domain name %s contains %s: %s", quote(name), describe(name, i), hint)
	}
	return nil
}

// Parse parses and validates a SPIFFE ID such as spiffe://example.org/ns/prod/sa/api.
func Parse(id string) (ID, error) {
	if id == "" {
		return ID{}, fmt.Errorf(`SPIFFE ID is empty; expected "spiffe://<trust-domain>/<path>"`)
	}
	if len(id) > MaxIDBytes {
		return ID{}, fmt.Errorf("SPIFFE ID %s is %d bytes long; the limit is %d bytes", quote(id), len(id), MaxIDBytes)
	}
	if !strings.HasPrefix(id, scheme) {
		hint := `a SPIFFE ID starts with "spiffe://" followed by the trust domain`
		if strings.HasPrefix(strings.ToLower(id), scheme) {
			hint = `the scheme must be lowercase "spiffe://"`
		}
		return ID{}, fmt.Errorf("SPIFFE ID %s has an invalid scheme: %s", quote(id), hint)
	}
	if q := strings.IndexAny(id, "?#"); q >= 0 {
		return ID{}, fmt.Errorf("SPIFFE ID %s contains %s: SPIFFE IDs cannot have a query or fragment; remove it", quote(id), describe(id, q))
	}
	if p := strings.IndexByte(id, '%'); p >= 0 {
		return ID{}, fmt.Errorf("SPIFFE ID %s contains percent-encoding at index %d: SPIFFE IDs cannot be percent-encoded; use only letters, digits, \".\", \"-\" and \"_\" in path segments", quote(id), p)
	}
	rest := id[len(scheme):]
	td, path := rest, ""
	if slash := strings.IndexByte(rest, '/'); slash >= 0 {
		td, path = rest[:slash], rest[slash:]
	}
	if err := ValidateTrustDomain(td); err != nil {
		return ID{}, fmt.Errorf("SPIFFE ID %s: %w", quote(id), err)
	}
	if path == "" {
		return ID{TrustDomain: td}, nil
	}
	offset := len(scheme) + len(td)
	segStart := 1
	for i := 1; i <= len(path); i++ {
		if i < len(path) && path[i] != '/' {
			if !isPathChar(path[i]) {
				return ID{}, fmt.Errorf("SPIFFE ID %s contains %s: path segments may contain only letters, digits, \".\", \"-\" and \"_\"", quote(id), describe(id, offset+i))
			}
			continue
		}
		seg := path[segStart:i]
		if seg == "" {
			if i == len(path) {
				return ID{}, fmt.Errorf(`SPIFFE ID %s ends with "/"; remove the trailing slash`, quote(id))
			}
			return ID{}, fmt.Errorf(`SPIFFE ID %s contains an empty path segment ("//") at index %d; remove the extra slash`, quote(id), offset+i)
		}
		if seg == "." || seg == ".." {
			return ID{}, fmt.Errorf("SPIFFE ID %s contains a %s path segment; relative segments are not allowed, write the path out in full", quote(id), quote(seg))
		}
		segStart = i + 1
	}
	return ID{TrustDomain: td, Path: path}, nil
}

// ParseWorkload parses a SPIFFE ID that must name a workload (have a path) in trustDomain. An empty
// trustDomain skips the membership check (it is not known yet at plan time).
func ParseWorkload(id, trustDomain string) (ID, error) {
	parsed, err := ParseIn(id, trustDomain)
	if err != nil {
		return parsed, err
	}
	if parsed.Path == "" {
		return parsed, fmt.Errorf("SPIFFE ID %s has no path; a workload ID looks like spiffe://%s/service", quote(id), parsed.TrustDomain)
	}
	return parsed, nil
}

// ParseIn parses a SPIFFE ID and checks that it belongs to trustDomain (unless trustDomain is "").
func ParseIn(id, trustDomain string) (ID, error) {
	parsed, err := Parse(id)
	if err != nil {
		return parsed, err
	}
	if trustDomain != "" && parsed.TrustDomain != trustDomain {
		return parsed, fmt.Errorf("SPIFFE ID %s belongs to trust domain %s, not %s; use an ID of the form spiffe://%s/...", quote(id), quote(parsed.TrustDomain), quote(trustDomain), trustDomain)
	}
	return parsed, nil
}

// ValidateSelector checks the shape TYPE:KEY[:VALUE] of a selector. Which types and keys exist, and
// what their values look like, is the server's to decide (SELECTOR_INVALID at apply time).
func ValidateSelector(s string) error {
	const how = "write selectors as TYPE:KEY[:VALUE], e.g. unix:uid:1000 or k8s:ns:prod"
	if len(s) > MaxSelectorLength {
		return fmt.Errorf("selector %s is longer than %d characters", quote(s), MaxSelectorLength)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return fmt.Errorf("selector %s contains control characters; %s", quote(s), how)
		}
	}
	typ, rest, ok := strings.Cut(s, ":")
	if !ok || typ == "" {
		return fmt.Errorf("selector %s has no type; %s", quote(s), how)
	}
	for i := 0; i < len(typ); i++ {
		c := typ[i]
		if !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-') {
			return fmt.Errorf("selector %s has an invalid type %s (lowercase letters, digits, \"_\" and \"-\"); %s", quote(s), quote(typ), how)
		}
	}
	key, _, _ := strings.Cut(rest, ":")
	if key == "" {
		return fmt.Errorf("selector %s has no key after the type %s; %s", quote(s), quote(typ), how)
	}
	return nil
}

// ValidateDNSName checks a DNS SAN: lowercase RFC 1123 labels, optionally with one leading "*." label.
func ValidateDNSName(name string) error {
	host := strings.TrimPrefix(name, "*.")
	ok := len(name) <= 253 && host != ""
	if ok {
		for _, label := range strings.Split(host, ".") {
			if !validLabel(label) {
				ok = false
				break
			}
		}
	}
	if !ok {
		return fmt.Errorf("DNS name %s is invalid: use lowercase letters, digits and hyphens in dot-separated labels (a leading *. is allowed)", quote(name))
	}
	return nil
}

func validLabel(l string) bool {
	if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') {
			return false
		}
	}
	return true
}

// quote quotes untrusted input for a message: ASCII only, bounded.
func quote(s string) string {
	const max = 120
	if len(s) > max {
		return strconv.QuoteToASCII(s[:max]) + fmt.Sprintf(" (truncated, %d bytes)", len(s))
	}
	return strconv.QuoteToASCII(s)
}
