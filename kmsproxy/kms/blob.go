package kms

import (
	"encoding/binary"
	"errors"
	"slices"

	"github.com/google/uuid"
)

// The ciphertext blob, version 1 (kmsproxy/DESIGN.md):
//
//	0   1   version 0x01
//	1   16  KMS key id (UUID bytes)
//	17  4   material version (big endian)
//	21  N   HSM output: 12-byte nonce || ciphertext || 16-byte tag
//
// The HSM's AES-GCM additional data is the 21-byte header followed by the
// canonical encryption context, so that any change to the header, the
// context or the ciphertext fails authentication in the HSM.
const (
	blobVersion = 0x01
	// blobHeaderLen is the header's length.
	blobHeaderLen = 21
	// gcmOverhead is the HSM's nonce and tag.
	gcmOverhead = 12 + 16
	// maxBlobLen is the largest blob (botocore CiphertextType).
	maxBlobLen = 6144
)

// errBadBlob is returned for bytes that are not a version 1 blob.
var errBadBlob = errors.New("kms: not a ciphertext blob of this KMS")

// blobHeader returns the header for a key id (a UUID) and material version.
func blobHeader(keyID string, version uint32) ([]byte, error) {
	id, err := uuid.Parse(keyID)
	if err != nil {
		return nil, err
	}
	h := make([]byte, blobHeaderLen)
	h[0] = blobVersion
	copy(h[1:17], id[:])
	binary.BigEndian.PutUint32(h[17:21], version)
	return h, nil
}

// parsedBlob is a blob split into its parts.
type parsedBlob struct {
	keyID   string
	version uint32
	header  []byte
	body    []byte
}

// parseBlob splits a blob; it checks only the layout, the HSM checks the rest.
func parseBlob(b []byte) (parsedBlob, error) {
	if len(b) < blobHeaderLen+gcmOverhead || len(b) > maxBlobLen || b[0] != blobVersion {
		return parsedBlob{}, errBadBlob
	}
	id, err := uuid.FromBytes(b[1:17])
	if err != nil {
		return parsedBlob{}, errBadBlob
	}
	return parsedBlob{
		keyID: id.String(), version: binary.BigEndian.Uint32(b[17:21]),
		header: b[:blobHeaderLen], body: b[blobHeaderLen:],
	}, nil
}

// blobAAD is the additional data of a blob: its header, then the
// encryption context in canonical form: the pairs sorted by key (bytewise),
// each key and each value preceded by its length as a 4-byte big-endian
// integer. The encoding is injective, so two different contexts never
// authenticate each other; the match is exact and case-sensitive, and only
// the order of the pairs in the request does not matter.
func blobAAD(header []byte, ec map[string]string) []byte {
	keys := make([]string, 0, len(ec))
	n := len(header)
	for k, v := range ec {
		keys = append(keys, k)
		n += 8 + len(k) + len(v)
	}
	slices.Sort(keys)
	out := make([]byte, 0, n)
	out = append(out, header...)
	for _, k := range keys {
		out = binary.BigEndian.AppendUint32(out, uint32(len(k)))
		out = append(out, k...)
		out = binary.BigEndian.AppendUint32(out, uint32(len(ec[k])))
		out = append(out, ec[k]...)
	}
	return out
}
