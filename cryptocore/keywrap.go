package cryptocore

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
)

// MaxKeyWrapInput is the largest plaintext, in bytes, that WrapKW and WrapKWP
// accept (1 MiB). The wrapped form is at most MaxKeyWrapInput+8 bytes, and
// UnwrapKW and UnwrapKWP reject anything longer with ErrInputSize before doing
// any work.
//
// RFC 3394 allows up to 2^64 semiblocks and RFC 5649 up to 2^32-1 bytes; the
// bound here is far above any key an HSM wraps and keeps an unwrap of hostile
// input cheap (6*n AES blocks, with n at most 2^17).
const MaxKeyWrapInput = 1 << 20

// semiblock is the RFC 3394 unit: half an AES block, 64 bits.
const semiblock = 8

// kwIV is the default initial value of RFC 3394 §2.2.3.1.
var kwIV = [semiblock]byte{0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6}

// kwpIVPrefix is the 32-bit constant of the RFC 5649 §3 alternative initial
// value; the other 32 bits hold the message length indicator (MLI).
var kwpIVPrefix = [4]byte{0xA6, 0x59, 0x59, 0xA6}

// newKEK checks the key-encryption key's size and returns its AES cipher.
func newKEK(kek []byte) (cipher.Block, error) {
	switch len(kek) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("cryptocore: key wrap: KEK of %d bytes, want 16, 24 or 32: %w", len(kek), ErrKeySize)
	}
	b, err := aes.NewCipher(kek)
	if err != nil {
		// Unreachable: the size was checked above.
		return nil, fmt.Errorf("cryptocore: key wrap: %w", ErrKeySize)
	}
	return b, nil
}

// wrapRounds is the wrapping process W of RFC 3394 §2.2.1 (index-based form),
// done in place: a holds the initial value on entry and the integrity check
// register C[0] on return; r holds the n plaintext semiblocks P[1..n] on entry
// and C[1..n] on return. len(a) is 8 and len(r) a non-zero multiple of 8.
func wrapRounds(b cipher.Block, a, r []byte) {
	n := len(r) / semiblock
	var blk [aes.BlockSize]byte
	for j := 0; j <= 5; j++ {
		for i := 1; i <= n; i++ {
			ri := r[(i-1)*semiblock : i*semiblock]
			// B = AES(K, A | R[i])
			copy(blk[:semiblock], a)
			copy(blk[semiblock:], ri)
			b.Encrypt(blk[:], blk[:])
			// A = MSB(64, B) ^ t where t = (n*j)+i; R[i] = LSB(64, B)
			t := uint64(n)*uint64(j) + uint64(i)
			binary.BigEndian.PutUint64(a, binary.BigEndian.Uint64(blk[:semiblock])^t)
			copy(ri, blk[semiblock:])
		}
	}
	clear(blk[:])
}

// unwrapRounds is the unwrapping process W^-1 of RFC 3394 §2.2.2
// (index-based form), done in place: a holds C[0] on entry and the recovered
// initial value on return; r holds C[1..n] on entry and P[1..n] on return.
// The caller checks the initial value.
func unwrapRounds(b cipher.Block, a, r []byte) {
	n := len(r) / semiblock
	var blk [aes.BlockSize]byte
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			ri := r[(i-1)*semiblock : i*semiblock]
			// B = AES-1(K, (A ^ t) | R[i]) where t = n*j+i
			t := uint64(n)*uint64(j) + uint64(i)
			binary.BigEndian.PutUint64(blk[:semiblock], binary.BigEndian.Uint64(a)^t)
			copy(blk[semiblock:], ri)
			b.Decrypt(blk[:], blk[:])
			// A = MSB(64, B); R[i] = LSB(64, B)
			copy(a, blk[:semiblock])
			copy(ri, blk[semiblock:])
		}
	}
	clear(blk[:])
}

