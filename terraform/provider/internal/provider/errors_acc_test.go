package provider

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"regexp"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
)

// Bad input: each diagnostic names what to change and how.

func expectError(t *testing.T, config string, want *regexp.Regexp) {
	t.Helper()
	s := testServer(t)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testProviders,
		CheckDestroy:             checkEntriesDestroyed(s),
		Steps:                    []resource.TestStep{{Config: config, ExpectError: want}},
	})
}

// onProvider matches Terraform's pointer at a provider attribute: `in provider "sigil":` and its line.
func onProvider(attr string) string {
	return `in provider "sigil":\s*\n\s*\d+:\s+` + attr + `\s+=`
}

// onAttribute matches Terraform's pointer at a resource attribute's line.
func onAttribute(attr string) string {
	return `in resource "[a-z_]+" "[a-z_]+":\s*\n\s*\d+:\s+` + attr + `\s+=`
}

func providerWith(server, token, ca string) string {
	return fmt.Sprintf(`
provider "sigil" {
  server    = %q
  token     = %q
  ca_bundle = %q
}

resource "sigil_trust_domain" "td" {
  name = "acc-bad-provider.example.org"
}
`, server, token, ca)
}

func TestAccWrongToken(t *testing.T) {
	s := testServer(t)
	expectError(t, providerWith(s.URL, "sat_"+"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", s.CAFile),
		regexp.MustCompile(`(?s)The Sigil server refused the API token.*`+onProvider("token")+`.*TOKEN_INVALID.*admin\.token.*sigil\s+api-token\s+create`))
}

func TestAccUnreachableServer(t *testing.T) {
	s := testServer(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "https://" + l.Addr().String()
	_ = l.Close()
	expectError(t, providerWith(closed, s.Token, s.CAFile),
		regexp.MustCompile(`(?s)Cannot reach the Sigil server.*`+onProvider("server")+`.*connection\s+refused.*`+"`server`"+`.*SIGIL_SERVER`))
}

func TestAccUntrustedCA(t *testing.T) {
	s := testServer(t)
	expectError(t, providerWith(s.URL, s.Token, unrelatedCA(t)),
		regexp.MustCompile(`(?s)The Sigil server's certificate is not trusted.*`+onProvider("ca_bundle")+`.*unknown\s+authority.*`+"`ca_bundle`"+`.*server-ca\.pem`))
}

func TestAccBadCABundleFile(t *testing.T) {
	s := testServer(t)
	expectError(t, providerWith(s.URL, s.Token, "/nonexistent/server-ca.pem"),
		regexp.MustCompile(`(?s)`+onProvider("ca_bundle")+`.*ca_bundle\s+is\s+neither\s+PEM\s+text\s+nor\s+a\s+readable\s+file.*server-ca\.pem`))
}

func TestAccInvalidTrustDomainName(t *testing.T) {
	s := testServer(t)
	for name, want := range map[string]string{
		"Example.org":      `Invalid trust domain name.*must be lowercase; use "example.org"`,
		"example.org:8443": `Invalid trust domain name.*cannot carry a port`,
	} {
		expectError(t, s.providerConfig()+fmt.Sprintf("resource \"sigil_trust_domain\" \"td\" {\n  name = %q\n}\n", name),
			regexp.MustCompile(`(?s)`+regexp.MustCompile(` `).ReplaceAllString(want, `\s+`)))
	}
}

func badEntry(s *sigilServer, td, parent, selector string) string {
	return s.providerConfig() + fmt.Sprintf(`
resource "sigil_trust_domain" "td" {
  name = %[1]q
}

resource "sigil_registration_entry" "web" {
  trust_domain = sigil_trust_domain.td.name
  spiffe_id    = "spiffe://%[1]s/web"
  parent_id    = %[2]q
  selectors    = [%[3]q]
}
`, td, parent, selector)
}

func TestAccEntryParentNotFound(t *testing.T) {
	s := testServer(t)
	expectError(t, badEntry(s, "acc-parent.example.org", "spiffe://acc-parent.example.org/no/such/node", "unix:uid:1000"),
		regexp.MustCompile(`(?s)ENTRY_PARENT_NOT_FOUND.*`+onAttribute("parent_id")+`.*is\s+neither\s+an\s+agent\s+ID`))
}

func TestAccEntryInvalidSelector(t *testing.T) {
	s := testServer(t)
	agent := "spiffe://acc-selector.example.org/sigil/agent/join_token/n1"
	// The shape is checked at plan time...
	expectError(t, badEntry(s, "acc-selector.example.org", agent, "uid1000"),
		regexp.MustCompile(`(?s)Invalid selector.*has\s+no\s+type.*TYPE:KEY\[:VALUE\]`))
	// ...types, keys and values by the server at apply time, on the selectors attribute.
	expectError(t, badEntry(s, "acc-selector.example.org", agent, "unix:uid:abc"),
		regexp.MustCompile(`(?s)SELECTOR_INVALID.*`+onAttribute("selectors")+`.*unix:uid:abc.*must\s+be\s+a\s+non-negative\s+integer`))
}

func TestAccEntryForeignSpiffeID(t *testing.T) {
	s := testServer(t)
	expectError(t, badEntry(s, "acc-foreign.example.org", "spiffe://other.example.org/sigil/agent/x/y", "unix:uid:1"),
		regexp.MustCompile(`(?s)Invalid parent ID.*belongs\s+to\s+trust\s+domain\s+"other.example.org",\s+not\s+"acc-foreign.example.org"`))
}

func TestAccInvalidDuration(t *testing.T) {
	s := testServer(t)
	expectError(t, s.providerConfig()+"resource \"sigil_trust_domain\" \"td\" {\n  name = \"acc-duration.example.org\"\n  x509_max_ttl = \"soon\"\n}\n",
		regexp.MustCompile(`(?s)Invalid duration.*"soon"\s+is\s+not\s+a\s+duration`))
	expectError(t, s.providerConfig()+"resource \"sigil_trust_domain\" \"td\" {\n  name = \"acc-duration.example.org\"\n  x509_max_ttl = \"2h\"\n  x509_default_ttl = \"3h\"\n}\n",
		regexp.MustCompile(`(?s)Inconsistent trust domain settings.*x509_default_ttl\s+must\s+not\s+exceed\s+x509_max_ttl`))
}

func TestAccTTLTooLongFromServer(t *testing.T) {
	s := testServer(t)
	// Only the server knows the trust domain's limit of an existing domain: TTL_TOO_LONG on x509_ttl.
	expectError(t, s.providerConfig()+`
resource "sigil_trust_domain" "td" {
  name = "acc-ttl.example.org"
}

resource "sigil_registration_entry" "web" {
  trust_domain = sigil_trust_domain.td.name
  spiffe_id    = "spiffe://acc-ttl.example.org/web"
  parent_id    = "spiffe://acc-ttl.example.org/sigil/server"
  selectors    = ["unix:uid:1"]
  x509_ttl     = "2d"
}
`, regexp.MustCompile(`(?s)TTL_TOO_LONG.*`+onAttribute("x509_ttl")+`.*x509Ttl\s+172800s\s+exceeds`))
}

// unrelatedCA is a CA certificate that did not sign the server's certificate.
func unrelatedCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(2),
		Subject:               pkix.Name{CommonName: "an unrelated CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
