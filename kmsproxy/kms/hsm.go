package kms

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/cluster/client"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// HSM is what KMS needs from an HSM cluster: AES-256 keys that never leave
// it and AES-GCM with them. The default key store uses the KMS fleet's; a
// custom key store its cluster's, as kmsuser. Implementations are safe for
// concurrent use.
//
// Errors wrap one of ErrHSMUnavailable, ErrHSMDecrypt, ErrHSMKeyNotFound,
// ErrHSMDenied, ErrHSMInvalidInput or ErrHSMFailed; their messages never
// carry key material or plaintext.
type HSM interface {
	// GenerateKey creates a non-extractable AES-256 key usable only to
	// encrypt and decrypt, with the label and the (cluster-unique) id
	// attribute given, and returns its handle.
	GenerateKey(ctx context.Context, label string, id []byte) (uint64, error)
	// Encrypt runs AES-GCM in the HSM: the output is nonce || ciphertext || tag.
	Encrypt(ctx context.Context, handle uint64, plaintext, aad []byte) ([]byte, error)
	// Decrypt reverses Encrypt; a wrong tag, ciphertext or aad is ErrHSMDecrypt.
	Decrypt(ctx context.Context, handle uint64, ciphertext, aad []byte) ([]byte, error)
	// DeleteKey deletes a key.
	DeleteKey(ctx context.Context, handle uint64) error
	// Random returns n (1..4096) random bytes from the HSM.
	Random(ctx context.Context, n int) ([]byte, error)
}

// Errors of HSM implementations.
var (
	// ErrHSMUnavailable is returned when no HSM of the cluster could serve
	// the call (unreachable, no session, no Raft leader for a write).
	ErrHSMUnavailable = errors.New("kms: HSM cluster unavailable")
	// ErrHSMDecrypt is returned when AES-GCM authentication failed.
	ErrHSMDecrypt = errors.New("kms: HSM decryption failed")
	// ErrHSMKeyNotFound is returned when the HSM key does not exist.
	ErrHSMKeyNotFound = errors.New("kms: HSM key not found")
	// ErrHSMDenied is returned when the HSM refused the user.
	ErrHSMDenied = errors.New("kms: HSM refused the user")
	// ErrHSMInvalidInput is returned when the HSM refused the request's
	// input (an unwrapped key of the wrong size or type, ...).
	ErrHSMInvalidInput = errors.New("kms: HSM refused the input")
	// ErrHSMFailed is returned for any other HSM failure.
	ErrHSMFailed = errors.New("kms: HSM operation failed")
)

// hsmError classifies an error of the HSM API.
func hsmError(op string, err error) error {
	st := status.Convert(err)
	var sentinel error
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Aborted:
		sentinel = ErrHSMUnavailable
	case codes.FailedPrecondition:
		// The client answers FailedPrecondition once closed.
		sentinel = ErrHSMUnavailable
		if !strings.Contains(st.Message(), "client: closed") {
			sentinel = ErrHSMFailed
		}
	case codes.InvalidArgument:
		sentinel = ErrHSMInvalidInput
		if strings.Contains(st.Message(), "decryption failed") {
			sentinel = ErrHSMDecrypt
		}
	case codes.NotFound:
		sentinel = ErrHSMKeyNotFound
	case codes.PermissionDenied, codes.Unauthenticated:
		sentinel = ErrHSMDenied
	default:
		sentinel = ErrHSMFailed
	}
	return fmt.Errorf("%w: %s: %s", sentinel, op, st.Message())
}

// clientHSM is HSM over a cluster/client session on every HSM of a cluster.
type clientHSM struct {
	c   *client.Client
	api hsmv1.HsmServiceClient
}

var _ HSM = (*clientHSM)(nil)

// dialHSM logs user in on every HSM of cluster c (client.New succeeds when
// one login does) and returns the HSM.
func dialHSM(ctx context.Context, c *cluster.Cluster, user, password string, base client.Config) (*clientHSM, error) {
	cfg, err := clientConfig(c, base)
	if err != nil {
		return nil, err
	}
	cfg.Username, cfg.Password, cfg.Role = user, password, hsmv1.Role_ROLE_CRYPTO_USER
	cl, err := client.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &clientHSM{c: cl, api: hsmv1.NewHsmServiceClient(cl)}, nil
}

