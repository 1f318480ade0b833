package cryptocore_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hsmsim/hsmsim/cryptocore"
)

func macKDFHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

// rfc4231 holds the test cases of RFC 4231 §4.2–§4.8 except case 5 (§4.6),
// whose expected output is a 128-bit truncation and is covered by
// TestVerifyTruncatedMAC instead. Each case has the HMAC-SHA-224, -256, -384
// and -512 outputs, in that order.
var rfc4231 = []struct {
	name string
	key  []byte
	data []byte
	want [4]string
}{
	{
		name: "case 1",
		key:  bytes.Repeat([]byte{0x0b}, 20),
		data: []byte("Hi There"),
		want: [4]string{
			"896fb1128abbdf196832107cd49df33f47b4b1169912ba4f53684b22",
			"b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
			"afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c" +
				"faea9ea9076ede7f4af152e8b2fa9cb6",
			"87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde" +
				"daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
		},
	},
	{
		name: "case 2 (key shorter than the output)",
		key:  []byte("Jefe"),
		data: []byte("what do ya want for nothing?"),
		want: [4]string{
			"a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44",
			"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
			"af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e" +
				"8e2240ca5e69e2c78b3239ecfab21649",
			"164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554" +
				"9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
		},
	},
	{
		name: "case 3 (combined length of key and data over 64 bytes)",
		key:  bytes.Repeat([]byte{0xaa}, 20),
		data: bytes.Repeat([]byte{0xdd}, 50),
		want: [4]string{
			"7fb3cb3588c6c1f6ffa9694d7d6ad2649365b0c1f65d69d1ec8333ea",
			"773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
			"88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e55966144b" +
				"2a5ab39dc13814b94e3ab6e101a34f27",
			"fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39" +
				"bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb",
		},
	},
	{
		name: "case 4 (combined length of key and data over 64 bytes)",
		key: []byte{
			0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
			0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19,
		},
		data: bytes.Repeat([]byte{0xcd}, 50),
		want: [4]string{
			"6c11506874013cac6a2abc1bb382627cec6a90d86efc012de7afec5a",
			"82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
			"3e8a69b7783c25851933ab6290af6ca77a9981480850009cc5577c6e1f573b4e" +
				"6801dd23c4a7d679ccf8a386c674cffb",
			"b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3db" +
				"a91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd",
		},
	},
	{
		name: "case 6 (key larger than the block size)",
		key:  bytes.Repeat([]byte{0xaa}, 131),
		data: []byte("Test Using Larger Than Block-Size Key - Hash Key First"),
		want: [4]string{
			"95e9a0db962095adaebe9b2d6f0dbce2d499f112f2d2b7273fa6870e",
			"60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
			"4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6" +
				"0c2ef6ab4030fe8296248df163f44952",
			"80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352" +
				"6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
		},
	},
	{
		name: "case 7 (key and data larger than the block size)",
		key:  bytes.Repeat([]byte{0xaa}, 131),
		data: []byte("This is a test using a larger than block-size key and a larger " +
			"than block-size data. The key needs to be hashed before being used " +
			"by the HMAC algorithm."),
		want: [4]string{
			"3a854166ac5d9f023f54d517d0b39dbd946770db9c2b95c9f6f565d1",
			"9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
			"6617178e941f020d351e2f254e8fd32c602420feb0b8fb9adccebb82461e99c5" +
				"a678cc31e799176d3860e6110c46523e",
			"e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944" +
				"b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58",
		},
	},
}

var macHashes = [4]cryptocore.Hash{cryptocore.SHA224, cryptocore.SHA256, cryptocore.SHA384, cryptocore.SHA512}

func TestComputeMACRFC4231(t *testing.T) {
	for _, tc := range rfc4231 {
		for i, h := range macHashes {
			t.Run(tc.name+"/"+h.String(), func(t *testing.T) {
				want := macKDFHex(t, tc.want[i])
				require.Len(t, want, h.Size())
				got, err := cryptocore.ComputeMAC(h, tc.key, tc.data)
				require.NoError(t, err)
				require.Equal(t, want, got)
				require.NoError(t, cryptocore.VerifyMAC(h, tc.key, tc.data, want))
			})
		}
	}
}

