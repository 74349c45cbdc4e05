package peers

import (
	"errors"
	"fmt"
	"testing"

	"github.com/groupcached/groupcached/group"
	"github.com/groupcached/groupcached/peers/wire"
)

// Every group error an owner answers keeps its meaning on the asking node: verdict (the
// owner's side) and codeError (the asker's) are inverse. The owner's refusal to start a load
// in particular is a verdict, not unavailability: the asking node must not load the key.
func TestVerdictRoundTrip(t *testing.T) {
	for _, sentinel := range []error{
		group.ErrNotFound, group.ErrInvalidKey, group.ErrLoaderPanic, group.ErrLoadTimeout,
		group.ErrOverloaded, group.ErrValueTooLarge,
	} {
		code := wire.CodeOf(verdict(fmt.Errorf("loading %q: %w", "k", sentinel)))
		if got := codeError(code); !errors.Is(got, sentinel) {
			t.Errorf("%v → code %v → %v, want %v", sentinel, code, got, sentinel)
		}
		if errors.Is(codeError(code), group.ErrPeerUnavailable) {
			t.Errorf("%v travels as unavailability", sentinel)
		}
	}
	if code := wire.CodeOf(verdict(group.ErrOverloaded)); code != wire.CodeLoadOverloaded || code.String() != "load_overloaded" {
		t.Errorf("ErrOverloaded travels as %v", code)
	}
}
