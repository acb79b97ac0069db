package identity

import (
	"context"
	"testing"
)

// The hash an unknown login is checked against must be a well-formed
// hash with the service's parameters, so that checking it costs a real
// derivation (the same time as a real account) and simply fails.
func TestDummyHashCostsARealCheck(t *testing.T) {
	h, err := newHasher(testHash, 1)
	if err != nil {
		t.Fatal(err)
	}
	d, err := decodeHash(h.dummy)
	if err != nil {
		t.Fatalf("dummy %q does not decode: %v", h.dummy, err)
	}
	if d.params != testHash {
		t.Fatalf("dummy params %+v, want %+v", d.params, testHash)
	}
	ok, _, err := h.check(context.Background(), h.dummy, "concord: no such account")
	if ok || err != nil {
		t.Fatalf("check against the dummy = %v, %v; want false, nil", ok, err)
	}
	other, _ := newHasher(testHash, 1)
	if other.dummy == h.dummy {
		t.Fatal("two hashers share a dummy salt")
	}
}
