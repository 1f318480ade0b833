package kms

import "context"

// SealForTest seals a kmsuser password for store id, as the Service keeps it.
func (s *Service) SealForTest(ctx context.Context, id, password string) ([]byte, error) {
	return s.seal(ctx, id, password)
}
