package provider

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/attr/xattr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// Durations are strings in HCL ("90s", "5m", "1h30m", "7d", or a bare number of seconds such as
// "3600") and whole seconds in the API. The state keeps what the configuration said as long as it
// means the same number of seconds as the server's value, so "60m" and "1h" never show as a change.

var durationUnits = []struct {
	suffix  byte
	seconds int64
}{{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}}

// maxDurationSeconds keeps every parsed value far from int64 overflow (about 3,000 years).
const maxDurationSeconds = int64(1) << 36

const durationHelp = `write it like "90s", "5m", "1h30m" or "7d" (units d, h, m, s, largest first), or as a number of seconds such as "3600"`

// ParseDuration turns a duration string into whole seconds.
func ParseDuration(s string) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("duration is empty; %s", durationHelp)
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > maxDurationSeconds {
			return 0, fmt.Errorf("duration %q is out of range; %s", s, durationHelp)
		}
		return n, nil
	}
	var total int64
	rest, next := s, 0
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) || i > 12 {
			return 0, fmt.Errorf("duration %q is not a duration; %s", s, durationHelp)
		}
		n, _ := strconv.ParseInt(rest[:i], 10, 64)
		unit := -1
		for u := next; u < len(durationUnits); u++ {
			if durationUnits[u].suffix == rest[i] {
				unit = u
				break
			}
		}
		if unit < 0 {
			return 0, fmt.Errorf("duration %q has an unknown, repeated or misplaced unit %q; %s", s, rest[i:i+1], durationHelp)
		}
		total += n * durationUnits[unit].seconds
		if total > maxDurationSeconds {
			return 0, fmt.Errorf("duration %q is out of range; %s", s, durationHelp)
		}
		next, rest = unit+1, rest[i+1:]
	}
	return total, nil
}

// FormatDuration writes seconds in the canonical form: "1d1h", "1h30m", "45s", "0s".
func FormatDuration(seconds int64) string {
	if seconds <= 0 {
		return strconv.FormatInt(seconds, 10) + "s"
	}
	var b strings.Builder
	for _, u := range durationUnits {
		if n := seconds / u.seconds; n > 0 {
			b.WriteString(strconv.FormatInt(n, 10))
			b.WriteByte(u.suffix)
			seconds -= n * u.seconds
		}
	}
	return b.String()
}

// DurationType is the attribute type of a duration string.
type DurationType struct{ basetypes.StringType }

var _ basetypes.StringTypable = DurationType{}

func (t DurationType) Equal(o attr.Type) bool {
	_, ok := o.(DurationType)
	return ok
}

func (t DurationType) String() string { return "DurationType" }

func (t DurationType) ValueFromString(_ context.Context, in basetypes.StringValue) (basetypes.StringValuable, diag.Diagnostics) {
	return DurationValue{StringValue: in}, nil
}

func (t DurationType) ValueFromTerraform(ctx context.Context, in tftypes.Value) (attr.Value, error) {
	v, err := t.StringType.ValueFromTerraform(ctx, in)
	if err != nil {
		return nil, err
	}
	s, ok := v.(basetypes.StringValue)
	if !ok {
		return nil, fmt.Errorf("unexpected value type %T", v)
	}
	return DurationValue{StringValue: s}, nil
}

func (t DurationType) ValueType(context.Context) attr.Value { return DurationValue{} }

// DurationValue is a duration string.
type DurationValue struct{ basetypes.StringValue }

var (
	_ basetypes.StringValuableWithSemanticEquals = DurationValue{}
	_ xattr.ValidateableAttribute                = DurationValue{}
)

// NewDurationSeconds is the canonical value for a number of seconds.
func NewDurationSeconds(seconds int64) DurationValue {
	return DurationValue{StringValue: basetypes.NewStringValue(FormatDuration(seconds))}
}

// NewDurationNull is a null duration.
func NewDurationNull() DurationValue { return DurationValue{StringValue: basetypes.NewStringNull()} }

// NewDurationUnknown is an unknown duration.
func NewDurationUnknown() DurationValue {
	return DurationValue{StringValue: basetypes.NewStringUnknown()}
}

func (v DurationValue) Type(context.Context) attr.Type { return DurationType{} }

func (v DurationValue) Equal(o attr.Value) bool {
	other, ok := o.(DurationValue)
	return ok && v.StringValue.Equal(other.StringValue)
}

// Seconds parses the value; call it only on a known, validated value.
func (v DurationValue) Seconds() (int64, error) { return ParseDuration(v.ValueString()) }

// StringSemanticEquals: "60m", "1h" and "3600" are the same duration.
func (v DurationValue) StringSemanticEquals(_ context.Context, other basetypes.StringValuable) (bool, diag.Diagnostics) {
	o, ok := other.(DurationValue)
	if !ok {
		return false, nil
	}
	a, errA := ParseDuration(v.ValueString())
	b, errB := ParseDuration(o.ValueString())
	return errA == nil && errB == nil && a == b, nil
}

func (v DurationValue) ValidateAttribute(_ context.Context, req xattr.ValidateAttributeRequest, resp *xattr.ValidateAttributeResponse) {
	if v.IsNull() || v.IsUnknown() {
		return
	}
	seconds, err := ParseDuration(v.ValueString())
	if err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid duration", err.Error())
		return
	}
	if seconds <= 0 {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid duration", fmt.Sprintf("duration %q must be at least 1s", v.ValueString()))
	}
}
