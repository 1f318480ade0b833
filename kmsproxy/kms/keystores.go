package kms

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"regexp"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
	"github.com/hsmsim/hsmsim/kmsproxy/store"
)

// maxCustomKeyStores is the quota of custom key stores per account and
// Region, not adjustable (reference §4.1).
const maxCustomKeyStores = 10

// storeTypeCloudHSM is the only CustomKeyStoreType served here.
const storeTypeCloudHSM = "AWS_CLOUDHSM"

// clusterIDRE is CloudHsmClusterIdType's pattern (botocore), anchored.
var clusterIDRE = regexp.MustCompile(`^cluster-[2-7a-zA-Z]{11,16}$`)

// newStoreID returns "cks-" and 17 hex digits.
func newStoreID() string {
	b := make([]byte, 9)
	rand.Read(b) // crypto/rand.Read never fails (Go 1.24+).
	return "cks-" + hex.EncodeToString(b)[:17]
}

func storeNotFound(id string) *awsjson.Error {
	return newErr(excCKSNotFound, "Custom key store %s does not exist.", id)
}

func storeInvalidState(c *store.CustomKeyStore, want string) *awsjson.Error {
	return newErr(excCKSInvalidState, "Custom key store %s is %s; %s.", c.ID, c.ConnectionState, want)
}

func clusterNotFound(id string) *awsjson.Error {
	return newErr(excCHClusterNotFound, "AWS KMS cannot find the AWS CloudHSM cluster with the specified cluster ID: %s.", id)
}

func clusterNotActive(c *cluster.Cluster) *awsjson.Error {
	return newErr(excCHClusterNotActive, "The AWS CloudHSM cluster %s is %s, not ACTIVE. Initialize and activate it first.", c.ClusterID, c.State)
}

// checkClusterHSMs enforces the rule of Create/UpdateCustomKeyStore and
// CreateKey: at least two reachable, active HSMs in different AZs.
func checkClusterHSMs(ctx context.Context, c *cluster.Cluster) error {
	return checkTwoAZs(c, reachableHSMs(ctx, c))
}

// checkTwoAZs is the rule itself, on the HSMs of c that answer.
func checkTwoAZs(c *cluster.Cluster, reach []*cluster.HSM) error {
	if distinctAZs(reach) < 2 {
		return newErr(excCHClusterInvalidConfig,
			"The AWS CloudHSM cluster %s must contain at least two active HSMs in different Availability Zones; %d active HSMs answer, in %d Availability Zones.",
			c.ClusterID, len(reach), distinctAZs(reach))
	}
	return nil
}

// lookupCluster returns a cluster record for a custom key store rule:
// CloudHsmClusterNotFoundException or CloudHsmClusterNotActiveException
// when it is missing or not active.
func (s *Service) lookupCluster(id string) (*cluster.Cluster, error) {
	c, err := s.mgr.Cluster(id)
	switch {
	case errors.Is(err, cluster.ErrNotFound):
		return nil, clusterNotFound(id)
	case err != nil:
		return nil, err
	case !clusterActive(c):
		return nil, clusterNotActive(c)
	}
	return c, nil
}

// xksInput are the external key store members, which this endpoint does
// not serve.
type xksInput struct {
	XksProxyURIEndpoint              *string         `json:"XksProxyUriEndpoint"`
	XksProxyURIPath                  *string         `json:"XksProxyUriPath"`
	XksProxyVpcEndpointServiceName   *string         `json:"XksProxyVpcEndpointServiceName"`
	XksProxyVpcEndpointServiceOwner  *string         `json:"XksProxyVpcEndpointServiceOwner"`
	XksProxyAuthenticationCredential *xksCredentials `json:"XksProxyAuthenticationCredential"`
	XksProxyConnectivity             *string         `json:"XksProxyConnectivity"`
}

