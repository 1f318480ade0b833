package cryptocore_test

import (
	"crypto"
	"encoding/hex"
	"testing"

	"github.com/hsmsim/hsmsim/cryptocore"
	"github.com/stretchr/testify/require"
)

// hashTestCases lists every Hash with its name, size, crypto.Hash and the
// digests of "abc" and of the empty string (FIPS 180-4 examples, also
// computed independently with Python's hashlib).
var hashTestCases = []struct {
	h        cryptocore.Hash
	name     string
	size     int
	crypto   crypto.Hash
	abc      string
	emptyMsg string
}{
	{cryptocore.SHA1, "SHA-1", 20, crypto.SHA1,
		"a9993e364706816aba3e25717850c26c9cd0d89d",
		"da39a3ee5e6b4b0d3255bfef95601890afd80709"},
	{cryptocore.SHA224, "SHA-224", 28, crypto.SHA224,
		"23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7",
		"d14a028c2a3a2bc9476102bb288234c415a2b01f828ea62ac5b3e42f"},
	{cryptocore.SHA256, "SHA-256", 32, crypto.SHA256,
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	{cryptocore.SHA384, "SHA-384", 48, crypto.SHA384,
		"cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
		"38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b"},
	{cryptocore.SHA512, "SHA-512", 64, crypto.SHA512,
		"ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
		"cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"},
}

func TestHash(t *testing.T) {
	for _, tc := range hashTestCases {
		t.Run(tc.name, func(t *testing.T) {
			require.True(t, tc.h.Valid())
			require.Equal(t, tc.name, tc.h.String())
			require.Equal(t, tc.size, tc.h.Size())

			parsed, err := cryptocore.ParseHash(tc.name)
			require.NoError(t, err)
			require.Equal(t, tc.h, parsed)

			ch, err := tc.h.CryptoHash()
			require.NoError(t, err)
			require.Equal(t, tc.crypto, ch)
			require.Equal(t, tc.size, ch.Size())

			for msg, want := range map[string]string{"abc": tc.abc, "": tc.emptyMsg} {
				d, err := tc.h.Digest([]byte(msg))
				require.NoError(t, err)
				require.Equal(t, want, hex.EncodeToString(d), "Digest(%q)", msg)

				hh := tc.h.New()
				require.NotNil(t, hh)
				require.Equal(t, tc.size, hh.Size())
				hh.Write([]byte(msg))
				require.Equal(t, want, hex.EncodeToString(hh.Sum(nil)), "New().Sum(%q)", msg)

				ref := ch.New()
				ref.Write([]byte(msg))
				require.Equal(t, want, hex.EncodeToString(ref.Sum(nil)), "crypto.Hash(%q)", msg)
			}
		})
	}
}

func TestHashInvalid(t *testing.T) {
	for _, h := range []cryptocore.Hash{0, -1, cryptocore.SHA512 + 1, 1000} {
		require.False(t, h.Valid(), "%d", int(h))
		require.Equal(t, 0, h.Size())
		require.Nil(t, h.New())
		require.Regexp(t, `^Hash\(-?\d+\)$`, h.String())
		_, err := h.CryptoHash()
		require.ErrorIs(t, err, cryptocore.ErrUnsupported)
		_, err = h.Digest([]byte("abc"))
		require.ErrorIs(t, err, cryptocore.ErrUnsupported)
	}
}

func TestParseHashInvalid(t *testing.T) {
	for _, name := range []string{"", "sha-256", "SHA256", "SHA_256", "SHA-256 ", "SHA-3", "SHA3-256", "MD5", "SHA-512/256", "Hash(3)"} {
		h, err := cryptocore.ParseHash(name)
		require.ErrorIs(t, err, cryptocore.ErrUnsupported, "%q", name)
		require.False(t, h.Valid())
	}
}
