package provider

// The syntax of a network policy's fields, checked at plan time. It mirrors services/policy/parse.ts
// and services/policy/patterns.ts, so that `terraform plan` refuses what the server would refuse with
// POLICY_INVALID at apply time; the server stays the authority (it alone knows the selector types and
// keys its attestors define, and the trust domains one federates with).

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/sigil-dev/terraform-provider-sigil/internal/spiffeid"
)

var (
	ruleNamePattern  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	portRangePattern = regexp.MustCompile(`^(\d{1,5})-(\d{1,5})$`)
	singlePort       = regexp.MustCompile(`^\d{1,5}$`)
	dnsLabel         = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// keyedSelectorKeys are the selector keys whose value is itself KEY:VALUE; in allow_within they must
// name the inner key ("k8s:pod-label:app").
var keyedSelectorKeys = map[string]bool{"k8s:pod-label": true, "aws_iid:tag": true, "x509pop:subject": true}

func checkRuleName(name string) error {
	if !ruleNamePattern.MatchString(name) {
		return fmt.Errorf("rule name %q must be 1 to 128 letters, digits, \".\", \"-\" or \"_\", starting with a letter or digit, e.g. \"web-to-db\"", name)
	}
	return nil
}

// portRange is an inclusive range of ports; a single port has from == to.
type portRange struct{ from, to int }

func checkPortNumber(text, whole string) (int, error) {
	n, err := strconv.Atoi(text)
	if err != nil {
		return 0, fmt.Errorf("port %q is not a number; write a port such as \"443\" or a range such as \"8000-8100\"", whole)
	}
	if n < 1 || n > 65535 {
		if text == whole {
			return 0, fmt.Errorf("port %s is out of range: ports are 1 to 65535", text)
		}
		return 0, fmt.Errorf("port %s in %q is out of range: ports are 1 to 65535", text, whole)
	}
	return n, nil
}

// parsePort reads "5432" or "8000-8100".
func parsePort(s string) (portRange, error) {
	if singlePort.MatchString(s) {
		n, err := checkPortNumber(s, s)
		return portRange{n, n}, err
	}
	m := portRangePattern.FindStringSubmatch(s)
	if m == nil {
		return portRange{}, fmt.Errorf("port %q is neither a port such as \"443\" nor a range such as \"8000-8100\" (no spaces, no protocol)", s)
	}
	from, err := checkPortNumber(m[1], s)
	if err != nil {
		return portRange{}, err
	}
	to, err := checkPortNumber(m[2], s)
	if err != nil {
		return portRange{}, err
	}
	if from > to {
		return portRange{}, fmt.Errorf("port range %q is reversed; write \"%d-%d\"", s, to, from)
	}
	return portRange{from, to}, nil
}

func checkPort(s string) error { _, err := parsePort(s); return err }

// normalizePorts is what the server stores for a list of ports: sorted, overlapping and adjacent
// ranges merged, a range of one port written as the port. It fails on the first invalid port.
func normalizePorts(ports []string) ([]string, error) {
	ranges := make([]portRange, 0, len(ports))
	for _, p := range ports {
		r, err := parsePort(p)
		if err != nil {
			return nil, err
		}
		ranges = append(ranges, r)
	}
	sort.SliceStable(ranges, func(i, j int) bool { return ranges[i].from < ranges[j].from })
	merged := []portRange{}
	for _, r := range ranges {
		if n := len(merged); n > 0 && r.from <= merged[n-1].to+1 {
			if r.to > merged[n-1].to {
				merged[n-1].to = r.to
			}
			continue
		}
		merged = append(merged, r)
	}
	out := make([]string, len(merged))
	for i, r := range merged {
		if r.from == r.to {
			out[i] = strconv.Itoa(r.from)
		} else {
			out[i] = fmt.Sprintf("%d-%d", r.from, r.to)
		}
	}
	return out, nil
}

// portsEquivalent reports whether two port lists allow the same ports: ["443", "80"] and [80, 443],
// ["5432"] and ["5432-5432"], ["80", "81"] and ["80-81"].
func portsEquivalent(a, b []string) bool {
	na, errA := normalizePorts(a)
	nb, errB := normalizePorts(b)
	if errA != nil || errB != nil || len(na) != len(nb) {
		return false
	}
	for i := range na {
		if na[i] != nb[i] {
			return false
		}
	}
	return true
}

// isSpiffeGlob reports whether a SPIFFE ID pattern has a wildcard segment.
func isSpiffeGlob(s string) bool { return strings.Contains(s, "*") }

// checkSpiffeIDPattern checks a SPIFFE ID or glob of a rule: `spiffe://TD/path`, where a whole path
// segment may be `*` (one segment, or everything below when it is the last). trustDomain, when not
// "", is the trust domain the ID must belong to.
func checkSpiffeIDPattern(s, trustDomain string) error {
	skeleton := s
	if isSpiffeGlob(s) && strings.HasPrefix(s, "spiffe://") {
		rest := strings.TrimPrefix(s, "spiffe://")
		td, p, _ := strings.Cut(rest, "/")
		if strings.Contains(td, "*") {
			return fmt.Errorf("SPIFFE ID %q: the trust domain of a SPIFFE ID cannot contain \"*\"", s)
		}
		segs := strings.Split(p, "/")
		for i, seg := range segs {
			if strings.Contains(seg, "*") && seg != "*" {
				return fmt.Errorf("SPIFFE ID %q: \"*\" must be a whole path segment (got %q); write e.g. spiffe://%s/ns/prod/*", s, seg, td)
			}
			if seg == "*" {
				segs[i] = "x"
			}
		}
		skeleton = "spiffe://" + td + "/" + strings.Join(segs, "/")
	}
	if _, err := spiffeid.ParseWorkload(skeleton, trustDomain); err != nil {
		msg := err.Error()
		if skeleton != s {
			msg = strings.ReplaceAll(msg, strconv.QuoteToASCII(skeleton), strconv.QuoteToASCII(s))
		}
		return fmt.Errorf("%s", msg)
	}
	return nil
}

// checkFQDNPattern mirrors fqdnProblem: lowercase DNS names, `*.` only as the whole leftmost label
// and followed by at least two labels.
func checkFQDNPattern(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("fqdn is empty; write a name such as \"api.example.com\" or \"*.s3.amazonaws.com\"")
	case len(s) > 253:
		return fmt.Errorf("fqdn %q is %d characters; the limit is 253", s, len(s))
	case s != strings.ToLower(s):
		return fmt.Errorf("fqdn %q must be lowercase; write %q", s, strings.ToLower(s))
	case strings.HasSuffix(s, "."):
		return fmt.Errorf("fqdn %q must not end with \".\"; write %q", s, strings.TrimSuffix(s, "."))
	case strings.Contains(s, "://") || strings.ContainsAny(s, "/:"):
		return fmt.Errorf("fqdn %q must be a bare DNS name, without scheme, port or path", s)
	}
	labels := strings.Split(s, ".")
	wild := labels[0] == "*"
	for i, l := range labels {
		if i == 0 && wild {
			continue
		}
		if strings.Contains(l, "*") {
			return fmt.Errorf("fqdn %q: \"*\" may only be the whole leftmost label, as in *.s3.amazonaws.com", s)
		}
		if !dnsLabel.MatchString(l) {
			return fmt.Errorf("fqdn %q: label %q is not a DNS label (a-z, 0-9 and \"-\", 1 to 63 characters, no leading or trailing \"-\")", s, l)
		}
	}
	if wild && len(labels) < 3 {
		return fmt.Errorf("fqdn wildcard %q is too broad; name at least two labels after \"*.\", as in *.s3.amazonaws.com", s)
	}
	return nil
}

