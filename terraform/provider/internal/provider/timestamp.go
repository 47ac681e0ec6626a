package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/attr/xattr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// Timestamps are RFC 3339 strings. The server answers in UTC with milliseconds
// ("2030-01-01T00:00:00.000Z"); "2030-01-01T01:00:00+01:00" in a configuration is the same instant and
// never shows as a change.

// TimestampType is the attribute type of an RFC 3339 timestamp.
type TimestampType struct{ basetypes.StringType }

var _ basetypes.StringTypable = TimestampType{}

func (t TimestampType) Equal(o attr.Type) bool {
	_, ok := o.(TimestampType)
	return ok
}

func (t TimestampType) String() string { return "TimestampType" }

func (t TimestampType) ValueFromString(_ context.Context, in basetypes.StringValue) (basetypes.StringValuable, diag.Diagnostics) {
	return TimestampValue{StringValue: in}, nil
}

func (t TimestampType) ValueFromTerraform(ctx context.Context, in tftypes.Value) (attr.Value, error) {
	v, err := t.StringType.ValueFromTerraform(ctx, in)
	if err != nil {
		return nil, err
	}
	s, ok := v.(basetypes.StringValue)
	if !ok {
		return nil, fmt.Errorf("unexpected value type %T", v)
	}
	return TimestampValue{StringValue: s}, nil
}

func (t TimestampType) ValueType(context.Context) attr.Value { return TimestampValue{} }

// TimestampValue is an RFC 3339 timestamp.
type TimestampValue struct{ basetypes.StringValue }

var (
	_ basetypes.StringValuableWithSemanticEquals = TimestampValue{}
	_ xattr.ValidateableAttribute                = TimestampValue{}
)

// NewTimestampPointer is the value of an optional API time: null when p is nil.
func NewTimestampPointer(p *string) TimestampValue {
	if p == nil {
		return TimestampValue{StringValue: basetypes.NewStringNull()}
	}
	return TimestampValue{StringValue: basetypes.NewStringValue(*p)}
}

// NewTimestampValue is the value of an API time.
func NewTimestampValue(s string) TimestampValue {
	return TimestampValue{StringValue: basetypes.NewStringValue(s)}
}

func (v TimestampValue) Type(context.Context) attr.Type { return TimestampType{} }

func (v TimestampValue) Equal(o attr.Value) bool {
	other, ok := o.(TimestampValue)
	return ok && v.StringValue.Equal(other.StringValue)
}

// Time parses the value; call it only on a known, validated value.
func (v TimestampValue) Time() (time.Time, error) {
	return time.Parse(time.RFC3339Nano, v.ValueString())
}

func (v TimestampValue) StringSemanticEquals(_ context.Context, other basetypes.StringValuable) (bool, diag.Diagnostics) {
	o, ok := other.(TimestampValue)
	if !ok {
		return false, nil
	}
	a, errA := v.Time()
	b, errB := o.Time()
	return errA == nil && errB == nil && a.Equal(b), nil
}

func (v TimestampValue) ValidateAttribute(_ context.Context, req xattr.ValidateAttributeRequest, resp *xattr.ValidateAttributeResponse) {
	if v.IsNull() || v.IsUnknown() {
		return
	}
	if _, err := v.Time(); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid timestamp",
			fmt.Sprintf("%q is not an RFC 3339 time; write it like \"2030-01-31T12:00:00Z\"", v.ValueString()))
	}
}