// retryRounds is how many rounds over a cluster's HSMs KMS's clients try a
// call (cluster/client's default is three). With the client's 50 ms pause
// between rounds, forty span a Raft election (1-2 s with hsmd's defaults),
// so that a CreateKey caught by a leader's loss is retried, with its
// request id, until the new leader applies it, instead of failing with the
// key's fate unknown; the request's HSM timeout still bounds the whole.
const retryRounds = 40

// clientConfig builds a client configuration from a cluster record:
// its HSMs' API addresses, its trust anchor and certificate id.
func clientConfig(c *cluster.Cluster, base client.Config) (client.Config, error) {
	anchor, err := parseCertPEM(c.TrustAnchor)
	if err != nil {
		return client.Config{}, fmt.Errorf("cluster %s trust anchor: %w", c.ClusterID, err)
	}
	cfg := base
	cfg.TrustAnchor, cfg.CertificateID, cfg.Endpoints = anchor, c.CertificateID, nil
	if cfg.Logger != nil {
		cfg.Logger = cfg.Logger.With("cluster_id", c.ClusterID)
	}
	for _, h := range c.Hsms {
		if h.Runtime.APIAddr == "" {
			continue
		}
		cfg.Endpoints = append(cfg.Endpoints, client.Endpoint{ID: h.HsmID, AZ: h.AvailabilityZone, Addr: h.Runtime.APIAddr})
	}
	if len(cfg.Endpoints) == 0 {
		return client.Config{}, fmt.Errorf("%w: cluster %s has no HSM", ErrHSMUnavailable, c.ClusterID)
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = retryRounds * len(cfg.Endpoints)
	}
	return cfg, nil
}

// parseCertPEM parses the first certificate of a PEM text.
func parseCertPEM(s string) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func (h *clientHSM) GenerateKey(ctx context.Context, label string, id []byte) (uint64, error) {
	resp, err := h.api.GenerateSymmetricKey(ctx, &hsmv1.GenerateSymmetricKeyRequest{
		Type: hsmv1.KeyType_KEY_TYPE_AES, SizeBits: 256, Label: label, Id: id,
		Usage: &hsmv1.KeyUsage{Encrypt: true, Decrypt: true},
	})
	if err == nil {
		return resp.GetKey().GetHandle(), nil
	}
	if found := h.recovered(ctx, err, label, id); len(found) == 1 {
		return found[0].GetHandle(), nil
	}
	return 0, hsmError("generate key", err)
}

// recovered looks up, after a key-creating write failed, whether the
// write happened anyway: a write whose fate is unknown (leadership lost
// mid-flight, applied but not yet visible here) or that a retry found
// done (the id is taken). The id is unique in the cluster (both halves of
// a pair share it), so a lookup says whether the keys exist.
func (h *clientHSM) recovered(ctx context.Context, err error, label string, id []byte) []*hsmv1.KeyAttributes {
	if c := status.Code(err); c != codes.Unavailable && c != codes.Aborted && c != codes.AlreadyExists {
		return nil
	}
	found, ferr := h.api.FindKeys(ctx, &hsmv1.FindKeysRequest{Id: id})
	if ferr != nil {
		return nil
	}
	for _, k := range found.GetKeys() {
		if k.GetLabel() != label {
			return nil
		}
	}
	return found.GetKeys()
}

// generateSecret creates a non-extractable generic secret (HMAC) key of
// bits bits, usable only to compute and verify MACs.
func (h *clientHSM) generateSecret(ctx context.Context, label string, id []byte, bits uint32) (uint64, error) {
	resp, err := h.api.GenerateSymmetricKey(ctx, &hsmv1.GenerateSymmetricKeyRequest{
		Type: hsmv1.KeyType_KEY_TYPE_GENERIC_SECRET, SizeBits: bits, Label: label, Id: id,
		Usage: &hsmv1.KeyUsage{Sign: true, Verify: true},
	})
	if err == nil {
		return resp.GetKey().GetHandle(), nil
	}
	if found := h.recovered(ctx, err, label, id); len(found) == 1 {
		return found[0].GetHandle(), nil
	}
	return 0, hsmError("generate secret", err)
}