// checkSelectorKey checks an allow_within entry: a selector key TYPE:KEY (k8s:ns), or TYPE:KEY:NAME
// for the keys whose values are themselves KEY:VALUE (k8s:pod-label:app).
func checkSelectorKey(s string) error {
	const how = "write a selector key such as \"k8s:ns\", \"unix:uid\" or \"k8s:pod-label:app.kubernetes.io/part-of\""
	parts := strings.Split(s, ":")
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return fmt.Errorf("%q is not a selector key TYPE:KEY; %s", s, how)
	}
	if err := spiffeid.ValidateSelector(s); err != nil {
		return fmt.Errorf("%q is not a selector key; %s", s, how)
	}
	key := parts[0] + ":" + parts[1]
	if keyedSelectorKeys[key] {
		if len(parts) != 3 || parts[2] == "" {
			return fmt.Errorf("%q must name the inner key, as in \"%s:NAME\"", s, key)
		}
		return nil
	}
	if len(parts) > 2 {
		return fmt.Errorf("%q is a selector, not a selector key; drop the value, as in %q", s, key)
	}
	return nil
}

// checkRuleSelector checks a rule's selector: TYPE:KEY:VALUE, with a value (every selector key the
// server knows needs one). A bare key such as "k8s:ns" belongs in allow_within instead.
func checkRuleSelector(s string) error {
	if err := spiffeid.ValidateSelector(s); err != nil {
		return err
	}
	parts := strings.SplitN(s, ":", 3)
	if len(parts) < 3 || parts[2] == "" {
		return fmt.Errorf("selector %q has no value; a rule's selector is TYPE:KEY:VALUE, e.g. \"k8s:ns:prod\" or \"unix:path:/usr/bin/web\" (to let workloads that share a value talk, put the key %q in allow_within)", s, strings.TrimSuffix(s, ":"))
	}
	return nil
}

