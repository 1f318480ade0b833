package kms

import (
	"bytes"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func TestBlobHeaderRoundTrip(t *testing.T) {
	id := uuid.NewString()
	h, err := blobHeader(id, 0x01020304)
	require.NoError(t, err)
	require.Len(t, h, blobHeaderLen)
	require.Equal(t, byte(0x01), h[0])
	require.Equal(t, []byte{1, 2, 3, 4}, h[17:21])
	blob := append(h, bytes.Repeat([]byte{9}, gcmOverhead+5)...)
	pb, err := parseBlob(blob)
	require.NoError(t, err)
	require.Equal(t, id, pb.keyID)
	require.Equal(t, uint32(0x01020304), pb.version)
	require.Equal(t, h, pb.header)
	require.Len(t, pb.body, gcmOverhead+5)

	_, err = blobHeader("not-a-uuid", 1)
	require.Error(t, err)
}

func TestParseBlobRejects(t *testing.T) {
	h, err := blobHeader(uuid.NewString(), 1)
	require.NoError(t, err)
	body := bytes.Repeat([]byte{7}, gcmOverhead)
	tests := map[string][]byte{
		"empty":         nil,
		"header only":   h,
		"short body":    append(append([]byte{}, h...), body[:gcmOverhead-1]...),
		"wrong version": append(append([]byte{0x02}, h[1:]...), body...),
		"too long":      append(append([]byte{}, h...), make([]byte, maxBlobLen)...),
	}
	for name, b := range tests {
		_, err := parseBlob(b)
		require.ErrorIs(t, err, errBadBlob, name)
	}
	_, err = parseBlob(append(append([]byte{}, h...), body...))
	require.NoError(t, err)
}

// TestBlobAAD checks the canonical encryption context: independent of the
// map's order, different for any change, and unambiguous where a naive
// concatenation would not be.
func TestBlobAAD(t *testing.T) {
	h := []byte("header")
	base := blobAAD(h, map[string]string{"b": "2", "a": "1"})
	require.Equal(t, base, blobAAD(h, map[string]string{"a": "1", "b": "2"}), "order does not matter")
	require.True(t, bytes.HasPrefix(base, h))
	require.Equal(t, h, blobAAD(h, nil))
	require.Equal(t, h, blobAAD(h, map[string]string{}))
	distinct := []map[string]string{
		nil,
		{"a": "1"},
		{"a": "1", "b": "2"},
		{"A": "1", "b": "2"},
		{"a": "1", "b": "3"},
		{"ab": "c"},
		{"a": "bc"},
		{"a": "", "b": ""},
		{"": "ab"},
	}
	seen := map[string]int{}
	for i, ec := range distinct {
		aad := string(blobAAD(h, ec))
		if j, dup := seen[aad]; dup {
			t.Fatalf("contexts %v and %v share additional data", distinct[j], ec)
		}
		seen[aad] = i
	}
}
