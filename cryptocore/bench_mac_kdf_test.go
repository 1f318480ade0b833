package cryptocore_test

import (
	"bytes"
	"testing"

	"github.com/hsmsim/hsmsim/cryptocore"
)

func BenchmarkComputeMAC(b *testing.B) {
	key := bytes.Repeat([]byte{0x0b}, 32)
	msg := bytes.Repeat([]byte{0xa5}, 64)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cryptocore.ComputeMAC(cryptocore.SHA256, key, msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCounterKDF(b *testing.B) {
	key := bytes.Repeat([]byte{0x0b}, 32)
	label := []byte("hsmsim-kms-dek")
	nonce := bytes.Repeat([]byte{0x5a}, 32)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cryptocore.CounterKDF(cryptocore.SHA256, key, label, nonce, 32); err != nil {
			b.Fatal(err)
		}
	}
}