// notEmptyPorts refuses `ports = []`: no ports is written by leaving ports out.
type notEmptyPorts struct{}

var _ validator.List = notEmptyPorts{}

func (notEmptyPorts) Description(context.Context) string {
	return "at least one port; leave ports out to allow every port"
}

func (v notEmptyPorts) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (notEmptyPorts) ValidateList(_ context.Context, req validator.ListRequest, resp *validator.ListResponse) {
	if !req.ConfigValue.IsNull() && !req.ConfigValue.IsUnknown() && len(req.ConfigValue.Elements()) == 0 {
		resp.Diagnostics.AddAttributeError(req.Path, "Empty ports",
			"ports = [] would allow no port at all, which is not a rule: leave ports out to allow every port, or list ports such as [\"443\"] or [\"8000-8100\"].")
	}
}

// keepEquivalentPorts plans the prior state's ports when the configured ones allow the same ports
// written differently (["443", "80"] after [80, 443]), so a rewording is not an update.
type keepEquivalentPorts struct{}

var _ planmodifier.List = keepEquivalentPorts{}

func (keepEquivalentPorts) Description(context.Context) string {
	return "keeps the prior ports when the configured ones allow the same ports"
}

func (m keepEquivalentPorts) MarkdownDescription(ctx context.Context) string {
	return m.Description(ctx)
}

func (keepEquivalentPorts) PlanModifyList(ctx context.Context, req planmodifier.ListRequest, resp *planmodifier.ListResponse) {
	if req.StateValue.IsNull() || req.StateValue.IsUnknown() || req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() || req.PlanValue.IsUnknown() {
		return
	}
	plan, ok1 := knownStrings(req.PlanValue)
	state, ok2 := knownStrings(req.StateValue)
	if ok1 && ok2 && !req.PlanValue.Equal(req.StateValue) && portsEquivalent(plan, state) {
		resp.PlanValue = req.StateValue
	}
}

// knownStrings is the elements of a list of strings, when the list and all of them are known.
func knownStrings(l types.List) ([]string, bool) {
	if l.IsNull() || l.IsUnknown() {
		return nil, false
	}
	out := make([]string, 0, len(l.Elements()))
	for _, e := range l.Elements() {
		s, ok := e.(types.String)
		if !ok || s.IsNull() || s.IsUnknown() {
			return nil, false
		}
		out = append(out, s.ValueString())
	}
	return out, true
}
