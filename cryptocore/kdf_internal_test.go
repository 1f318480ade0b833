package cryptocore

import (
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestCounterKDFCAVP runs counterKDF, the SP 800-108r1 §4.1 loop CounterKDF is
// built on, over NIST CAVP KBKDF vectors from KDFCTR_gen.rsp, section
// [PRF=HMAC_SHA256] [CTRLOCATION=BEFORE_FIXED] [RLEN=32_BITS]. These vectors
// give the whole fixed input as one string, so they cannot go through
// CounterKDF, which builds its own. The first is COUNT=0 (L=128); the others
// (L=256, 160 and 320, the last taking two PRF blocks) come from the same
// section. All four were also checked with OpenSSL 3.0.19, whose KBKDF with
// the separator and [L] turned off computes exactly this loop:
//
//	openssl kdf -keylen L/8 -kdfopt digest:SHA2-256 -kdfopt mac:HMAC \
//	    -kdfopt hexkey:KI -kdfopt hexsalt:FIXEDINPUTDATA \
//	    -kdfopt use-l:0 -kdfopt use-separator:0 KBKDF
func TestCounterKDFCAVP(t *testing.T) {
	tests := []struct {
		ki, fixed, ko string
	}{
		{
			ki:    "dd1d91b7d90b2bd3138533ce92b272fbf8a369316aefe242e659cc0ae238afe0",
			fixed: "01322b96b30acd197979444e468e1c5c6859bf1b1cf951b7e725303e237e46b864a145fab25e517b08f8683d0315bb2911d80a0e8aba17f3b413faac",
			ko:    "10621342bfb0fd40046c0e29f2cfdbf0",
		},
		{
			ki:    "e204d6d466aad507ffaf6d6dab0a5b26152c9e21e764370464e360c8fbc765c6",
			fixed: "7b03b98d9f94b899e591f3ef264b71b193fba7043c7e953cde23bc5384bc1a6293580115fae3495fd845dadbd02bd6455cf48d0f62b33e62364a3a80",
			ko:    "770dfab6a6a4a4bee0257ff335213f78d8287b4fd537d5c1fffa956910e7c779",
		},
		{
			ki:    "dc60338d884eecb72975c603c27b360605011756c697c4fc388f5176ef81efb1",
			fixed: "44d7aa08feba26093c14979c122c2437c3117b63b78841cd10a4bc5ed55c56586ad8986d55307dca1d198edcffbc516a8fbe6152aa428cdd800c062d",
			ko:    "29ac07dccf1f28d506cd623e6e3fc2fa255bd60b",
		},
		{
			ki:    "c4bedbddb66493e7c7259a3bbbc25f8c7e0ca7fe284d92d431d9cd99a0d214ac",
			fixed: "1c69c54766791e315c2cc5c47ecd3ffab87d0d273dd920e70955814c220eacace6a5946542da3dfe24ff626b4897898cafb7db83bdff3c14fa46fd4b",
			ko:    "1da47638d6c9c4d04d74d4640bbd42ab814d9e8cc22f4326695239f96b0693f12d0dd1152cf44430",
		},
	}
	decode := func(s string) []byte {
		b, err := hex.DecodeString(s)
		require.NoError(t, err)
		return b
	}
	for _, tc := range tests {
		t.Run(tc.ko[:8], func(t *testing.T) {
			want := decode(tc.ko)
			got, err := counterKDF(SHA256, decode(tc.ki), decode(tc.fixed), len(want))
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
}

// TestCounterKDFInternalErrors covers counterKDF's own checks, which
// CounterKDF's earlier checks otherwise hide.
func TestCounterKDFInternalErrors(t *testing.T) {
	key := make([]byte, 32)
	for _, n := range []int{-1, 0, MaxCounterKDFLength + 1} {
		_, err := counterKDF(SHA256, key, nil, n)
		require.ErrorIs(t, err, ErrInputSize, "length %d", n)
	}
	_, err := counterKDF(SHA1, key, nil, 32)
	require.ErrorIs(t, err, ErrUnsupported)
	_, err = counterKDF(SHA256, nil, nil, 32)
	require.ErrorIs(t, err, ErrKeySize)
}