// TestComputeMACMatchesStdlib checks empty, one-byte, maximal-key and large
// inputs against crypto/hmac used directly.
func TestComputeMACMatchesStdlib(t *testing.T) {
	tests := []struct {
		name string
		key  []byte
		msg  []byte
	}{
		{"empty message", []byte("k"), nil},
		{"empty non-nil message", []byte("k"), []byte{}},
		{"one-byte key", []byte{0}, []byte("m")},
		{"maximal key", bytes.Repeat([]byte{0x5c}, cryptocore.MaxMACKeySize), []byte("m")},
		{"1 MiB message", bytes.Repeat([]byte{0x36}, 32), bytes.Repeat([]byte{0xa5}, 1<<20)},
	}
	for _, tc := range tests {
		for _, h := range macHashes {
			t.Run(tc.name+"/"+h.String(), func(t *testing.T) {
				ref := hmac.New(h.New, tc.key)
				ref.Write(tc.msg)
				want := ref.Sum(nil)
				got, err := cryptocore.ComputeMAC(h, tc.key, tc.msg)
				require.NoError(t, err)
				require.Equal(t, want, got)
				require.NoError(t, cryptocore.VerifyMAC(h, tc.key, tc.msg, got))
			})
		}
	}
}

func TestComputeMACErrors(t *testing.T) {
	key := bytes.Repeat([]byte{0x0b}, 32)
	tests := []struct {
		name string
		h    cryptocore.Hash
		key  []byte
		want error
	}{
		{"SHA-1", cryptocore.SHA1, key, cryptocore.ErrUnsupported},
		{"zero Hash", cryptocore.Hash(0), key, cryptocore.ErrUnsupported},
		{"unknown Hash", cryptocore.Hash(99), key, cryptocore.ErrUnsupported},
		{"negative Hash", cryptocore.Hash(-1), key, cryptocore.ErrUnsupported},
		{"nil key", cryptocore.SHA256, nil, cryptocore.ErrKeySize},
		{"empty key", cryptocore.SHA256, []byte{}, cryptocore.ErrKeySize},
		{"key one byte too long", cryptocore.SHA256, make([]byte, cryptocore.MaxMACKeySize+1), cryptocore.ErrKeySize},
		{"huge key", cryptocore.SHA512, make([]byte, 1<<20), cryptocore.ErrKeySize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mac, err := cryptocore.ComputeMAC(tc.h, tc.key, []byte("msg"))
			require.ErrorIs(t, err, tc.want)
			require.Nil(t, mac)

			err = cryptocore.VerifyMAC(tc.h, tc.key, []byte("msg"), make([]byte, 32))
			require.ErrorIs(t, err, tc.want)

			err = cryptocore.VerifyTruncatedMAC(tc.h, tc.key, []byte("msg"), make([]byte, 16), 16)
			require.ErrorIs(t, err, tc.want)
		})
	}
}

func TestVerifyMAC(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	msg := []byte("attack at dawn")
	for _, h := range macHashes {
		t.Run(h.String(), func(t *testing.T) {
			tag, err := cryptocore.ComputeMAC(h, key, msg)
			require.NoError(t, err)
			require.NoError(t, cryptocore.VerifyMAC(h, key, msg, tag))

			// Every single-bit change to the tag is caught.
			for bit := 0; bit < 8*len(tag); bit++ {
				bad := bytes.Clone(tag)
				bad[bit/8] ^= 1 << (bit % 8)
				require.ErrorIs(t, cryptocore.VerifyMAC(h, key, msg, bad), cryptocore.ErrInvalidMAC, "bit %d", bit)
			}

			otherKey := bytes.Clone(key)
			otherKey[0] ^= 1
			otherHash := cryptocore.SHA256
			if h == cryptocore.SHA256 {
				otherHash = cryptocore.SHA512
			}
			bad := []struct {
				name string
				h    cryptocore.Hash
				key  []byte
				msg  []byte
				tag  []byte
			}{
				{"tampered message", h, key, []byte("attack at dusk"), tag},
				{"empty message", h, key, nil, tag},
				{"extended message", h, key, append(bytes.Clone(msg), 0), tag},
				{"wrong key", h, otherKey, msg, tag},
				{"other hash", otherHash, key, msg, tag},
				{"truncated tag", h, key, msg, tag[:len(tag)-1]},
				{"half tag", h, key, msg, tag[:len(tag)/2]},
				{"extended tag", h, key, msg, append(bytes.Clone(tag), 0)},
				{"empty tag", h, key, msg, []byte{}},
				{"nil tag", h, key, msg, nil},
				{"zero tag", h, key, msg, make([]byte, len(tag))},
			}
			for _, tc := range bad {
				err := cryptocore.VerifyMAC(tc.h, tc.key, tc.msg, tc.tag)
				require.ErrorIs(t, err, cryptocore.ErrInvalidMAC, tc.name)
				require.NotContains(t, err.Error(), hex.EncodeToString(tag), tc.name)
				require.NotContains(t, err.Error(), string(key), tc.name)
			}
		})
	}
}

