package cluster_test

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
)

func parseAnchor(s string) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("no PEM")
	}
	return x509.ParseCertificate(block.Bytes)
}
