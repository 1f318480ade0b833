package cryptocore_test

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/cryptocore"
	"github.com/hsmsim/hsmsim/internal/wycheproof"
)

// keywrapGroup is a test group of Wycheproof's keywrap_test_schema_v1.
type keywrapGroup struct {
	KeySize int `json:"keySize"`
	Tests   []struct {
		wycheproof.Case
		Key wycheproof.Hex `json:"key"`
		Msg wycheproof.Hex `json:"msg"`
		Ct  wycheproof.Hex `json:"ct"`
	} `json:"tests"`
}

// runKeywrapVectors scores every vector of the named keywrap file. A vector is
// accepted when unwrapping ct under key succeeds and gives msg, and, for
// valid vectors, wrapping msg under key also gives exactly ct. An invalid
// vector counts as accepted as soon as unwrap succeeds, whatever it returns;
// its rejection must be ErrInputSize or ErrUnwrapFailed.
func runKeywrapVectors(t *testing.T, name string,
	wrap, unwrap func(kek, in []byte) ([]byte, error),
	wrapMustFail func(flags []string, msg []byte) bool,
) {
	f := wycheproof.Load[keywrapGroup](t, name)
	tally := wycheproof.NewTally(t, name)
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			require.Equal(t, g.KeySize, 8*len(tc.Key), "tcId %d: key size", tc.TcID)
			out, err := unwrap(tc.Key, tc.Ct)
			accepted := err == nil
			if err != nil && !errors.Is(err, cryptocore.ErrInputSize) && !errors.Is(err, cryptocore.ErrUnwrapFailed) {
				t.Errorf("%s tcId %d: unexpected error %v", name, tc.TcID, err)
			}
			if accepted && tc.Result != wycheproof.Invalid {
				accepted = bytes.Equal(out, tc.Msg)
				if err == nil && !accepted {
					err = errors.New("unwrap gave other bytes than msg")
				}
			}
			if accepted && tc.Result == wycheproof.Valid {
				var ct []byte
				ct, err = wrap(tc.Key, tc.Msg)
				accepted = err == nil && bytes.Equal(ct, tc.Ct)
				if err == nil && !accepted {
					err = errors.New("wrapping msg gave other bytes than ct")
				}
			}
			tally.Record(tc.Case, accepted, err)

			// Plaintexts the algorithm cannot take must be refused on wrap too.
			if tc.Result != wycheproof.Valid && wrapMustFail(tc.Flags, tc.Msg) {
				_, werr := wrap(tc.Key, tc.Msg)
				if !errors.Is(werr, cryptocore.ErrInputSize) {
					t.Errorf("%s tcId %d (%s): wrapping a %d-byte msg: got %v, want ErrInputSize",
						name, tc.TcID, tc.Comment, len(tc.Msg), werr)
				}
			}
		}
	}
	tally.Done(f.NumberOfTests)
}

// TestWycheproofAESWrap runs the AES-KW (RFC 3394) vectors.
//
// The acceptable vectors are flagged ShortKey: an 8-byte key wrapped by one
// AES block encryption. UnwrapKW and WrapKW reject them with ErrInputSize
// (logged by the tally as "acceptable vectors: 0 accepted, 3 rejected"):
// RFC 3394 §2 requires at least two semiblocks of key data and NIST SP 800-38F
// does not define a single-block form of KW, so supporting it would add a
// non-standard mode for no caller. Keys of 8 bytes, or of a length that is not
// a multiple of 8, are wrapped with WrapKWP (RFC 5649) instead.
func TestWycheproofAESWrap(t *testing.T) {
	runKeywrapVectors(t, "aes_wrap_test.json", cryptocore.WrapKW, cryptocore.UnwrapKW,
		func(flags []string, _ []byte) bool {
			return slices.Contains(flags, "EmptyKey") || slices.Contains(flags, "WrongDataSize") ||
				slices.Contains(flags, "ShortKey")
		})
}

// TestWycheproofAESKWP runs the AES-KWP (RFC 5649) vectors. The file has no
// acceptable vectors; its SmallKey vectors (keys shorter than 16 bytes) are
// valid and are wrapped and unwrapped like any other.
func TestWycheproofAESKWP(t *testing.T) {
	runKeywrapVectors(t, "aes_kwp_test.json", cryptocore.WrapKWP, cryptocore.UnwrapKWP,
		// The one plaintext length KWP cannot take is 0 ("invalid wrapping
		// of empty key", tcId 74, 157 and 253).
		func(_ []string, msg []byte) bool { return len(msg) == 0 })
}
