package cryptocore_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"testing"

	"github.com/hsmsim/hsmsim/cryptocore"
	"github.com/hsmsim/hsmsim/internal/wycheproof"
	"github.com/stretchr/testify/require"
)

// wpOAEPGroup is a test group of the rsaes_oaep_decrypt_schema_v1 files.
type wpOAEPGroup struct {
	KeySize         int            `json:"keySize"`
	SHA             string         `json:"sha"`
	MGF             string         `json:"mgf"`
	MGFSHA          string         `json:"mgfSha"`
	PrivateKeyPKCS8 wycheproof.Hex `json:"privateKeyPkcs8"`
	Tests           []struct {
		wycheproof.Case
		Msg   wycheproof.Hex `json:"msg"`
		CT    wycheproof.Hex `json:"ct"`
		Label wycheproof.Hex `json:"label"`
	} `json:"tests"`
}

// runWycheproofOAEP decrypts every vector of an RSA-OAEP decryption file
// with cryptocore.DecryptOAEP, the key parsed by cryptocore.ParsePrivateKey.
//
// The only acceptable vectors in these files are the SmallIntegerCiphertext
// ones of rsa_oaep_misc_test.json: ciphertexts with integer value 0 or 1
// whose label was chosen so that they decrypt to a well-formed OAEP block.
// DecryptOAEP rejects them (ErrDecryptFailed) because NIST SP 800-56B Rev. 2
// §7.1.2.1 requires the ciphertext to be in [2, n − 2]; the test asserts
// that rejection.
func runWycheproofOAEP(t *testing.T, name string) {
	f := wycheproof.Load[wpOAEPGroup](t, name)
	tally := wycheproof.NewTally(t, name)
	for _, g := range f.TestGroups {
		require.Equal(t, "MGF1", g.MGF, "group mask generation function")
		h, err := cryptocore.ParseHash(g.SHA)
		require.NoError(t, err)
		mgf, err := cryptocore.ParseHash(g.MGFSHA)
		require.NoError(t, err)
		signer, err := cryptocore.ParsePrivateKey(g.PrivateKeyPKCS8)
		require.NoError(t, err, "%d-bit key", g.KeySize)
		priv, ok := signer.(*rsa.PrivateKey)
		require.True(t, ok, "key is %T", signer)
		require.Equal(t, g.KeySize, priv.N.BitLen())
		for _, tc := range g.Tests {
			msg, err := cryptocore.DecryptOAEP(priv, h, mgf, tc.CT, tc.Label)
			if err != nil {
				// Every decryption failure is the one sentinel, unwrapped.
				require.Equal(t, cryptocore.ErrDecryptFailed, err, "tcId %d", tc.TcID)
			}
			if tc.Result == wycheproof.Acceptable {
				require.Contains(t, tc.Flags, "SmallIntegerCiphertext", "tcId %d", tc.TcID)
				require.ErrorIs(t, err, cryptocore.ErrDecryptFailed, "tcId %d", tc.TcID)
			}
			tally.Record(tc.Case, err == nil && bytes.Equal(msg, tc.Msg), err)
		}
	}
	tally.Done(f.NumberOfTests)
}

// TestWycheproofRSAOAEP2048SHA256 runs rsa_oaep_2048_sha256_mgf1sha256_test.json.
func TestWycheproofRSAOAEP2048SHA256(t *testing.T) {
	runWycheproofOAEP(t, "rsa_oaep_2048_sha256_mgf1sha256_test.json")
}

// TestWycheproofRSAOAEPMisc runs rsa_oaep_misc_test.json: 1024- to 8192-bit
// keys with every pairing of SHA-1/224/256/384/512 as OAEP and MGF1 hash.
func TestWycheproofRSAOAEPMisc(t *testing.T) {
	runWycheproofOAEP(t, "rsa_oaep_misc_test.json")
}

// wpECDSAGroup is a test group of the ecdsa_verify_schema_v1 files.
type wpECDSAGroup struct {
	PublicKeyDER wycheproof.Hex `json:"publicKeyDer"`
	SHA          string         `json:"sha"`
	Tests        []struct {
		wycheproof.Case
		Msg wycheproof.Hex `json:"msg"`
		Sig wycheproof.Hex `json:"sig"`
	} `json:"tests"`
}

// TestWycheproofECDSAP256 runs ecdsa_secp256r1_sha256_test.json: the key is
// parsed with cryptocore.ParsePublicKey, msg hashed with the group's hash and
// the DER signature checked with cryptocore.VerifyECDSA. The file has no
// acceptable vectors; BER encodings are invalid ones, which VerifyECDSA
// rejects because it accepts strict DER only.
func TestWycheproofECDSAP256(t *testing.T) {
	const name = "ecdsa_secp256r1_sha256_test.json"
	f := wycheproof.Load[wpECDSAGroup](t, name)
	tally := wycheproof.NewTally(t, name)
	for _, g := range f.TestGroups {
		h, err := cryptocore.ParseHash(g.SHA)
		require.NoError(t, err)
		key, err := cryptocore.ParsePublicKey(g.PublicKeyDER)
		require.NoError(t, err)
		pub, ok := key.(*ecdsa.PublicKey)
		require.True(t, ok, "key is %T", key)
		curve, err := cryptocore.CurveOf(pub)
		require.NoError(t, err)
		require.Equal(t, cryptocore.P256, curve)
		for _, tc := range g.Tests {
			digest, err := h.Digest(tc.Msg)
			require.NoError(t, err)
			err = cryptocore.VerifyECDSA(pub, h, digest, tc.Sig)
			if err != nil {
				require.ErrorIs(t, err, cryptocore.ErrInvalidSignature, "tcId %d", tc.TcID)
			}
			// The message helper must agree with the digest path.
			require.Equal(t, err, cryptocore.VerifyEC(pub, h, tc.Msg, false, tc.Sig), "tcId %d", tc.TcID)
			tally.Record(tc.Case, err == nil, err)
		}
	}
	tally.Done(f.NumberOfTests)
}
