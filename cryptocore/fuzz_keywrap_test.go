package cryptocore_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hsmsim/hsmsim/cryptocore"
)

// keywrapErr reports whether err is one of the errors the key wrap functions
// may return.
func keywrapErr(err error) bool {
	return errors.Is(err, cryptocore.ErrKeySize) || errors.Is(err, cryptocore.ErrInputSize) ||
		errors.Is(err, cryptocore.ErrUnwrapFailed)
}

// addKeywrapSeeds seeds f with valid wrappings under each KEK size, their
// tampered forms and a few malformed lengths.
func addKeywrapSeeds(f *testing.F, wrap func(kek, in []byte) ([]byte, error), lens []int) {
	// RFC 3394 §4.1 and RFC 5649 §6 keys.
	kwKEKs := [][]byte{
		kwHex(f, "000102030405060708090a0b0c0d0e0f"),
		kwHex(f, "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8"),
		bytes.Repeat([]byte{0x42}, 32),
	}
	for _, kek := range kwKEKs {
		for _, n := range lens {
			w, err := wrap(kek, bytes.Repeat([]byte{byte(n)}, n))
			if err != nil {
				f.Fatalf("seed wrap of %d bytes: %v", n, err)
			}
			f.Add(kek, w)
			bad := bytes.Clone(w)
			bad[len(bad)-1] ^= 1
			f.Add(kek, bad)
		}
		f.Add(kek, []byte{})
		f.Add(kek, make([]byte, 8))
		f.Add(kek, make([]byte, 17))
	}
	f.Add([]byte{}, make([]byte, 24))
	f.Add(make([]byte, 15), make([]byte, 24))
}

// FuzzUnwrapKW checks that UnwrapKW never panics, returns only its documented
// errors, and that whatever it accepts wraps back to the same bytes.
func FuzzUnwrapKW(f *testing.F) {
	addKeywrapSeeds(f, cryptocore.WrapKW, []int{16, 24, 32, 40, 64})
	f.Fuzz(func(t *testing.T, kek, wrapped []byte) {
		out, err := cryptocore.UnwrapKW(kek, wrapped)
		if err != nil {
			if !keywrapErr(err) {
				t.Fatalf("unexpected error: %v", err)
			}
			if out != nil {
				t.Fatalf("output returned with error %v", err)
			}
			return
		}
		if len(out) != len(wrapped)-8 {
			t.Fatalf("unwrapped %d bytes from %d", len(out), len(wrapped))
		}
		re, err := cryptocore.WrapKW(kek, out)
		if err != nil {
			t.Fatalf("re-wrap: %v", err)
		}
		if !bytes.Equal(re, wrapped) {
			t.Fatalf("re-wrap gave other bytes")
		}
	})
}

// FuzzUnwrapKWP checks that UnwrapKWP never panics, returns only its
// documented errors, and that whatever it accepts wraps back to the same
// bytes (RFC 5649 wrapping is deterministic and its integrity check pins
// every byte, padding included).
func FuzzUnwrapKWP(f *testing.F) {
	addKeywrapSeeds(f, cryptocore.WrapKWP, []int{1, 7, 8, 9, 16, 20, 31, 64})
	f.Fuzz(func(t *testing.T, kek, wrapped []byte) {
		out, err := cryptocore.UnwrapKWP(kek, wrapped)
		if err != nil {
			if !keywrapErr(err) {
				t.Fatalf("unexpected error: %v", err)
			}
			if out != nil {
				t.Fatalf("output returned with error %v", err)
			}
			return
		}
		if len(out) == 0 || len(out) > len(wrapped)-8 || len(out) <= len(wrapped)-16 {
			t.Fatalf("unwrapped %d bytes from %d", len(out), len(wrapped))
		}
		re, err := cryptocore.WrapKWP(kek, out)
		if err != nil {
			t.Fatalf("re-wrap: %v", err)
		}
		if !bytes.Equal(re, wrapped) {
			t.Fatalf("re-wrap gave other bytes")
		}
	})
}

// FuzzWrapRoundTrip wraps arbitrary data with both algorithms and checks that
// it unwraps to the same bytes, that the wrapped lengths are the ones RFC 3394
// and RFC 5649 give, and that a one-bit change is detected.
func FuzzWrapRoundTrip(f *testing.F) {
	for _, n := range []int{0, 1, 7, 8, 9, 16, 24, 33, 64} {
		for _, k := range []int{16, 24, 32, 5} {
			f.Add(bytes.Repeat([]byte{byte(k)}, k), bytes.Repeat([]byte{0xA6}, n), uint16(n))
		}
	}
	f.Fuzz(func(t *testing.T, kek, msg []byte, flip uint16) {
		kekOK := len(kek) == 16 || len(kek) == 24 || len(kek) == 32

		w, err := cryptocore.WrapKWP(kek, msg)
		switch {
		case !kekOK:
			if !errors.Is(err, cryptocore.ErrKeySize) {
				t.Fatalf("WrapKWP with %d-byte KEK: %v", len(kek), err)
			}
		case len(msg) > cryptocore.MaxKeyWrapInput || len(msg) == 0:
			if !errors.Is(err, cryptocore.ErrInputSize) {
				t.Fatalf("WrapKWP of empty msg: %v", err)
			}
		default:
			if err != nil {
				t.Fatalf("WrapKWP: %v", err)
			}
			if want := (len(msg)+7)/8*8 + 8; len(w) != want {
				t.Fatalf("WrapKWP gave %d bytes, want %d", len(w), want)
			}
			got, err := cryptocore.UnwrapKWP(kek, w)
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("UnwrapKWP round trip: %v", err)
			}
			bit := int(flip) % (8 * len(w))
			w[bit/8] ^= 1 << (bit % 8)
			if _, err := cryptocore.UnwrapKWP(kek, w); !errors.Is(err, cryptocore.ErrUnwrapFailed) {
				t.Fatalf("UnwrapKWP with bit %d flipped: %v", bit, err)
			}
		}

		w, err = cryptocore.WrapKW(kek, msg)
		switch {
		case !kekOK:
			if !errors.Is(err, cryptocore.ErrKeySize) {
				t.Fatalf("WrapKW with %d-byte KEK: %v", len(kek), err)
			}
		case len(msg) > cryptocore.MaxKeyWrapInput || len(msg) < 16 || len(msg)%8 != 0:
			if !errors.Is(err, cryptocore.ErrInputSize) {
				t.Fatalf("WrapKW of %d bytes: %v", len(msg), err)
			}
		default:
			if err != nil {
				t.Fatalf("WrapKW: %v", err)
			}
			if len(w) != len(msg)+8 {
				t.Fatalf("WrapKW gave %d bytes, want %d", len(w), len(msg)+8)
			}
			got, err := cryptocore.UnwrapKW(kek, w)
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("UnwrapKW round trip: %v", err)
			}
			bit := int(flip) % (8 * len(w))
			w[bit/8] ^= 1 << (bit % 8)
			if _, err := cryptocore.UnwrapKW(kek, w); !errors.Is(err, cryptocore.ErrUnwrapFailed) {
				t.Fatalf("UnwrapKW with bit %d flipped: %v", bit, err)
			}
		}
	})
}
