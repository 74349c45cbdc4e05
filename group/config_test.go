package group

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestConfigValidateNamesEveryField: one Validate names every bad field, each as a
// *FieldError that errors.As finds and whose Err reads after the field's name.
func TestConfigValidateNamesEveryField(t *testing.T) {
	c := Config{CacheBytes: 0, HotCacheFraction: 0.75, TTL: -time.Second, NegativeTTL: -time.Second, LoadTimeout: 0, HotCacheRate: -1}
	err := c.Validate()
	var fields []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is not a *FieldError", e)
		}
		if !strings.HasPrefix(fe.Error(), fe.Field+": ") || strings.Contains(fe.Err.Error(), fe.Field) {
			t.Errorf("%q: want the field's name once, before its message", fe.Error())
		}
		fields = append(fields, fe.Field)
	}
	if want := []string{"CacheBytes", "HotCacheFraction", "TTL", "NegativeTTL", "LoadTimeout", "HotCacheRate"}; !reflect.DeepEqual(fields, want) {
		t.Errorf("fields = %v, want %v", fields, want)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("DefaultConfig: %v", err)
	}
}

func TestFieldErrorUnwraps(t *testing.T) {
	err := FieldErrorf("LoadTimeout", "cannot load: %w", ErrLoadTimeout)
	if !errors.Is(err, ErrLoadTimeout) || err.Error() != "LoadTimeout: cannot load: load timed out" {
		t.Errorf("FieldErrorf = %q (Is ErrLoadTimeout: %v)", err, errors.Is(err, ErrLoadTimeout))
	}
}
