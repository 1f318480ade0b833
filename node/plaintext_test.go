package node_test

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/cryptocore"
	"github.com/hsmsim/hsmsim/internal/secretscan"
	"github.com/hsmsim/hsmsim/node/nodetest"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// Invariant 1: key material never reaches the disk (or the logs) in
// plaintext. The test must know the plaintext, so it makes the keys itself
// and imports them: an AES key-encryption key RSA-OAEP-wrapped to an HSM
// key pair, then AES, HMAC, RSA and EC keys AES-KWP-wrapped under it. It
// uses each key, so that it is live, proves the HSM holds exactly those
// bytes, snapshots every node, stops them, and scans every file of every
// data directory (Raft log, snapshots, sealed secrets, device key, audit
// log) and every log line for the raw bytes, hex and base64 of each secret,
// each private key's PKCS #8 DER and private scalar or primes.
func TestNoPlaintextKeyMaterialOnDisk(t *testing.T) {
	logs := newLogCapture(t)
	c := nodetest.New(t, 3, logs.configure)
	c.CreateCryptoUser(0, "alice", userPassword)
	c.WaitConverged()
	s := loginCU(t, c, c.Followers()[0].Index, "alice", userPassword)

	// The key-encryption key, imported under an HSM RSA key pair.
	hsmPair, err := s.cl.GenerateKeyPair(s.ctx, &hsmv1.GenerateKeyPairRequest{Type: hsmv1.KeyType_KEY_TYPE_RSA, ModulusBits: 2048,
		Usage: &hsmv1.KeyUsage{Unwrap: true, Decrypt: true}})
	require.NoError(t, err)
	hsmPub, err := x509.ParsePKIXPublicKey(hsmPair.GetPublicKey().GetPublicKey())
	require.NoError(t, err)
	kek := randomBytes(t, 32)
	wrappedKEK, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, hsmPub.(*rsa.PublicKey), kek, nil)
	require.NoError(t, err)
	kekHandle := unwrapInto(t, s, hsmPair.GetPrivateKey().GetHandle(), hsmv1.WrapMechanism_WRAP_MECHANISM_RSA_OAEP, wrappedKEK,
		hsmv1.KeyType_KEY_TYPE_AES, &hsmv1.KeyUsage{Wrap: true, Unwrap: true})

	aesKey, hmacKey := randomBytes(t, 32), randomBytes(t, 48)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	rsaDER, err := cryptocore.MarshalPrivateKey(rsaKey)
	require.NoError(t, err)
	ecDER, err := cryptocore.MarshalPrivateKey(ecKey)
	require.NoError(t, err)
	ecD, err := ecKey.Bytes()
	require.NoError(t, err)

	importKey := func(material []byte, typ hsmv1.KeyType, usage *hsmv1.KeyUsage) uint64 {
		wrapped, err := cryptocore.WrapKWP(kek, material)
		require.NoError(t, err)
		return unwrapInto(t, s, kekHandle, hsmv1.WrapMechanism_WRAP_MECHANISM_AES_KWP, wrapped, typ, usage)
	}
	aesHandle := importKey(aesKey, hsmv1.KeyType_KEY_TYPE_AES, &hsmv1.KeyUsage{Encrypt: true, Decrypt: true})
	hmacHandle := importKey(hmacKey, hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET, &hsmv1.KeyUsage{Sign: true, Verify: true})
	rsaHandle := importKey(rsaDER, hsmv1.KeyType_KEY_TYPE_RSA, &hsmv1.KeyUsage{Sign: true})
	ecHandle := importKey(ecDER, hsmv1.KeyType_KEY_TYPE_EC, &hsmv1.KeyUsage{Sign: true})

	// Use every key, checking the HSM computes with the very bytes imported.
	msg := []byte("a message")
	digest := sha256.Sum256(msg)
	ct := s.encrypt(t, aesHandle, msg)
	block, err := aes.NewCipher(aesKey)
	require.NoError(t, err)
	gcmCipher, err := cipher.NewGCM(block)
	require.NoError(t, err)
	pt, err := gcmCipher.Open(nil, ct[:gcmCipher.NonceSize()], ct[gcmCipher.NonceSize():], []byte("aad"))
	require.NoError(t, err, "the HSM's AES key is not the imported one")
	require.Equal(t, msg, pt)

	mac, err := s.cl.GenerateMac(s.ctx, &hsmv1.GenerateMacRequest{Handle: hmacHandle, Hash: hsmv1.Hash_HASH_SHA256, Message: msg})
	require.NoError(t, err)
	want := hmac.New(sha256.New, hmacKey)
	want.Write(msg)
	require.Equal(t, want.Sum(nil), mac.GetMac())

	sig, err := s.cl.Sign(s.ctx, &hsmv1.SignRequest{Handle: rsaHandle, Mechanism: hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_RSA_PKCS1_V15,
		Hash: hsmv1.Hash_HASH_SHA256, Message: msg})
	require.NoError(t, err)
	require.NoError(t, rsa.VerifyPKCS1v15(&rsaKey.PublicKey, crypto.SHA256, digest[:], sig.GetSignature()))

	sig, err = s.cl.Sign(s.ctx, &hsmv1.SignRequest{Handle: ecHandle, Mechanism: hsmv1.SignatureMechanism_SIGNATURE_MECHANISM_ECDSA,
		Hash: hsmv1.Hash_HASH_SHA256, Message: msg})
	require.NoError(t, err)
	require.True(t, ecdsa.VerifyASN1(&ecKey.PublicKey, digest[:], sig.GetSignature()))

	// Every node holds the keys in its log and in a fresh snapshot.
	c.WaitConverged()
	for _, nd := range c.Nodes {
		require.NoError(t, nd.Snapshot(), "snapshot on %s", nd.ID())
	}
	for i := range c.Nodes {
		c.Stop(i)
	}

	var patterns []secretscan.Pattern
	for name, secret := range map[string][]byte{
		"key-encryption key": kek,
		"AES key":            aesKey,
		"HMAC key":           hmacKey,
		"RSA PKCS#8":         rsaDER,
		"RSA D":              rsaKey.D.Bytes(),
		"RSA P":              rsaKey.Primes[0].Bytes(),
		"RSA Q":              rsaKey.Primes[1].Bytes(),
		"EC PKCS#8":          ecDER,
		"EC D":               ecD,
	} {
		patterns = append(patterns, secretscan.Patterns(name, secret)...)
	}

	// The scanner finds what it looks for, at every base64 alignment.
	for skip := range 3 {
		stream := base64.StdEncoding.EncodeToString(append(make([]byte, skip), aesKey...))
		require.NotEmpty(t, secretscan.Find([]byte("x"+stream+"y"), patterns), "base64 at offset %d", skip)
	}

	var scanned []string
	for i := range c.Nodes {
		files, found, err := secretscan.Dir(c.DataDir(i), patterns)
		require.NoError(t, err)
		require.Empty(t, found, "plaintext key material")
		for _, f := range files {
			scanned = append(scanned, fmt.Sprintf("hsm-%d/%s", i, f))
		}
	}
	t.Logf("scanned %d files: %v", len(scanned), scanned)
	for i := range c.Nodes {
		require.Contains(t, scanned, fmt.Sprintf("hsm-%d/raft/raft.db", i))
		snaps, err := filepath.Glob(filepath.Join(c.DataDir(i), "raft", "snapshots", "*", "state.bin"))
		require.NoError(t, err)
		require.NotEmpty(t, snaps, "hsm-%d has no snapshot to scan", i)
	}
	require.Empty(t, secretscan.Find(logs.all(), patterns), "plaintext key material in the logs")
}

// randomBytes returns n random bytes.
func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

// unwrapInto imports wrapped as a new key of type typ and returns its handle.
func unwrapInto(t *testing.T, s *userSession, unwrapping uint64, mech hsmv1.WrapMechanism, wrapped []byte, typ hsmv1.KeyType, usage *hsmv1.KeyUsage) uint64 {
	t.Helper()
	resp, err := s.cl.UnwrapKey(s.ctx, &hsmv1.UnwrapKeyRequest{UnwrappingHandle: unwrapping, Mechanism: mech, Hash: hsmv1.Hash_HASH_SHA256,
		Wrapped: wrapped, Type: typ, Usage: usage})
	require.NoError(t, err)
	return resp.GetKey().GetHandle()
}