func TestVerifyTruncatedMAC(t *testing.T) {
	key := bytes.Repeat([]byte{0x0c}, 20)
	msg := []byte("Test With Truncation")

	// RFC 4231 §4.6 (test case 5): HMAC-SHA-256 truncated to 128 bits.
	rfcTag := macKDFHex(t, "a3b6167473100ee06e0c796c2955552b")
	require.NoError(t, cryptocore.VerifyTruncatedMAC(cryptocore.SHA256, key, msg, rfcTag, 16))
	require.ErrorIs(t, cryptocore.VerifyMAC(cryptocore.SHA256, key, msg, rfcTag), cryptocore.ErrInvalidMAC,
		"VerifyMAC must require the full-length MAC")

	for _, h := range macHashes {
		t.Run(h.String(), func(t *testing.T) {
			full, err := cryptocore.ComputeMAC(h, key, msg)
			require.NoError(t, err)
			minLen := h.Size() / 2

			for n := minLen; n <= h.Size(); n++ {
				require.NoError(t, cryptocore.VerifyTruncatedMAC(h, key, msg, full[:n], minLen), "length %d", n)
				bad := bytes.Clone(full[:n])
				bad[n-1] ^= 0x80
				require.ErrorIs(t, cryptocore.VerifyTruncatedMAC(h, key, msg, bad, minLen), cryptocore.ErrInvalidMAC, "length %d", n)
			}
			// The tag must be the leftmost bytes (RFC 2104 §5), not any others.
			require.ErrorIs(t, cryptocore.VerifyTruncatedMAC(h, key, msg, full[len(full)-minLen:], minLen), cryptocore.ErrInvalidMAC)
			require.ErrorIs(t, cryptocore.VerifyTruncatedMAC(h, key, msg, full[:minLen-1], minLen), cryptocore.ErrInvalidMAC)
			require.ErrorIs(t, cryptocore.VerifyTruncatedMAC(h, key, msg, append(bytes.Clone(full), 0), minLen), cryptocore.ErrInvalidMAC)
			require.ErrorIs(t, cryptocore.VerifyTruncatedMAC(h, key, msg, nil, minLen), cryptocore.ErrInvalidMAC)
			require.ErrorIs(t, cryptocore.VerifyTruncatedMAC(h, key, []byte("other"), full[:minLen], minLen), cryptocore.ErrInvalidMAC)
			otherKey := bytes.Clone(key)
			otherKey[19] ^= 1
			require.ErrorIs(t, cryptocore.VerifyTruncatedMAC(h, otherKey, msg, full[:minLen], minLen), cryptocore.ErrInvalidMAC)

			// The smallest and largest minimum lengths the function takes.
			require.NoError(t, cryptocore.VerifyTruncatedMAC(h, key, msg, full[:cryptocore.MinTruncatedMACSize], cryptocore.MinTruncatedMACSize))
			require.NoError(t, cryptocore.VerifyTruncatedMAC(h, key, msg, full, h.Size()))
			require.ErrorIs(t, cryptocore.VerifyTruncatedMAC(h, key, msg, full[:h.Size()-1], h.Size()), cryptocore.ErrInvalidMAC)

			for _, m := range []int{-1, 0, 1, cryptocore.MinTruncatedMACSize - 1, h.Size() + 1, 1 << 30} {
				require.ErrorIs(t, cryptocore.VerifyTruncatedMAC(h, key, msg, full, m), cryptocore.ErrInputSize, "minLen %d", m)
			}
		})
	}
}

// TestMACErrorsCarryNoSecrets checks that no error message contains the key
// or the expected MAC.
func TestMACErrorsCarryNoSecrets(t *testing.T) {
	key := []byte("SECRETKEYSECRETKEY")
	msg := []byte("message")
	want := hmac.New(sha256.New, key)
	want.Write(msg)
	tag := want.Sum(nil)
	bad := bytes.Clone(tag)
	bad[0] ^= 1
	errs := []error{
		cryptocore.VerifyMAC(cryptocore.SHA256, key, msg, bad),
		cryptocore.VerifyMAC(cryptocore.SHA256, key, msg, bad[:5]),
		cryptocore.VerifyTruncatedMAC(cryptocore.SHA256, key, msg, bad[:16], 16),
		cryptocore.VerifyMAC(cryptocore.SHA1, key, msg, bad),
	}
	for _, err := range errs {
		require.Error(t, err)
		msg := err.Error()
		require.False(t, strings.Contains(msg, "SECRETKEY"), msg)
		require.False(t, strings.Contains(msg, hex.EncodeToString(tag[:4])), msg)
	}
}