// generateKeyPair creates an RSA or EC key pair; usage applies to the
// private half (the public half gets encrypt, verify and wrap as the
// private one has decrypt, sign and unwrap). It returns both halves.
func (h *clientHSM) generateKeyPair(ctx context.Context, req *hsmv1.GenerateKeyPairRequest) (priv, pub *hsmv1.KeyAttributes, err error) {
	resp, err := h.api.GenerateKeyPair(ctx, req)
	if err == nil {
		return resp.GetPrivateKey(), resp.GetPublicKey(), nil
	}
	if found := h.recovered(ctx, err, req.GetLabel(), req.GetId()); len(found) == 2 {
		for _, k := range found {
			if k.GetClass() == hsmv1.KeyClass_KEY_CLASS_PRIVATE {
				priv = k
			} else {
				pub = k
			}
		}
		if priv != nil && pub != nil {
			return priv, pub, nil
		}
	}
	return nil, nil, hsmError("generate key pair", err)
}

// unwrapKey imports a wrapped key as a new HSM key.
func (h *clientHSM) unwrapKey(ctx context.Context, req *hsmv1.UnwrapKeyRequest) (*hsmv1.KeyAttributes, error) {
	resp, err := h.api.UnwrapKey(ctx, req)
	if err == nil {
		return resp.GetKey(), nil
	}
	if found := h.recovered(ctx, err, req.GetLabel(), req.GetId()); len(found) == 1 {
		return found[0], nil
	}
	return nil, hsmError("unwrap key", err)
}

// wrapKey wraps an extractable key under a wrapping key.
func (h *clientHSM) wrapKey(ctx context.Context, req *hsmv1.WrapKeyRequest) ([]byte, error) {
	resp, err := h.api.WrapKey(ctx, req)
	if err != nil {
		return nil, hsmError("wrap key", err)
	}
	return resp.GetWrapped(), nil
}

// attributes returns a key's attributes.
func (h *clientHSM) attributes(ctx context.Context, handle uint64) (*hsmv1.KeyAttributes, error) {
	resp, err := h.api.GetAttributes(ctx, &hsmv1.GetAttributesRequest{Handle: handle})
	if err != nil {
		return nil, hsmError("get attributes", err)
	}
	return resp.GetKey(), nil
}

// sign signs a message or digest.
func (h *clientHSM) sign(ctx context.Context, req *hsmv1.SignRequest) ([]byte, error) {
	resp, err := h.api.Sign(ctx, req)
	if err != nil {
		return nil, hsmError("sign", err)
	}
	return resp.GetSignature(), nil
}

// verify checks a signature; a signature that does not verify is false
// and no error.
func (h *clientHSM) verify(ctx context.Context, req *hsmv1.VerifyRequest) (bool, error) {
	resp, err := h.api.Verify(ctx, req)
	if err != nil {
		return false, hsmError("verify", err)
	}
	return resp.GetValid(), nil
}

// generateMac computes an HMAC.
func (h *clientHSM) generateMac(ctx context.Context, req *hsmv1.GenerateMacRequest) ([]byte, error) {
	resp, err := h.api.GenerateMac(ctx, req)
	if err != nil {
		return nil, hsmError("generate mac", err)
	}
	return resp.GetMac(), nil
}

// verifyMac checks an HMAC; a MAC that differs is false and no error.
func (h *clientHSM) verifyMac(ctx context.Context, req *hsmv1.VerifyMacRequest) (bool, error) {
	resp, err := h.api.VerifyMac(ctx, req)
	if err != nil {
		return false, hsmError("verify mac", err)
	}
	return resp.GetValid(), nil
}

