package kms

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
	"github.com/hsmsim/hsmsim/kmsproxy/store"
)

// Key last usage (GetKeyLastUsage) is tracked in memory: the last
// successful cryptographic operation of each key since the Service
// started, which is therefore the TrackingStartDate it reports (or the
// key's creation, when later). A restart starts tracking again, as AWS's
// contract allows ("no record since TrackingStartDate").

// keyUsage is one key's last successful cryptographic operation.
type keyUsage struct {
	operation string
	at        time.Time
	requestID string
	eventID   string
}

// usageTracker records the last usage of keys. It is safe for concurrent use.
type usageTracker struct {
	start time.Time
	mu    sync.Mutex
	last  map[string]keyUsage
}

func newUsageTracker(start time.Time) *usageTracker {
	return &usageTracker{start: start, last: map[string]keyUsage{}}
}

// record notes that the keys (ARNs) were used by op in request id.
func (u *usageTracker) record(op, requestID string, at time.Time, arns ...string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, arn := range arns {
		if i := strings.LastIndex(arn, "/"); i >= 0 && arn != "" {
			u.last[arn[i+1:]] = keyUsage{operation: op, at: at, requestID: requestID, eventID: uuid.NewString()}
		}
	}
}

func (u *usageTracker) get(keyID string) (keyUsage, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	k, found := u.last[keyID]
	return k, found
}

// reset forgets every key.
func (u *usageTracker) reset() {
	u.mu.Lock()
	defer u.mu.Unlock()
	clear(u.last)
}

func (u *usageTracker) forget(keyID string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.last, keyID)
}

// keyUser is an output of a cryptographic operation: the keys it used.
type keyUser interface{ usedKeys() []string }

func (o encryptOutput) usedKeys() []string             { return []string{o.KeyID} }
func (o decryptOutput) usedKeys() []string             { return []string{o.KeyID} }
func (o reEncryptOutput) usedKeys() []string           { return []string{o.SourceKeyID, o.KeyID} }
func (o generateDataKeyOutput) usedKeys() []string     { return []string{o.KeyID} }
func (o generateDataKeyPairOutput) usedKeys() []string { return []string{o.KeyID} }
func (o signOutput) usedKeys() []string                { return []string{o.KeyID} }
func (o verifyOutput) usedKeys() []string              { return []string{o.KeyID} }
func (o generateMacOutput) usedKeys() []string         { return []string{o.KeyID} }
func (o verifyMacOutput) usedKeys() []string           { return []string{o.KeyID} }

// tracked wraps a cryptographic operation's handler to record the keys a
// successful call used.
func (s *Service) tracked(h awsjson.Handler) awsjson.Handler {
	return func(ctx context.Context, r *awsjson.Request) (any, error) {
		out, err := h(ctx, r)
		if u, ok := out.(keyUser); ok && err == nil {
			s.usage.record(r.Operation, r.RequestID, s.clock.Now(), u.usedKeys()...)
		}
		return out, err
	}
}

type keyLastUsageData struct {
	Operation         string             `json:"Operation,omitempty"`
	Timestamp         *awsjson.Timestamp `json:"Timestamp,omitempty"`
	CloudTrailEventID string             `json:"CloudTrailEventId,omitempty"`
	KmsRequestID      string             `json:"KmsRequestId,omitempty"`
}

type getKeyLastUsageOutput struct {
	KeyID             string             `json:"KeyId"`
	KeyLastUsage      *keyLastUsageData  `json:"KeyLastUsage,omitempty"`
	TrackingStartDate *awsjson.Timestamp `json:"TrackingStartDate"`
	KeyCreationDate   *awsjson.Timestamp `json:"KeyCreationDate"`
}

// getKeyLastUsage is GetKeyLastUsage (key id or ARN, any state).
func (s *Service) getKeyLastUsage(_ context.Context, r *awsjson.Request) (any, error) {
	keyID, err := decodeKeyOnly(r)
	if err != nil {
		return nil, err
	}
	var k *store.Key
	err = s.db.View(func(tx *store.Tx) error {
		ki, err := s.lookup(tx, "GetKeyLastUsage", keyID, false)
		if err == nil {
			k = ki.k
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	start := s.usage.start
	if k.CreationDate.After(start) {
		start = k.CreationDate
	}
	out := getKeyLastUsageOutput{KeyID: k.ARN, TrackingStartDate: awsjson.TimeOf(start), KeyCreationDate: awsjson.TimeOf(k.CreationDate)}
	if u, found := s.usage.get(k.ID); found {
		out.KeyLastUsage = &keyLastUsageData{Operation: u.operation, Timestamp: awsjson.TimeOf(u.at), CloudTrailEventID: u.eventID, KmsRequestID: u.requestID}
	}
	return out, nil
}