type xksCredentials struct {
	AccessKeyID        *string `json:"AccessKeyId"`
	RawSecretAccessKey *string `json:"RawSecretAccessKey"`
}

func (x xksInput) set() bool {
	return x.XksProxyURIEndpoint != nil || x.XksProxyURIPath != nil || x.XksProxyVpcEndpointServiceName != nil ||
		x.XksProxyVpcEndpointServiceOwner != nil || x.XksProxyAuthenticationCredential != nil || x.XksProxyConnectivity != nil
}

func unsupportedXKS() error {
	return newErr(excUnsupportedOperation, "External key stores (EXTERNAL_KEY_STORE) are not supported; hsmsim serves AWS CloudHSM key stores.")
}

type createCustomKeyStoreInput struct {
	CustomKeyStoreName     *string `json:"CustomKeyStoreName"`
	CloudHsmClusterID      *string `json:"CloudHsmClusterId"`
	TrustAnchorCertificate *string `json:"TrustAnchorCertificate"`
	KeyStorePassword       *string `json:"KeyStorePassword"`
	CustomKeyStoreType     *string `json:"CustomKeyStoreType"`
	xksInput
}

type createCustomKeyStoreOutput struct {
	CustomKeyStoreID string `json:"CustomKeyStoreId"`
}

// createCustomKeyStore is CreateCustomKeyStore (reference §4.1): a new
// DISCONNECTED store for an ACTIVE cluster with two reachable HSMs in
// different AZs, whose trust anchor the caller knows, and that no other
// store uses, directly or through its backup lineage. The password is
// checked only at connect time; it is sealed by the fleet at once.
func (s *Service) createCustomKeyStore(ctx context.Context, r *awsjson.Request) (any, error) {
	var in createCustomKeyStoreInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	v.Required("CustomKeyStoreName", in.CustomKeyStoreName != nil)
	v.Length("CustomKeyStoreName", in.CustomKeyStoreName, 1, 256)
	v.Length("CloudHsmClusterId", in.CloudHsmClusterID, 19, 24)
	v.Pattern("CloudHsmClusterId", in.CloudHsmClusterID, clusterIDRE)
	v.Length("TrustAnchorCertificate", in.TrustAnchorCertificate, 1, 5000)
	v.SecretLength("KeyStorePassword", in.KeyStorePassword, 7, 32)
	v.Enum("CustomKeyStoreType", in.CustomKeyStoreType, "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE")
	if err := v.Err(); err != nil {
		return nil, err
	}
	if str(in.CustomKeyStoreType) == "EXTERNAL_KEY_STORE" || in.xksInput.set() {
		return nil, unsupportedXKS()
	}
	v.Required("CloudHsmClusterId", in.CloudHsmClusterID != nil)
	v.Required("TrustAnchorCertificate", in.TrustAnchorCertificate != nil)
	v.Required("KeyStorePassword", in.KeyStorePassword != nil)
	if err := v.Err(); err != nil {
		return nil, err
	}
	name, password := *in.CustomKeyStoreName, *in.KeyStorePassword

	var stores []*store.CustomKeyStore
	if err := s.db.View(func(tx *store.Tx) (err error) {
		stores, err = tx.CustomKeyStores()
		return err
	}); err != nil {
		return nil, err
	}
	for _, c := range stores {
		if c.Name != name {
			continue
		}
		// An identical request for a store still DISCONNECTED is a retry:
		// it returns the existing store.
		if c.ConnectionState == store.Disconnected && c.ClusterID == *in.CloudHsmClusterID && c.TrustAnchor == *in.TrustAnchorCertificate {
			if pw, err := s.unseal(ctx, c.ID, c.SealedPassword); err == nil && subtle.ConstantTimeCompare([]byte(pw), []byte(password)) == 1 {
				return createCustomKeyStoreOutput{CustomKeyStoreID: c.ID}, nil
			}
		}
		return nil, nameInUse(name)
	}
	if err := s.checkStoreQuota(stores); err != nil {
		return nil, err
	}
	c, err := s.lookupCluster(*in.CloudHsmClusterID)
	if err != nil {
		return nil, err
	}
	if err := clusterInUse(stores, c, ""); err != nil {
		return nil, err
	}
	if !sameCertificate(*in.TrustAnchorCertificate, c.TrustAnchor) {
		return nil, newErr(excIncorrectTrustAnchor, "The trust anchor certificate does not match the trust anchor certificate of the AWS CloudHSM cluster %s.", c.ClusterID)
	}
	if err := checkClusterHSMs(ctx, c); err != nil {
		return nil, err
	}
	rec := &store.CustomKeyStore{
		ID: newStoreID(), Name: name, ClusterID: c.ClusterID, CertificateID: c.CertificateID,
		TrustAnchor: *in.TrustAnchorCertificate, ConnectionState: store.Disconnected, CreationDate: s.clock.Now(),
	}
	if rec.SealedPassword, err = s.seal(ctx, rec.ID, password); err != nil {
		s.log.Warn("cannot seal a kmsuser password", "custom_key_store_id", rec.ID, "error", err)
		return nil, internalErr()
	}
	err = s.db.Update(func(tx *store.Tx) error {
		stores, err := tx.CustomKeyStores()
		if err != nil {
			return err
		}
		for _, o := range stores {
			if o.Name == name {
				return nameInUse(name)
			}
		}
		if err := s.checkStoreQuota(stores); err != nil {
			return err
		}
		if err := clusterInUse(stores, c, ""); err != nil {
			return err
		}
		return tx.PutCustomKeyStore(rec)
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("custom key store created", "custom_key_store_id", rec.ID, "cluster_id", c.ClusterID)
	return createCustomKeyStoreOutput{CustomKeyStoreID: rec.ID}, nil
}

func nameInUse(name string) error {
	return newErr(excCKSNameInUse, "The custom key store name %s is already in use in this account and Region.", name)
}

func (s *Service) checkStoreQuota(stores []*store.CustomKeyStore) error {
	if len(stores) >= maxCustomKeyStores {
		return newErr(excLimitExceeded, "An account can have at most %d custom key stores in a Region.", maxCustomKeyStores)
	}
	return nil
}

// clusterInUse enforces one store per cluster and per backup lineage
// (clusters that share a cluster certificate), ignoring store except.
func clusterInUse(stores []*store.CustomKeyStore, c *cluster.Cluster, except string) error {
	for _, o := range stores {
		if o.ID == except {
			continue
		}
		if o.ClusterID == c.ClusterID || o.CertificateID == c.CertificateID {
			return newErr(excCHClusterInUse, "The AWS CloudHSM cluster %s, or a cluster that shares its backup history, is already associated with custom key store %s.", c.ClusterID, o.ID)
		}
	}
	return nil
}

// sameCertificate reports whether two PEM texts hold the same certificate
// (compared parsed, so that line breaks and headers do not matter).
func sameCertificate(a, b string) bool {
	ca, err := parseCertPEM(a)
	if err != nil {
		return false
	}
	cb, err := parseCertPEM(b)
	if err != nil {
		return false
	}
	return bytes.Equal(ca.Raw, cb.Raw)
}

type describeCustomKeyStoresInput struct {
	CustomKeyStoreID   *string `json:"CustomKeyStoreId"`
	CustomKeyStoreName *string `json:"CustomKeyStoreName"`
	Limit              *int64  `json:"Limit"`
	Marker             *string `json:"Marker"`
}

type customKeyStoreEntry struct {
	CustomKeyStoreID       string             `json:"CustomKeyStoreId"`
	CustomKeyStoreName     string             `json:"CustomKeyStoreName"`
	CloudHsmClusterID      string             `json:"CloudHsmClusterId"`
	TrustAnchorCertificate string             `json:"TrustAnchorCertificate"`
	ConnectionState        string             `json:"ConnectionState"`
	ConnectionErrorCode    string             `json:"ConnectionErrorCode,omitempty"`
	CreationDate           *awsjson.Timestamp `json:"CreationDate"`
	CustomKeyStoreType     string             `json:"CustomKeyStoreType"`
}

type describeCustomKeyStoresOutput struct {
	CustomKeyStores []customKeyStoreEntry `json:"CustomKeyStores"`
	NextMarker      string                `json:"NextMarker,omitempty"`
	Truncated       bool                  `json:"Truncated"`
}

func storeEntry(c *store.CustomKeyStore) customKeyStoreEntry {
	e := customKeyStoreEntry{
		CustomKeyStoreID: c.ID, CustomKeyStoreName: c.Name, CloudHsmClusterID: c.ClusterID,
		TrustAnchorCertificate: c.TrustAnchor, ConnectionState: string(c.ConnectionState),
		CreationDate: awsjson.TimeOf(c.CreationDate), CustomKeyStoreType: storeTypeCloudHSM,
	}
	if c.ConnectionState == store.Failed {
		e.ConnectionErrorCode = c.ConnectionErrorCode
	}
	return e
}

// describeCustomKeyStores is DescribeCustomKeyStores: one store by id or
// name (not both), or every store in creation order, paged. The password
// is never returned.
func (s *Service) describeCustomKeyStores(_ context.Context, r *awsjson.Request) (any, error) {
	var in describeCustomKeyStoresInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	v.Length("CustomKeyStoreId", in.CustomKeyStoreID, 1, 64)
	v.Length("CustomKeyStoreName", in.CustomKeyStoreName, 1, 256)
	limit := checkList(&v, listInput{Limit: in.Limit, Marker: in.Marker}, 1000, 1000)
	if err := v.Err(); err != nil {
		return nil, err
	}
	if in.CustomKeyStoreID != nil && in.CustomKeyStoreName != nil {
		return nil, validation("Specify either CustomKeyStoreId or CustomKeyStoreName, not both.")
	}
	out := describeCustomKeyStoresOutput{CustomKeyStores: []customKeyStoreEntry{}}
	err := s.db.View(func(tx *store.Tx) error {
		switch {
		case in.CustomKeyStoreID != nil:
			c, err := tx.CustomKeyStore(*in.CustomKeyStoreID)
			if errors.Is(err, store.ErrNotFound) {
				return storeNotFound(*in.CustomKeyStoreID)
			}
			if err != nil {
				return err
			}
			out.CustomKeyStores = append(out.CustomKeyStores, storeEntry(c))
			return nil
		case in.CustomKeyStoreName != nil:
			stores, err := tx.CustomKeyStores()
			if err != nil {
				return err
			}
			for _, c := range stores {
				if c.Name == *in.CustomKeyStoreName {
					out.CustomKeyStores = append(out.CustomKeyStores, storeEntry(c))
					return nil
				}
			}
			return newErr(excCKSNotFound, "Custom key store %s does not exist.", *in.CustomKeyStoreName)
		}
		stores, next, err := tx.ListCustomKeyStores(str(in.Marker), limit)
		if err != nil {
			return listErr(err)
		}
		for _, c := range stores {
			out.CustomKeyStores = append(out.CustomKeyStores, storeEntry(c))
		}
		out.NextMarker, out.Truncated = next, next != ""
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

type storeIDInput struct {
	CustomKeyStoreID *string `json:"CustomKeyStoreId"`
}

func decodeStoreID(r *awsjson.Request) (string, error) {
	var in storeIDInput
	if err := r.Decode(&in); err != nil {
		return "", err
	}
	var v awsjson.Validator
	v.Required("CustomKeyStoreId", in.CustomKeyStoreID != nil)
	v.Length("CustomKeyStoreId", in.CustomKeyStoreID, 1, 64)
	if err := v.Err(); err != nil {
		return "", err
	}
	return *in.CustomKeyStoreID, nil
}

// connectCustomKeyStore is ConnectCustomKeyStore (reference §4.2): it
// returns at once, and a goroutine moves the store from CONNECTING to
// CONNECTED or FAILED. From CONNECTED or CONNECTING it does nothing; from
// FAILED or DISCONNECTING it is refused. A cluster that is not ACTIVE is
// refused synchronously, the store staying DISCONNECTED.
func (s *Service) connectCustomKeyStore(_ context.Context, r *awsjson.Request) (any, error) {
	id, err := decodeStoreID(r)
	if err != nil {
		return nil, err
	}
	rec, err := s.customKeyStore(id)
	if err != nil {
		return nil, err
	}
	switch rec.ConnectionState {
	case store.Connected, store.Connecting:
		return struct{}{}, nil
	case store.Failed, store.Disconnecting:
		return nil, storeInvalidState(rec, "disconnect it before connecting it")
	}
	c, err := s.mgr.Cluster(rec.ClusterID)
	if err == nil && !clusterActive(c) {
		return nil, clusterNotActive(c)
	}
	// A missing cluster is found by the connection: CLUSTER_NOT_FOUND.
	s.mu.Lock()
	defer s.mu.Unlock()
	err = s.db.Update(func(tx *store.Tx) error {
		cur, err := customKeyStoreIn(tx, id)
		if err != nil {
			return err
		}
		if cur.ConnectionState != store.Disconnected {
			rec = cur
			return nil
		}
		cur.ConnectionState, cur.ConnectionErrorCode = store.Connecting, ""
		return tx.PutCustomKeyStore(cur)
	})
	if err != nil {
		return nil, err
	}
	switch rec.ConnectionState {
	case store.Failed, store.Disconnecting:
		return nil, storeInvalidState(rec, "disconnect it before connecting it")
	case store.Disconnected:
		if old := s.conns[id]; old != nil {
			delete(s.conns, id)
			go old.stop()
		}
		s.startConnectLocked(id, connectUser)
		s.log.Info("custom key store connecting", "custom_key_store_id", id)
	}
	return struct{}{}, nil
}

// customKeyStore reads a store's record; CustomKeyStoreNotFoundException
// when it does not exist.
func (s *Service) customKeyStore(id string) (*store.CustomKeyStore, error) {
	var rec *store.CustomKeyStore
	err := s.db.View(func(tx *store.Tx) (err error) {
		rec, err = customKeyStoreIn(tx, id)
		return err
	})
	return rec, err
}

// customKeyStoreIn reads store id in tx: CustomKeyStoreNotFoundException
// when there is none.
func customKeyStoreIn(tx *store.Tx, id string) (*store.CustomKeyStore, error) {
	rec, err := tx.CustomKeyStore(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, storeNotFound(id)
	}
	return rec, err
}

// disconnectCustomKeyStore is DisconnectCustomKeyStore: from CONNECTED,
// CONNECTING or FAILED to DISCONNECTED. The client logs out of every HSM;
// the store's keys become Unavailable at once.
func (s *Service) disconnectCustomKeyStore(_ context.Context, r *awsjson.Request) (any, error) {
	id, err := decodeStoreID(r)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	err = s.db.Update(func(tx *store.Tx) error {
		rec, err := customKeyStoreIn(tx, id)
		if err != nil {
			return err
		}
		switch rec.ConnectionState {
		case store.Connected, store.Connecting, store.Failed:
		default:
			return storeInvalidState(rec, "only a CONNECTED, CONNECTING or FAILED store can be disconnected")
		}
		rec.ConnectionState, rec.ConnectionErrorCode = store.Disconnected, ""
		return tx.PutCustomKeyStore(rec)
	})
	c := s.conns[id]
	if err == nil {
		delete(s.conns, id)
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if c != nil {
		c.stop()
	}
	s.log.Info("custom key store disconnected", "custom_key_store_id", id)
	return struct{}{}, nil
}

type updateCustomKeyStoreInput struct {
	CustomKeyStoreID      *string `json:"CustomKeyStoreId"`
	NewCustomKeyStoreName *string `json:"NewCustomKeyStoreName"`
	KeyStorePassword      *string `json:"KeyStorePassword"`
	CloudHsmClusterID     *string `json:"CloudHsmClusterId"`
	xksInput
}

// updateCustomKeyStore is UpdateCustomKeyStore: a new name while
// CONNECTED or DISCONNECTED; a new password (which only tells KMS the
// current one) or a related cluster (same cluster certificate, e.g.
// restored from the store's cluster's backup) while DISCONNECTED.
func (s *Service) updateCustomKeyStore(ctx context.Context, r *awsjson.Request) (any, error) {
	var in updateCustomKeyStoreInput
	if err := r.Decode(&in); err != nil {
		return nil, err
	}
	var v awsjson.Validator
	v.Required("CustomKeyStoreId", in.CustomKeyStoreID != nil)
	v.Length("CustomKeyStoreId", in.CustomKeyStoreID, 1, 64)
	v.Length("NewCustomKeyStoreName", in.NewCustomKeyStoreName, 1, 256)
	v.SecretLength("KeyStorePassword", in.KeyStorePassword, 7, 32)
	v.Length("CloudHsmClusterId", in.CloudHsmClusterID, 19, 24)
	v.Pattern("CloudHsmClusterId", in.CloudHsmClusterID, clusterIDRE)
	if err := v.Err(); err != nil {
		return nil, err
	}
	if in.xksInput.set() {
		return nil, unsupportedXKS()
	}
	id := *in.CustomKeyStoreID
	rec, err := s.customKeyStore(id)
	if err != nil {
		return nil, err
	}
	// checkState applies the state rules to a record; it runs again in
	// the write transaction.
	checkState := func(rec *store.CustomKeyStore) error {
		if in.NewCustomKeyStoreName != nil && rec.ConnectionState != store.Connected && rec.ConnectionState != store.Disconnected {
			return storeInvalidState(rec, "it can be renamed only when CONNECTED or DISCONNECTED")
		}
		if (in.KeyStorePassword != nil || in.CloudHsmClusterID != nil) && rec.ConnectionState != store.Disconnected {
			return storeInvalidState(rec, "its password and cluster can be changed only when DISCONNECTED")
		}
		return nil
	}
	if err := checkState(rec); err != nil {
		return nil, err
	}
	var newCluster *cluster.Cluster
	if in.CloudHsmClusterID != nil {
		if newCluster, err = s.lookupCluster(*in.CloudHsmClusterID); err != nil {
			return nil, err
		}
		if newCluster.CertificateID != rec.CertificateID {
			return nil, newErr(excCHClusterNotRelated, "The AWS CloudHSM cluster %s does not share a backup history (cluster certificate) with %s, the cluster of custom key store %s.",
				newCluster.ClusterID, rec.ClusterID, id)
		}
		if err := checkClusterHSMs(ctx, newCluster); err != nil {
			return nil, err
		}
	}
	var sealed []byte
	if in.KeyStorePassword != nil {
		if sealed, err = s.seal(ctx, id, *in.KeyStorePassword); err != nil {
			s.log.Warn("cannot seal a kmsuser password", "custom_key_store_id", id, "error", err)
			return nil, internalErr()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	err = s.db.Update(func(tx *store.Tx) error {
		cur, err := customKeyStoreIn(tx, id)
		if err != nil {
			return err
		}
		if err := checkState(cur); err != nil {
			return err
		}
		if in.NewCustomKeyStoreName != nil {
			stores, err := tx.CustomKeyStores()
			if err != nil {
				return err
			}
			for _, o := range stores {
				if o.ID != id && o.Name == *in.NewCustomKeyStoreName {
					return nameInUse(o.Name)
				}
			}
			cur.Name = *in.NewCustomKeyStoreName
		}
		if newCluster != nil {
			cur.ClusterID = newCluster.ClusterID
		}
		if sealed != nil {
			cur.SealedPassword, cur.SealedPendingPassword = sealed, nil
		}
		return tx.PutCustomKeyStore(cur)
	})
	if err != nil {
		return nil, err
	}
	return struct{}{}, nil
}

// deleteCustomKeyStore is DeleteCustomKeyStore: a DISCONNECTED store with
// no KMS keys at all (PendingDeletion ones included). The cluster, its
// users and keys are not touched.
func (s *Service) deleteCustomKeyStore(_ context.Context, r *awsjson.Request) (any, error) {
	id, err := decodeStoreID(r)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	err = s.db.Update(func(tx *store.Tx) error {
		rec, err := customKeyStoreIn(tx, id)
		if err != nil {
			return err
		}
		if rec.ConnectionState != store.Disconnected {
			return storeInvalidState(rec, "only a DISCONNECTED store can be deleted")
		}
		keys, err := tx.Keys()
		if err != nil {
			return err
		}
		n := 0
		for _, k := range keys {
			if k.CustomKeyStoreID == id {
				n++
			}
		}
		if n > 0 {
			return newErr(excCKSHasCMKs, "Custom key store %s has %d KMS keys; delete them (schedule their deletion and wait) before deleting the store.", id, n)
		}
		return tx.DeleteCustomKeyStore(id)
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("custom key store deleted", "custom_key_store_id", id)
	return struct{}{}, nil
}

// customStoreForKey checks that a key can be created in store id now:
// CONNECTED (CustomKeyStoreInvalidStateException), its cluster ACTIVE with
// two reachable HSMs in different AZs
// (CloudHsmClusterInvalidConfigurationException).
func (s *Service) customStoreForKey(ctx context.Context, id string) (*store.CustomKeyStore, HSM, error) {
	rec, err := s.customKeyStore(id)
	if err != nil {
		return nil, nil, err
	}
	if rec.ConnectionState != store.Connected {
		return nil, nil, storeInvalidState(rec, "KMS keys can be created only in a CONNECTED custom key store")
	}
	h := s.resumedStoreHSM(ctx, id)
	if h == nil {
		return nil, nil, newErr(excInternal, msgCannotCommunicate)
	}
	c, err := s.health.record(rec.ClusterID, s.mgr.Cluster)
	switch {
	case errors.Is(err, cluster.ErrNotFound):
		return nil, nil, newErr(excCHClusterInvalidConfig, "The AWS CloudHSM cluster %s of custom key store %s does not exist.", rec.ClusterID, id)
	case err != nil:
		return nil, nil, err
	case !clusterActive(c):
		return nil, nil, newErr(excCHClusterInvalidConfig, "The AWS CloudHSM cluster %s of custom key store %s is %s, not ACTIVE.", c.ClusterID, id, c.State)
	}
	// The rule is checked on the health view: a probe per HSM with a TLS
	// handshake each (checkClusterHSMs) cost milliseconds per key.
	if err := checkTwoAZs(c, s.health.answering(ctx, c)); err != nil {
		return nil, nil, err
	}
	return rec, h, nil
}

// connectedStoreHSM returns the HSM of a CONNECTED store, for
// GenerateRandom.
func (s *Service) connectedStoreHSM(ctx context.Context, id string) (HSM, error) {
	rec, err := s.customKeyStore(id)
	if err != nil {
		return nil, err
	}
	if rec.ConnectionState != store.Connected {
		return nil, storeInvalidState(rec, "it must be CONNECTED")
	}
	if h := s.resumedStoreHSM(ctx, id); h != nil {
		return h, nil
	}
	return nil, newErr(excInvalidState, msgCannotCommunicate)
}
