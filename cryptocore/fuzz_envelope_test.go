package cryptocore_test

import (
	"bytes"
	"testing"

	"github.com/hsmsim/hsmsim/cryptocore"
)

// FuzzParseEnvelope feeds arbitrary bytes to the envelope parser and opener:
// they must never panic, a parsed envelope must account for every input
// byte, and nothing forged may open.
func FuzzParseEnvelope(f *testing.F) {
	key := bytes.Repeat([]byte{7}, cryptocore.KeySize)
	a, err := cryptocore.NewAEAD(key)
	if err != nil {
		f.Fatal(err)
	}
	for _, pt := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("k"), 100)} {
		b, err := cryptocore.SealEnvelope(a, []byte("key-1"), 1, pt, []byte("aad"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{1, 1, 'k', 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := cryptocore.ParseEnvelope(b)
		if err != nil {
			return
		}
		if got := 2 + len(e.KeyID) + 4 + len(e.Nonce) + 4 + len(e.Sealed); got != len(b) {
			t.Fatalf("parsed %d bytes of %d", got, len(b))
		}
		pt, err := e.Open(a, []byte("aad"))
		if err != nil {
			return
		}
		// Only an envelope this key sealed opens; re-sealing must round-trip.
		again, err := cryptocore.SealEnvelope(a, e.KeyID, e.MaterialVersion, pt, []byte("aad"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cryptocore.OpenEnvelope(a, e.KeyID, e.MaterialVersion, again, []byte("aad")); err != nil {
			t.Fatal(err)
		}
	})
}
