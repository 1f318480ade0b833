package barrier

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hsmsim/hsmsim/cryptocore"
	"github.com/hsmsim/hsmsim/internal/atomicfile"
)

// File names in an HSM's data directory.
const (
	// DeviceKeyFile holds the device key: the simulated HSM's tamper-proof
	// storage, the one secret kept in the clear, readable by its owner only.
	DeviceKeyFile = "device.key"
	// SecretsFile holds the cluster secrets sealed under the device key.
	SecretsFile = "cluster-secrets.sealed"
)

// ErrNoSecrets is returned by LoadSecrets when the HSM has never been
// initialized or joined a cluster.
var ErrNoSecrets = errors.New("barrier: no cluster secrets")

var deviceKeyID = []byte("device")

// Secrets are what makes an HSM a member of its cluster.
type Secrets struct {
	// ClusterID is the cluster's id.
	ClusterID string `json:"cluster_id"`
	// DomainKey seals key records (32 bytes).
	DomainKey []byte `json:"domain_key"`
	// ClusterKeyPKCS8 is the cluster certificate's private key.
	ClusterKeyPKCS8 []byte `json:"cluster_key_pkcs8"`
	// ClusterCertPEM is the customer-signed cluster certificate.
	ClusterCertPEM string `json:"cluster_cert_pem"`
	// TrustAnchorPEM is the customer's CA certificate.
	TrustAnchorPEM string `json:"trust_anchor_pem"`
}

// Zero overwrites the secret fields.
func (s *Secrets) Zero() {
	cryptocore.Zero(s.DomainKey)
	cryptocore.Zero(s.ClusterKeyPKCS8)
}

// LoadOrCreateDeviceKey returns the device key in dir, creating it (0600)
// on first use.
func LoadOrCreateDeviceKey(dir string) ([]byte, error) {
	path := filepath.Join(dir, DeviceKeyFile)
	key, err := os.ReadFile(path)
	switch {
	case err == nil:
		if len(key) != cryptocore.KeySize {
			return nil, fmt.Errorf("barrier: %s has %d bytes, want %d", path, len(key), cryptocore.KeySize)
		}
		return key, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("barrier: read device key: %w", err)
	}
	key, err = cryptocore.RandomBytes(cryptocore.KeySize)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(path, key, 0o600); err != nil {
		return nil, fmt.Errorf("barrier: write device key: %w", err)
	}
	return key, nil
}

// SaveSecrets seals s under deviceKey into dir.
func SaveSecrets(dir string, deviceKey []byte, s *Secrets) error {
	aead, err := cryptocore.NewAEAD(deviceKey)
	if err != nil {
		return fmt.Errorf("barrier: device key: %w", err)
	}
	plain, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("barrier: encode secrets: %w", err)
	}
	defer cryptocore.Zero(plain)
	sealed, err := cryptocore.SealEnvelope(aead, deviceKeyID, 1, plain, []byte(SecretsFile))
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, SecretsFile), sealed, 0o600); err != nil {
		return fmt.Errorf("barrier: write secrets: %w", err)
	}
	return nil
}

// LoadSecrets opens the secrets SaveSecrets wrote; ErrNoSecrets when none.
func LoadSecrets(dir string, deviceKey []byte) (*Secrets, error) {
	sealed, err := os.ReadFile(filepath.Join(dir, SecretsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoSecrets
	}
	if err != nil {
		return nil, fmt.Errorf("barrier: read secrets: %w", err)
	}
	aead, err := cryptocore.NewAEAD(deviceKey)
	if err != nil {
		return nil, fmt.Errorf("barrier: device key: %w", err)
	}
	plain, err := cryptocore.OpenEnvelope(aead, deviceKeyID, 1, sealed, []byte(SecretsFile))
	if err != nil {
		return nil, fmt.Errorf("barrier: open secrets: %w", err)
	}
	defer cryptocore.Zero(plain)
	var s Secrets
	if err := json.Unmarshal(plain, &s); err != nil {
		return nil, fmt.Errorf("barrier: decode secrets: %w", err)
	}
	return &s, nil
}
