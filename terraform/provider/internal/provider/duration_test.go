package provider

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/attr/xattr"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"
)

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "3600": 3600, "90s": 90, "5m": 300, "1h": 3600, "1h30m": 5400, "7d": 604800,
		"1d1h1m1s": 90061, "36h": 129600, "120m": 7200, "0s": 0,
	} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"":              "is empty",
		"1":             "",
		"h":             "is not a duration",
		"1x":            "unknown, repeated or misplaced unit",
		"1m1h":          "unknown, repeated or misplaced unit",
		"1h1h":          "unknown, repeated or misplaced unit",
		"1.5h":          "unknown, repeated or misplaced unit",
		"-5m":           "is not a duration",
		"-5":            "out of range",
		" 1h":           "is not a duration",
		"1h ":           "is not a duration",
		"1ms":           "is not a duration",
		"99999999999d":  "out of range",
		"9999999999999": "out of range",
	} {
		_, err := ParseDuration(in)
		if want == "" {
			if err != nil {
				t.Errorf("ParseDuration(%q) = %v", in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseDuration(%q) = %v, want an error containing %q", in, err, want)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for in, want := range map[int64]string{0: "0s", 1: "1s", 60: "1m", 3600: "1h", 5400: "1h30m", 43200: "12h", 86400: "1d", 90061: "1d1h1m1s", 31536000: "365d"} {
		if got := FormatDuration(in); got != want {
			t.Errorf("FormatDuration(%d) = %q, want %q", in, got, want)
		}
		if back, err := ParseDuration(FormatDuration(in)); err != nil || back != in {
			t.Errorf("round trip of %d: %d, %v", in, back, err)
		}
	}
}

func TestDurationSemanticEquality(t *testing.T) {
	ctx := context.Background()
	v := func(s string) DurationValue { return DurationValue{StringValue: basetypes.NewStringValue(s)} }
	for _, pair := range [][2]string{{"60m", "1h"}, {"3600", "1h"}, {"1d", "24h"}, {"90m", "1h30m"}} {
		if eq, _ := v(pair[0]).StringSemanticEquals(ctx, v(pair[1])); !eq {
			t.Errorf("%s and %s should be semantically equal", pair[0], pair[1])
		}
	}
	for _, pair := range [][2]string{{"59m", "1h"}, {"bogus", "bogus"}} {
		if eq, _ := v(pair[0]).StringSemanticEquals(ctx, v(pair[1])); eq {
			t.Errorf("%s and %s should not be semantically equal", pair[0], pair[1])
		}
	}
	if v("1h").Equal(basetypes.NewStringValue("1h")) {
		t.Error("a DurationValue never equals a plain string value")
	}
	if !NewDurationSeconds(5400).Equal(v("1h30m")) || !NewDurationNull().IsNull() || !NewDurationUnknown().IsUnknown() {
		t.Error("constructors")
	}
}

func TestDurationValidation(t *testing.T) {
	ctx := context.Background()
	for in, want := range map[string]string{"1h": "", "0s": "must be at least 1s", "soon": "is not a duration"} {
		resp := &xattr.ValidateAttributeResponse{}
		DurationValue{StringValue: basetypes.NewStringValue(in)}.ValidateAttribute(ctx, xattr.ValidateAttributeRequest{Path: path.Root("ttl")}, resp)
		if want == "" {
			if resp.Diagnostics.HasError() {
				t.Errorf("%q: %v", in, resp.Diagnostics)
			}
			continue
		}
		if !resp.Diagnostics.HasError() || !strings.Contains(resp.Diagnostics[0].Detail(), want) {
			t.Errorf("%q: %v, want %q", in, resp.Diagnostics, want)
		}
	}
	resp := &xattr.ValidateAttributeResponse{}
	NewDurationUnknown().ValidateAttribute(ctx, xattr.ValidateAttributeRequest{}, resp)
	NewDurationNull().ValidateAttribute(ctx, xattr.ValidateAttributeRequest{}, resp)
	if resp.Diagnostics.HasError() {
		t.Error("unknown and null values are not validated")
	}
}

func TestTimestamp(t *testing.T) {
	ctx := context.Background()
	v := func(s string) TimestampValue { return NewTimestampValue(s) }
	if eq, _ := v("2030-01-01T00:00:00Z").StringSemanticEquals(ctx, v("2030-01-01T00:00:00.000Z")); !eq {
		t.Error("the server's milliseconds are the same instant")
	}
	if eq, _ := v("2030-01-01T01:00:00+01:00").StringSemanticEquals(ctx, v("2030-01-01T00:00:00.000Z")); !eq {
		t.Error("an offset is the same instant")
	}
	if eq, _ := v("2030-01-01T00:00:01Z").StringSemanticEquals(ctx, v("2030-01-01T00:00:00Z")); eq {
		t.Error("different instants")
	}
	resp := &xattr.ValidateAttributeResponse{}
	v("next tuesday").ValidateAttribute(ctx, xattr.ValidateAttributeRequest{Path: path.Root("expires_at")}, resp)
	if !resp.Diagnostics.HasError() || !strings.Contains(resp.Diagnostics[0].Detail(), "not an RFC 3339 time") {
		t.Errorf("validation: %v", resp.Diagnostics)
	}
	if !NewTimestampPointer(nil).IsNull() {
		t.Error("nil is null")
	}
}
