// Package barrier holds an HSM's cluster secrets: the domain key that seals
// every key record before it reaches Raft, and the files that keep the
// cluster secrets at rest sealed under the HSM's own device key.
//
// Nothing outside this package and the HSM's request handlers sees key
// material in the clear. See cryptocore/DESIGN.md for the key hierarchy.
package barrier

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/hsmsim/hsmsim/cryptocore"
)

// ErrSealed is returned when the barrier has no domain key yet (the HSM is
// not initialized or has not joined its cluster).
var ErrSealed = errors.New("barrier: sealed")

// RecordIDSize is the size of a key record's random identity.
const RecordIDSize = 16

// domainKeyID names the domain key in envelope headers.
var domainKeyID = []byte("domain")

// Barrier seals and opens key records under a cluster's domain key. It is safe
// for concurrent use; until Unseal it refuses everything with ErrSealed.
type Barrier struct {
	mu        sync.RWMutex
	aead      *cryptocore.AEAD
	clusterID string
}

// New returns a sealed barrier.
func New() *Barrier {
	return &Barrier{}
}

// Unseal installs the domain key of clusterID. The barrier keeps its own
// expanded copy; the caller should zero domainKey when done with it.
func (b *Barrier) Unseal(clusterID string, domainKey []byte) error {
	aead, err := cryptocore.NewAEAD(domainKey)
	if err != nil {
		return fmt.Errorf("barrier: domain key: %w", err)
	}
	if clusterID == "" {
		return errors.New("barrier: empty cluster id")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.aead, b.clusterID = aead, clusterID
	return nil
}

// Sealed reports whether the barrier lacks a domain key.
func (b *Barrier) Sealed() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.aead == nil
}

// SealRecord seals a key record's material, binding it to the cluster, the
// record's identity and its material version.
func (b *Barrier) SealRecord(recordID []byte, version uint32, material []byte) ([]byte, error) {
	aead, aad, err := b.recordAAD(recordID, version)
	if err != nil {
		return nil, err
	}
	return cryptocore.SealEnvelope(aead, domainKeyID, 1, material, aad)
}

// OpenRecord opens what SealRecord sealed for the same record and version.
// The caller owns the returned plaintext and should zero it after use.
func (b *Barrier) OpenRecord(recordID []byte, version uint32, sealed []byte) ([]byte, error) {
	aead, aad, err := b.recordAAD(recordID, version)
	if err != nil {
		return nil, err
	}
	pt, err := cryptocore.OpenEnvelope(aead, domainKeyID, 1, sealed, aad)
	if err != nil {
		return nil, fmt.Errorf("barrier: open record: %w", err)
	}
	return pt, nil
}

// recordAAD is "hsmsim-record\x00" || cluster id || 0x00 || record id || version.
func (b *Barrier) recordAAD(recordID []byte, version uint32) (*cryptocore.AEAD, []byte, error) {
	if len(recordID) != RecordIDSize {
		return nil, nil, fmt.Errorf("barrier: record id of %d bytes, want %d: %w", len(recordID), RecordIDSize, cryptocore.ErrInputSize)
	}
	b.mu.RLock()
	aead, clusterID := b.aead, b.clusterID
	b.mu.RUnlock()
	if aead == nil {
		return nil, nil, ErrSealed
	}
	aad := make([]byte, 0, 14+len(clusterID)+1+RecordIDSize+4)
	aad = append(aad, "hsmsim-record\x00"...)
	aad = append(aad, clusterID...)
	aad = append(aad, 0)
	aad = append(aad, recordID...)
	aad = binary.BigEndian.AppendUint32(aad, version)
	return aead, aad, nil
}