// WrapKW wraps plaintext under the AES key-encryption key kek with the AES
// Key Wrap algorithm of RFC 3394 §2.2.1 (NIST SP 800-38F KW) and the default
// initial value A6A6A6A6A6A6A6A6 (§2.2.3.1). The result is len(plaintext)+8
// bytes.
//
// kek must be 16, 24 or 32 bytes, else ErrKeySize. plaintext must be a
// multiple of 8 bytes, at least 16 bytes (two semiblocks, as RFC 3394 §2
// and SP 800-38F require) and at most MaxKeyWrapInput bytes, else
// ErrInputSize. Use WrapKWP for other lengths.
func WrapKW(kek, plaintext []byte) ([]byte, error) {
	b, err := newKEK(kek)
	if err != nil {
		return nil, err
	}
	if len(plaintext) < 2*semiblock || len(plaintext)%semiblock != 0 || len(plaintext) > MaxKeyWrapInput {
		return nil, fmt.Errorf("cryptocore: key wrap: plaintext of %d bytes, want a multiple of 8 from 16 to %d: %w",
			len(plaintext), MaxKeyWrapInput, ErrInputSize)
	}
	out := make([]byte, semiblock+len(plaintext))
	copy(out[:semiblock], kwIV[:])
	copy(out[semiblock:], plaintext)
	wrapRounds(b, out[:semiblock], out[semiblock:])
	return out, nil
}

// UnwrapKW reverses WrapKW: it unwraps wrapped under kek with the AES Key
// Unwrap algorithm of RFC 3394 §2.2.2 and checks in constant time that the
// recovered initial value is the default A6A6A6A6A6A6A6A6 (§2.2.3). The
// result is len(wrapped)-8 bytes.
//
// kek must be 16, 24 or 32 bytes, else ErrKeySize. wrapped must be a multiple
// of 8 bytes, at least 24 and at most MaxKeyWrapInput+8, else ErrInputSize. A
// failed integrity check (wrong KEK or changed data) returns ErrUnwrapFailed
// and no plaintext; the partly unwrapped bytes are zeroed.
func UnwrapKW(kek, wrapped []byte) ([]byte, error) {
	b, err := newKEK(kek)
	if err != nil {
		return nil, err
	}
	if len(wrapped) < 3*semiblock || len(wrapped)%semiblock != 0 || len(wrapped) > MaxKeyWrapInput+semiblock {
		return nil, fmt.Errorf("cryptocore: key unwrap: wrapped key of %d bytes, want a multiple of 8 from 24 to %d: %w",
			len(wrapped), MaxKeyWrapInput+semiblock, ErrInputSize)
	}
	var a [semiblock]byte
	copy(a[:], wrapped[:semiblock])
	out := make([]byte, len(wrapped)-semiblock)
	copy(out, wrapped[semiblock:])
	unwrapRounds(b, a[:], out)
	if subtle.ConstantTimeCompare(a[:], kwIV[:]) != 1 {
		clear(out)
		return nil, fmt.Errorf("cryptocore: key unwrap (RFC 3394): %w", ErrUnwrapFailed)
	}
	return out, nil
}

// WrapKWP wraps plaintext under the AES key-encryption key kek with the AES
// Key Wrap with Padding algorithm of RFC 5649 §4.1 (NIST SP 800-38F KWP). The
// alternative initial value (§3) is A65959A6 followed by the plaintext length
// as a 32-bit big-endian integer; the plaintext is padded with zeros to a
// multiple of 8 bytes. A padded plaintext of a single semiblock is encrypted
// as one AES block, AES(K, AIV | P[1]); longer ones go through the RFC 3394
// wrapping process with AIV as the initial value. The result is the padded
// length plus 8 bytes.
//
// kek must be 16, 24 or 32 bytes, else ErrKeySize. plaintext must be 1 to
// MaxKeyWrapInput bytes (RFC 5649 allows up to 2^32-1), else ErrInputSize.
func WrapKWP(kek, plaintext []byte) ([]byte, error) {
	b, err := newKEK(kek)
	if err != nil {
		return nil, err
	}
	if len(plaintext) == 0 || len(plaintext) > MaxKeyWrapInput {
		return nil, fmt.Errorf("cryptocore: key wrap with padding: plaintext of %d bytes, want 1 to %d: %w",
			len(plaintext), MaxKeyWrapInput, ErrInputSize)
	}
	padded := (len(plaintext) + semiblock - 1) &^ (semiblock - 1)
	out := make([]byte, semiblock+padded)
	copy(out[:4], kwpIVPrefix[:])
	binary.BigEndian.PutUint32(out[4:semiblock], uint32(len(plaintext)))
	copy(out[semiblock:], plaintext) // the padding bytes stay zero
	if padded == semiblock {
		// RFC 5649 §4.1: C[0] | C[1] = ENC(K, A | P[1]).
		b.Encrypt(out, out)
		return out, nil
	}
	wrapRounds(b, out[:semiblock], out[semiblock:])
	return out, nil
}