// encryptOAEP encrypts with RSA-OAEP, hash as the OAEP and MGF1 hash.
func (h *clientHSM) encryptOAEP(ctx context.Context, handle uint64, hash hsmv1.Hash, plaintext []byte) ([]byte, error) {
	resp, err := h.api.Encrypt(ctx, &hsmv1.EncryptRequest{
		Handle: handle, Mechanism: hsmv1.EncryptionMechanism_ENCRYPTION_MECHANISM_RSA_OAEP,
		Plaintext: plaintext, Hash: hash, MgfHash: hash,
	})
	if err != nil {
		return nil, hsmError("encrypt", err)
	}
	return resp.GetCiphertext(), nil
}

// decryptOAEP reverses encryptOAEP; a ciphertext that does not decrypt is
// ErrHSMDecrypt.
func (h *clientHSM) decryptOAEP(ctx context.Context, handle uint64, hash hsmv1.Hash, ciphertext []byte) ([]byte, error) {
	resp, err := h.api.Decrypt(ctx, &hsmv1.DecryptRequest{
		Handle: handle, Mechanism: hsmv1.EncryptionMechanism_ENCRYPTION_MECHANISM_RSA_OAEP,
		Ciphertext: ciphertext, Hash: hash, MgfHash: hash,
	})
	if err != nil {
		return nil, hsmError("decrypt", err)
	}
	return resp.GetPlaintext(), nil
}

func (h *clientHSM) Encrypt(ctx context.Context, handle uint64, plaintext, aad []byte) ([]byte, error) {
	resp, err := h.api.Encrypt(ctx, &hsmv1.EncryptRequest{
		Handle: handle, Mechanism: hsmv1.EncryptionMechanism_ENCRYPTION_MECHANISM_AES_GCM, Plaintext: plaintext, Aad: aad,
	})
	if err != nil {
		return nil, hsmError("encrypt", err)
	}
	return resp.GetCiphertext(), nil
}

func (h *clientHSM) Decrypt(ctx context.Context, handle uint64, ciphertext, aad []byte) ([]byte, error) {
	resp, err := h.api.Decrypt(ctx, &hsmv1.DecryptRequest{
		Handle: handle, Mechanism: hsmv1.EncryptionMechanism_ENCRYPTION_MECHANISM_AES_GCM, Ciphertext: ciphertext, Aad: aad,
	})
	if err != nil {
		return nil, hsmError("decrypt", err)
	}
	return resp.GetPlaintext(), nil
}

func (h *clientHSM) DeleteKey(ctx context.Context, handle uint64) error {
	if _, err := h.api.DeleteKey(ctx, &hsmv1.DeleteKeyRequest{Handle: handle}); err != nil {
		return hsmError("delete key", err)
	}
	return nil
}

func (h *clientHSM) Random(ctx context.Context, n int) ([]byte, error) {
	resp, err := h.api.GenerateRandom(ctx, &hsmv1.GenerateRandomRequest{Length: uint32(n)})
	if err != nil {
		return nil, hsmError("generate random", err)
	}
	return resp.GetRandom(), nil
}

// findKey returns the handle of the lowest-numbered key with label that
// the user may use, or 0.
func (h *clientHSM) findKey(ctx context.Context, label string) (uint64, error) {
	resp, err := h.api.FindKeys(ctx, &hsmv1.FindKeysRequest{Label: label})
	if err != nil {
		return 0, hsmError("find keys", err)
	}
	if len(resp.GetKeys()) == 0 {
		return 0, nil
	}
	return resp.GetKeys()[0].GetHandle(), nil
}

// changeOwnPassword changes the logged-in user's password; the client
// re-logs in with the new one from then on.
func (h *clientHSM) changeOwnPassword(ctx context.Context, user, password string) error {
	if _, err := h.api.ChangePassword(ctx, &hsmv1.ChangePasswordRequest{Username: user, NewPassword: password}); err != nil {
		return hsmError("change password", err)
	}
	return nil
}

func (h *clientHSM) close() error { return h.c.Close() }
