package cryptocore_test

import (
	"bytes"
	"testing"

	"github.com/hsmsim/hsmsim/cryptocore"
	"github.com/hsmsim/hsmsim/internal/wycheproof"
)

type aeadGroup struct {
	IVSize  int `json:"ivSize"`
	KeySize int `json:"keySize"`
	TagSize int `json:"tagSize"`
	Tests   []struct {
		wycheproof.Case
		Key wycheproof.Hex `json:"key"`
		IV  wycheproof.Hex `json:"iv"`
		AAD wycheproof.Hex `json:"aad"`
		Msg wycheproof.Hex `json:"msg"`
		CT  wycheproof.Hex `json:"ct"`
		Tag wycheproof.Hex `json:"tag"`
	} `json:"tests"`
}

// TestWycheproofAESGCM checks SealGCM and OpenGCM against every AES-GCM
// vector. A valid vector must decrypt to msg and encrypt to ct || tag; an
// invalid one (a changed tag or ciphertext, or an empty IV, which GCM forbids)
// must be refused by OpenGCM. The file has no acceptable vectors.
func TestWycheproofAESGCM(t *testing.T) {
	const name = "aes_gcm_test.json"
	f := wycheproof.Load[aeadGroup](t, name)
	tally := wycheproof.NewTally(t, name)
	for _, g := range f.TestGroups {
		for _, tc := range g.Tests {
			sealed := append(bytes.Clone(tc.CT), tc.Tag...)
			pt, err := cryptocore.OpenGCM(tc.Key, tc.IV, sealed, tc.AAD)
			accepted := err == nil && bytes.Equal(pt, tc.Msg)
			if accepted {
				again, serr := cryptocore.SealGCM(tc.Key, tc.IV, tc.Msg, tc.AAD)
				accepted = serr == nil && bytes.Equal(again, sealed)
				err = serr
			}
			tally.Record(tc.Case, accepted, err)
		}
	}
	tally.Done(f.NumberOfTests)
}