// UnwrapKWP reverses WrapKWP: it unwraps wrapped under kek with the AES Key
// Unwrap with Padding algorithm of RFC 5649 §4.2 and runs the integrity check
// of §3: the first 32 bits of the recovered initial value must be A65959A6,
// the message length indicator MLI must satisfy 8*(n-1) < MLI <= 8*n for n
// unwrapped semiblocks, and the 8*n-MLI padding bytes must be zero. The checks
// are combined in constant time, and every failure of them returns
// ErrUnwrapFailed, so a caller cannot tell which one failed. The result is
// MLI bytes long.
//
// kek must be 16, 24 or 32 bytes, else ErrKeySize. wrapped must be a multiple
// of 8 bytes, at least 16 and at most MaxKeyWrapInput+8, else ErrInputSize. On
// failure the partly unwrapped bytes are zeroed and no plaintext is returned.
func UnwrapKWP(kek, wrapped []byte) ([]byte, error) {
	b, err := newKEK(kek)
	if err != nil {
		return nil, err
	}
	if len(wrapped) < 2*semiblock || len(wrapped)%semiblock != 0 || len(wrapped) > MaxKeyWrapInput+semiblock {
		return nil, fmt.Errorf("cryptocore: key unwrap with padding: wrapped key of %d bytes, want a multiple of 8 from 16 to %d: %w",
			len(wrapped), MaxKeyWrapInput+semiblock, ErrInputSize)
	}
	n := len(wrapped)/semiblock - 1
	var a [semiblock]byte
	out := make([]byte, n*semiblock)
	if n == 1 {
		// RFC 5649 §4.2: A | P[1] = DEC(K, C[0] | C[1]).
		var blk [aes.BlockSize]byte
		b.Decrypt(blk[:], wrapped)
		copy(a[:], blk[:semiblock])
		copy(out, blk[semiblock:])
		clear(blk[:])
	} else {
		copy(a[:], wrapped[:semiblock])
		copy(out, wrapped[semiblock:])
		unwrapRounds(b, a[:], out)
	}

	// RFC 5649 §3, checked without branching on the recovered values.
	ok := subtle.ConstantTimeCompare(a[:4], kwpIVPrefix[:])

	// 8*(n-1) < MLI <= 8*n  ⇔  d = MLI - 8*(n-1) - 1 is in [0, 7], computed
	// in uint64 so that MLI <= 8*(n-1) wraps around to a huge value.
	mli := uint64(binary.BigEndian.Uint32(a[4:]))
	d := mli - uint64(semiblock*(n-1)) - 1
	ok &= isZero64(d >> 3)

	// The padding is the last 8*n-MLI = 7-d bytes, that is the bytes at
	// offsets k > d of the last semiblock. When d is out of range ok is
	// already 0 and d&7 only keeps the indexing in bounds.
	dd := int(d & 7)
	last := out[len(out)-semiblock:]
	var pad byte
	for k := 0; k < semiblock; k++ {
		isPad := byte(-subtle.ConstantTimeLessOrEq(dd+1, k)) // 0xFF when k > dd
		pad |= last[k] & isPad
	}
	ok &= subtle.ConstantTimeByteEq(pad, 0)

	if ok != 1 {
		clear(out)
		return nil, fmt.Errorf("cryptocore: key unwrap with padding (RFC 5649): %w", ErrUnwrapFailed)
	}
	return out[:mli:mli], nil
}

// isZero64 returns 1 if x is 0 and 0 otherwise, in constant time.
func isZero64(x uint64) int {
	return int(1 ^ ((x | -x) >> 63))
}
