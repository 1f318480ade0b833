package cryptocore_test

import (
	"fmt"
	"testing"

	"github.com/hsmsim/hsmsim/cryptocore"
)

var benchSizes = []int{64, 1024, 4096}

// BenchmarkAEADSeal measures AES-256-GCM seal with a fresh random nonce, the
// operation behind every HSM Encrypt. Compare with
// `openssl speed -evp aes-256-gcm` on the same machine.
func BenchmarkAEADSeal(b *testing.B) {
	a := mustAEAD(b)
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			pt := make([]byte, n)
			dst := make([]byte, 0, cryptocore.NonceSize+n+cryptocore.TagSize)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Seal(dst[:0], pt, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAEADOpen measures AES-256-GCM open.
func BenchmarkAEADOpen(b *testing.B) {
	a := mustAEAD(b)
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			sealed, err := a.Seal(nil, make([]byte, n), nil)
			if err != nil {
				b.Fatal(err)
			}
			dst := make([]byte, 0, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Open(dst[:0], sealed, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEnvelopeSeal measures sealing a 32-byte key record in an envelope.
func BenchmarkEnvelopeSeal(b *testing.B) {
	a := mustAEAD(b)
	pt := make([]byte, 32)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cryptocore.SealEnvelope(a, []byte("key-1"), 1, pt, []byte("aad")); err != nil {
			b.Fatal(err)
		}
	}
}
