package kms_test

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"testing"

	kmssdk "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/internal/secretscan"
)

// TestNoPlaintextKeyMaterialOnDisk extends the HSM node's disk scan to the
// endpoint: after an asymmetric key, an HMAC key, imported material (a
// symmetric key, an HMAC key, an EC private key) and data key pairs, no
// file of the endpoint (its bbolt store, the control plane's records) or
// of the fleet's HSMs, and no line the endpoint logged, holds the bytes
// of the imported material or of the data key pairs' private keys, raw,
// hex or base64.
func TestNoPlaintextKeyMaterialOnDisk(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w := newWrapper(t)
	e.createKey(&kmssdk.CreateKeyInput{KeySpec: types.KeySpecRsa2048, KeyUsage: types.KeyUsageTypeSignVerify})
	e.createKey(&kmssdk.CreateKeyInput{KeySpec: types.KeySpecHmac384, KeyUsage: types.KeyUsageTypeGenerateVerifyMac})

	var patterns []secretscan.Pattern
	importInto := func(name string, in *kmssdk.CreateKeyInput, material []byte, alg types.AlgorithmSpec) {
		in.Origin = types.OriginTypeExternal
		md := e.createKey(in)
		p := e.importParams(*md.KeyId, alg, types.WrappingKeySpecRsa3072)
		_, err := e.importMaterial(*md.KeyId, p, w.wrap(p.PublicKey, material, alg), nil)
		require.NoError(t, err)
		patterns = append(patterns, secretscan.Patterns(name, material)...)
	}
	symMaterial := randomMaterial(t, 32)
	importInto("imported AES key", &kmssdk.CreateKeyInput{}, symMaterial, types.AlgorithmSpecRsaesOaepSha256)
	importInto("imported HMAC key", &kmssdk.CreateKeyInput{KeySpec: types.KeySpecHmac512, KeyUsage: types.KeyUsageTypeGenerateVerifyMac},
		randomMaterial(t, 64), types.AlgorithmSpecRsaesOaepSha1)
	ecDER := w.privateKey("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
	importInto("imported EC key", &kmssdk.CreateKeyInput{KeySpec: types.KeySpecEccNistP256, KeyUsage: types.KeyUsageTypeSignVerify},
		ecDER, types.AlgorithmSpecRsaAesKeyWrapSha256)
	ecKey, err := x509.ParsePKCS8PrivateKey(ecDER)
	require.NoError(t, err)
	ecD, err := ecKey.(*ecdsa.PrivateKey).Bytes()
	require.NoError(t, err)
	patterns = append(patterns, secretscan.Patterns("imported EC scalar", ecD)...)

	sym := e.createKey(nil)
	for _, spec := range []types.DataKeyPairSpec{types.DataKeyPairSpecRsa2048, types.DataKeyPairSpecEccNistP384} {
		out, err := e.kms.GenerateDataKeyPair(ctx, &kmssdk.GenerateDataKeyPairInput{KeyId: sym.KeyId, KeyPairSpec: spec})
		require.NoError(t, err)
		patterns = append(patterns, secretscan.Patterns(string(spec)+" data key pair", out.PrivateKeyPlaintext)...)
		key, err := x509.ParsePKCS8PrivateKey(out.PrivateKeyPlaintext)
		require.NoError(t, err)
		switch k := key.(type) {
		case *rsa.PrivateKey:
			for i, prime := range k.Primes {
				patterns = append(patterns, secretscan.Patterns(fmt.Sprintf("data key pair prime %d", i), prime.Bytes())...)
			}
		case *ecdsa.PrivateKey:
			d, err := k.Bytes()
			require.NoError(t, err)
			patterns = append(patterns, secretscan.Patterns("data key pair scalar", d)...)
		}
	}
	// The imported material is in use.
	e.encrypt(*sym.KeyId, []byte("x"), nil)

	// The scanner finds what it looks for.
	for skip := range 3 {
		stream := base64.StdEncoding.EncodeToString(append(make([]byte, skip), symMaterial...))
		require.NotEmpty(t, secretscan.Find([]byte("x"+stream+"y"), patterns), "base64 at offset %d", skip)
	}

	require.NoError(t, e.svc.Close())
	e.svc = nil
	for i := range e.fleet.Nodes {
		e.fleet.Stop(i)
	}
	var scanned []string
	scan := func(label, dir string) {
		files, found, err := secretscan.Dir(dir, patterns)
		require.NoError(t, err)
		require.Empty(t, found, "plaintext key material")
		for _, f := range files {
			scanned = append(scanned, label+"/"+f)
		}
	}
	scan("endpoint", e.dir)
	for i := range e.fleet.Nodes {
		scan(fmt.Sprintf("hsm-%d", i), e.fleet.DataDir(i))
	}
	t.Logf("scanned %d files: %v", len(scanned), scanned)
	require.Contains(t, scanned, "endpoint/kms.db")
	require.Contains(t, scanned, "hsm-0/raft/raft.db")
	require.Empty(t, secretscan.Find(e.logged(), patterns), "plaintext key material in the endpoint's logs")
}
