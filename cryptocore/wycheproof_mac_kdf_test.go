package cryptocore_test

import (
	"bytes"
	"testing"

	"github.com/hsmsim/hsmsim/cryptocore"
	"github.com/hsmsim/hsmsim/internal/wycheproof"
)

// TestWycheproofHMACSHA256 runs hmac_sha256_test.json (mac_test_schema_v1).
// Groups give keySize and tagSize in bits; groups with tagSize 128 hold tags
// truncated to the leftmost 16 bytes. Full-length tags go through VerifyMAC,
// truncated ones through VerifyTruncatedMAC with the group's tag size as the
// minimum length, and for valid vectors ComputeMAC's output must also start
// with the tag. The file has no acceptable vectors.
func TestWycheproofHMACSHA256(t *testing.T) {
	type group struct {
		KeySize int `json:"keySize"`
		TagSize int `json:"tagSize"`
		Tests   []struct {
			wycheproof.Case
			Key wycheproof.Hex `json:"key"`
			Msg wycheproof.Hex `json:"msg"`
			Tag wycheproof.Hex `json:"tag"`
		} `json:"tests"`
	}
	const name = "hmac_sha256_test.json"
	f := wycheproof.Load[group](t, name)
	tally := wycheproof.NewTally(t, name)
	for _, g := range f.TestGroups {
		tagLen := g.TagSize / 8
		for _, tc := range g.Tests {
			if len(tc.Key)*8 != g.KeySize {
				t.Errorf("tcId %d: key of %d bits in a group of %d-bit keys", tc.TcID, 8*len(tc.Key), g.KeySize)
			}
			var err error
			if tagLen == cryptocore.SHA256.Size() {
				err = cryptocore.VerifyMAC(cryptocore.SHA256, tc.Key, tc.Msg, tc.Tag)
			} else {
				err = cryptocore.VerifyTruncatedMAC(cryptocore.SHA256, tc.Key, tc.Msg, tc.Tag, tagLen)
			}
			accepted := err == nil
			if tc.Result == wycheproof.Valid {
				mac, merr := cryptocore.ComputeMAC(cryptocore.SHA256, tc.Key, tc.Msg)
				accepted = accepted && merr == nil && len(tc.Tag) == tagLen && bytes.Equal(mac[:tagLen], tc.Tag)
			}
			tally.Record(tc.Case, accepted, err)
		}
	}
	tally.Done(f.NumberOfTests)
}

// TestWycheproofHKDFSHA256 runs hkdf_sha256_test.json (hkdf_test_schema_v1).
// Its invalid vectors ask for more than 255*32 bytes (RFC 5869 §2.3), which
// HKDF must refuse. The file has no acceptable vectors.
func TestWycheproofHKDFSHA256(t *testing.T) {
	type group struct {
		KeySize int `json:"keySize"`
		Tests   []struct {
			wycheproof.Case
			IKM  wycheproof.Hex `json:"ikm"`
			Salt wycheproof.Hex `json:"salt"`
			Info wycheproof.Hex `json:"info"`
			Size int            `json:"size"`
			OKM  wycheproof.Hex `json:"okm"`
		} `json:"tests"`
	}
	const name = "hkdf_sha256_test.json"
	f := wycheproof.Load[group](t, name)
	tally := wycheproof.NewTally(t, name)
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			okm, err := cryptocore.HKDF(cryptocore.SHA256, tc.IKM, tc.Salt, tc.Info, tc.Size)
			tally.Record(tc.Case, err == nil && len(okm) == tc.Size && bytes.Equal(okm, tc.OKM), err)
		}
	}
	tally.Done(f.NumberOfTests)
}
