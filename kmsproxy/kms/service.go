package kms

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/cluster/client"
	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
	"github.com/hsmsim/hsmsim/kmsproxy/clock"
	"github.com/hsmsim/hsmsim/kmsproxy/store"
)

// Defaults for Config's zero values.
const (
	// DefaultSweepInterval is how often the sweeper looks for keys whose
	// deletion date has passed.
	DefaultSweepInterval = 10 * time.Second
	// DefaultHSMTimeout bounds each request's HSM work.
	DefaultHSMTimeout = 10 * time.Second
	// DefaultReconnectInterval is the pause between two attempts to
	// reconnect a store recorded CONNECTED, after a restart.
	DefaultReconnectInterval = 2 * time.Second
	// DefaultKeyGenTimeout bounds the generation of a key pair in the
	// fleet (and each attempt of it on one HSM): an RSA-4096 key takes
	// an HSM seconds, far more than a client attempt's default bound.
	DefaultKeyGenTimeout = 60 * time.Second
)

// FleetConfig names the KMS fleet: an ACTIVE cluster of the deployment
// whose crypto user KMS owns. Default-store keys and the internal key
// that seals kmsuser passwords live there.
type FleetConfig struct {
	ClusterID string
	Username  string
	Password  string
}

// Config configures a Service.
type Config struct {
	// DBPath is the metadata store's file.
	DBPath string
	// Account (12 digits) and Region make the ARNs.
	Account, Region string
	// Clock is the simulated time (default: real time).
	Clock *clock.Clock
	// Manager is the CloudHSM control plane: its records describe the
	// fleet and the customers' clusters.
	Manager *cluster.Manager
	Fleet   FleetConfig
	Logger  hclog.Logger
	// SweepInterval, HSMTimeout, ReconnectInterval and KeyGenTimeout
	// default to the Default* constants.
	SweepInterval     time.Duration
	HSMTimeout        time.Duration
	ReconnectInterval time.Duration
	KeyGenTimeout     time.Duration
	// ClientConfig, when set, is the base of every cluster/client
	// configuration (retry and health intervals); endpoints, trust and
	// credentials are filled in.
	ClientConfig client.Config
}

var (
	accountRE = regexp.MustCompile(`^[0-9]{12}$`)
	regionRE  = regexp.MustCompile(`^([a-z]+-){2,3}\d+$`)
)

// Validate reports the first problem of c.
func (c *Config) Validate() error {
	switch {
	case c.DBPath == "":
		return errors.New("kms: DBPath is required")
	case !accountRE.MatchString(c.Account):
		return fmt.Errorf("kms: Account %q is not a 12-digit account id", c.Account)
	case !regionRE.MatchString(c.Region):
		return fmt.Errorf("kms: Region %q is not a region name", c.Region)
	case c.Manager == nil:
		return errors.New("kms: Manager is required")
	case c.Fleet.ClusterID == "" || c.Fleet.Username == "" || c.Fleet.Password == "":
		return errors.New("kms: Fleet needs ClusterID, Username and Password")
	case c.SweepInterval < 0 || c.HSMTimeout < 0 || c.ReconnectInterval < 0 || c.KeyGenTimeout < 0:
		return errors.New("kms: intervals must not be negative")
	}
	return nil
}

// Service is the KMS API: keys of every served kind in the default key
// store, symmetric keys in CloudHSM custom key stores, and everything
// about them (package documentation). It is safe for concurrent use.
type Service struct {
	cfg   Config
	log   hclog.Logger
	db    *store.Store
	clock *clock.Clock
	mgr   *cluster.Manager
	fleet *clientHSM
	// keygen is a second session of the fleet's user for key pair
	// generation, whose attempts may take KeyGenTimeout (the fleet
	// client's attempts are short, to fail over fast).
	keygen *clientHSM
	mux    *awsjson.Mux
	// usage is the keys' last usage (GetKeyLastUsage), since the start.
	usage *usageTracker
	// health is the HSM health view of CreateKey's rule.
	health *healthView

	// ctx ends with Close; wg counts the background goroutines.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// sealMu guards sealHandle, the fleet's internal key (0: not found yet).
	sealMu     sync.Mutex
	sealHandle uint64
	// transportMu guards the fleet's transport key pair (data key pairs):
	// its private handle (0: not found yet) and public key.
	transportMu     sync.Mutex
	transportHandle uint64
	transportPublic *rsa.PublicKey

	// mu guards conns and closed, and orders connection changes against
	// the store records' connection states: both change under it.
	mu     sync.Mutex
	conns  map[string]*storeConn
	closed bool
}

// New opens the store, logs in to the fleet and starts the sweeper and
// the reconnection of the custom key stores recorded CONNECTED.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = DefaultSweepInterval
	}
	if cfg.HSMTimeout == 0 {
		cfg.HSMTimeout = DefaultHSMTimeout
	}
	if cfg.ReconnectInterval == 0 {
		cfg.ReconnectInterval = DefaultReconnectInterval
	}
	if cfg.KeyGenTimeout == 0 {
		cfg.KeyGenTimeout = DefaultKeyGenTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Clock == nil {
		cfg.Clock, _ = clock.New("")
	}
	if cfg.ClientConfig.Logger == nil {
		cfg.ClientConfig.Logger = cfg.Logger
	}
	s := &Service{cfg: cfg, log: cfg.Logger.Named("kms"), clock: cfg.Clock, mgr: cfg.Manager, conns: map[string]*storeConn{},
		usage: newUsageTracker(cfg.Clock.Now())}
	s.mux = s.newMux()

	fc, err := cfg.Manager.Cluster(cfg.Fleet.ClusterID)
	if err != nil {
		return nil, fmt.Errorf("kms: fleet: %w", err)
	}
	if !clusterActive(fc) {
		return nil, fmt.Errorf("kms: fleet cluster %s is %s, not ACTIVE", fc.ClusterID, fc.State)
	}
	if s.fleet, err = dialHSM(ctx, fc, cfg.Fleet.Username, cfg.Fleet.Password, cfg.ClientConfig); err != nil {
		return nil, fmt.Errorf("kms: log in to the fleet %s: %w", fc.ClusterID, err)
	}
	kc := cfg.ClientConfig
	kc.AttemptTimeout = cfg.KeyGenTimeout
	if s.keygen, err = dialHSM(ctx, fc, cfg.Fleet.Username, cfg.Fleet.Password, kc); err != nil {
		s.fleet.close()
		return nil, fmt.Errorf("kms: log in to the fleet %s: %w", fc.ClusterID, err)
	}
	if s.db, err = store.Open(cfg.DBPath); err != nil {
		s.fleet.close()
		s.keygen.close()
		return nil, fmt.Errorf("kms: %w", err)
	}
	s.cleanTemporaryKeys(ctx)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.health = newHealthView(s.ctx, &s.wg)
	if err := s.resumeConnections(); err != nil {
		s.cancel()
		s.db.Close()
		s.fleet.close()
		s.keygen.close()
		return nil, err
	}
	s.wg.Add(1)
	go s.sweeper()
	s.log.Info("started", "fleet", fc.ClusterID, "db", cfg.DBPath)
	return s, nil
}

// Mux returns the KMS operations this Service serves; every call returns
// the same Mux.
func (s *Service) Mux() *awsjson.Mux { return s.mux }

// newMux registers the operations.
func (s *Service) newMux() *awsjson.Mux {
	m := awsjson.NewMux(awsjson.KMS)
	for op, h := range map[string]awsjson.Handler{
		"CreateKey": s.createKey, "DescribeKey": s.describeKey, "ListKeys": s.listKeys,
		"EnableKey": s.enableKey, "DisableKey": s.disableKey,
		"ScheduleKeyDeletion": s.scheduleKeyDeletion, "CancelKeyDeletion": s.cancelKeyDeletion,
		"UpdateKeyDescription": s.updateKeyDescription,
		"Encrypt":              s.encrypt, "Decrypt": s.decrypt, "ReEncrypt": s.reEncrypt,
		"GenerateDataKey": s.generateDataKey, "GenerateDataKeyWithoutPlaintext": s.generateDataKeyWithoutPlaintext,
		"GenerateRandom": s.generateRandom,
		"CreateAlias":    s.createAlias, "UpdateAlias": s.updateAlias, "DeleteAlias": s.deleteAlias, "ListAliases": s.listAliases,
		"TagResource": s.tagResource, "UntagResource": s.untagResource, "ListResourceTags": s.listResourceTags,
		"GetKeyPolicy": s.getKeyPolicy, "ListKeyPolicies": s.listKeyPolicies, "PutKeyPolicy": s.putKeyPolicy,
		"CreateGrant": s.createGrant, "ListGrants": s.listGrants, "ListRetirableGrants": s.listRetirableGrants,
		"RetireGrant": s.retireGrant, "RevokeGrant": s.revokeGrant,
		"Sign": s.sign, "Verify": s.verify, "GetPublicKey": s.getPublicKey,
		"GenerateMac": s.generateMac, "VerifyMac": s.verifyMac,
		"GenerateDataKeyPair": s.generateDataKeyPair, "GenerateDataKeyPairWithoutPlaintext": s.generateDataKeyPairWithoutPlaintext,
		"EnableKeyRotation": s.enableKeyRotation, "DisableKeyRotation": s.disableKeyRotation,
		"GetKeyRotationStatus": s.getKeyRotationStatus, "RotateKeyOnDemand": s.rotateKeyOnDemand,
		"ListKeyRotations":       s.listKeyRotations,
		"GetParametersForImport": s.getParametersForImport, "ImportKeyMaterial": s.importKeyMaterial,
		"DeleteImportedKeyMaterial": s.deleteImportedKeyMaterial,
		"CreateCustomKeyStore":      s.createCustomKeyStore, "DescribeCustomKeyStores": s.describeCustomKeyStores,
		"ConnectCustomKeyStore": s.connectCustomKeyStore, "DisconnectCustomKeyStore": s.disconnectCustomKeyStore,
		"UpdateCustomKeyStore": s.updateCustomKeyStore, "DeleteCustomKeyStore": s.deleteCustomKeyStore,
		"GetKeyLastUsage": s.getKeyLastUsage,
		"ReplicateKey":    s.replicateKey, "UpdatePrimaryRegion": s.updatePrimaryRegion, "DeriveSharedSecret": s.deriveSharedSecret,
	} {
		if trackedOperations[op] {
			h = s.tracked(h)
		}
		m.Handle(op, h)
	}
	return m
}

// trackedOperations are the cryptographic operations GetKeyLastUsage
// reports (botocore KeyLastUsageTrackingOperation, but DeriveSharedSecret,
// which is not served).
var trackedOperations = map[string]bool{
	"Decrypt": true, "Encrypt": true, "GenerateDataKey": true, "GenerateDataKeyPair": true,
	"GenerateDataKeyPairWithoutPlaintext": true, "GenerateDataKeyWithoutPlaintext": true, "GenerateMac": true,
	"ReEncrypt": true, "Sign": true, "Verify": true, "VerifyMac": true,
}

// Close stops the background work, closes every HSM client and the store.
// Requests must have stopped: the Service serves none after Close.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	s.mu.Lock()
	conns := s.conns
	s.conns = map[string]*storeConn{}
	s.mu.Unlock()
	for _, c := range conns {
		c.stop()
	}
	s.fleet.close()
	s.keygen.close()
	return s.db.Close()
}

// Reset deletes every KMS key, alias and custom key store record, and
// disconnects the stores. The keys' HSM keys are deleted best effort.
func (s *Service) Reset(ctx context.Context) error {
	var keys []*store.Key
	if err := s.db.View(func(tx *store.Tx) (err error) {
		keys, err = tx.Keys()
		return err
	}); err != nil {
		return fmt.Errorf("kms: reset: %w", err)
	}
	for _, k := range keys {
		s.deleteBackingKeys(ctx, k)
	}
	s.usage.reset()
	s.mu.Lock()
	err := s.db.Reset()
	conns := s.conns
	s.conns = map[string]*storeConn{}
	s.mu.Unlock()
	for _, c := range conns {
		c.stop()
	}
	if err != nil {
		return fmt.Errorf("kms: reset: %w", err)
	}
	s.log.Info("reset", "keys", len(keys))
	return nil
}

// sweeper runs Sweep every SweepInterval until Close.
func (s *Service) sweeper() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.Sweep(s.ctx); err != nil && s.ctx.Err() == nil {
			s.log.Warn("sweep failed", "error", err)
		}
	}
}

// Sweep does what the clock made due: it deletes the keys whose deletion
// date has passed, as AWS does (the metadata, the keys' aliases and
// grants first, in one transaction, then a best-effort delete of each
// backing HSM key; a key whose HSM key could not be deleted is logged,
// its material orphaned in the cluster), runs the automatic rotations
// that are due, and expires imported material and import parameters. It
// returns how many keys it deleted.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	now := s.clock.Now()
	due := func(k *store.Key) bool { return k.State == store.KeyPendingDeletion && !k.DeletionDate.After(now) }
	// Look first, in a read-only transaction: a write transaction would
	// hold the writers up (and cost a commit) for nothing on most sweeps.
	// Either reads only the keys whose due date has come (store.Key.DueDate
	// covers a deletion date), not every key.
	anyDue := false
	err := s.db.View(func(tx *store.Tx) error {
		keys, err := tx.KeysDueBy(now)
		anyDue = slices.ContainsFunc(keys, due)
		return err
	})
	var deleted []*store.Key
	if err == nil && anyDue {
		err = s.db.Update(func(tx *store.Tx) error {
			deleted = nil
			keys, err := tx.KeysDueBy(now)
			if err != nil {
				return err
			}
			for _, k := range keys {
				if due(k) {
					if err := tx.DeleteKey(k.ID); err != nil {
						return err
					}
					deleted = append(deleted, k)
				}
			}
			return nil
		})
	}
	if err != nil {
		return 0, fmt.Errorf("kms: sweep: %w", err)
	}
	for _, k := range deleted {
		s.usage.forget(k.ID)
		s.log.Info("key deleted", "key_id", k.ID, "deletion_date", k.DeletionDate)
		s.deleteBackingKeys(ctx, k)
	}
	if err := errors.Join(s.rotateDue(ctx, now), s.expireImports(ctx, now)); err != nil {
		return len(deleted), fmt.Errorf("kms: sweep: %w", err)
	}
	return len(deleted), nil
}

// deleteBackingKeys deletes a key's HSM keys (every material version,
// both halves of a pair, an import's wrapping key pair), best effort.
func (s *Service) deleteBackingKeys(ctx context.Context, k *store.Key) {
	h, aerr := s.hsmFor(ctx, k)
	var handles []uint64
	for _, b := range k.BackingKeys {
		handles = append(handles, b.Handle, b.PublicHandle)
	}
	if k.Import != nil {
		handles = append(handles, k.Import.PrivateHandle, k.Import.PublicHandle)
	}
	for _, handle := range handles {
		if handle == 0 {
			continue
		}
		if aerr != nil {
			s.log.Warn("backing key not deleted: its cluster is not reachable", "key_id", k.ID, "handle", handle, "custom_key_store_id", k.CustomKeyStoreID)
			continue
		}
		s.deleteHSMKey(ctx, h, k.ID, handle)
	}
}

// deleteHSMKey deletes one HSM key, best effort: a key already gone is
// fine, another failure is logged (the key is orphaned in the cluster).
func (s *Service) deleteHSMKey(ctx context.Context, h HSM, keyID string, handle uint64) {
	hctx, cancel := context.WithTimeout(ctx, s.cfg.HSMTimeout)
	err := h.DeleteKey(hctx, handle)
	cancel()
	if err != nil && !errors.Is(err, ErrHSMKeyNotFound) {
		s.log.Warn("backing key not deleted", "key_id", keyID, "handle", handle, "error", err)
	}
}

// hsmFor returns the HSM that holds a key's material: the fleet, or its
// custom key store's cluster while connected (waiting, after a restart,
// for the connection the store resumes).
func (s *Service) hsmFor(ctx context.Context, k *store.Key) (HSM, *awsjson.Error) {
	if k.Origin != store.OriginAWSCloudHSM {
		return s.fleet, nil
	}
	if h := s.resumedStoreHSM(ctx, k.CustomKeyStoreID); h != nil {
		return h, nil
	}
	return nil, newErr(excInvalidState, msgCannotCommunicate)
}

// storeHSM returns a connected store's HSM, or nil.
func (s *Service) storeHSM(id string) *clientHSM {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.conns[id]; c != nil {
		return c.hsm
	}
	return nil
}

// hsmErr maps an HSM failure during a request on key k to the exception
// KMS returns. Custom key stores: every failure is KMSInvalidStateException
// (reference §4.4), except a failed authentication, which is the
// ciphertext's fault. Default store: unreachable is
// DependencyTimeoutException, anything else KMSInternalException.
func (s *Service) hsmErr(op string, k *store.Key, err error) error {
	if errors.Is(err, ErrHSMDecrypt) {
		return newErr(excInvalidCiphertext, msgInvalidCiphertext)
	}
	s.log.Warn("hsm operation failed", "operation", op, "key_id", k.ID, "custom_key_store_id", k.CustomKeyStoreID, "error", err)
	if k.Origin == store.OriginAWSCloudHSM {
		if errors.Is(err, ErrHSMKeyNotFound) {
			return newErr(excInvalidState, "The backing key of %s is not in the CloudHSM cluster associated with custom key store %s.", k.ARN, k.CustomKeyStoreID)
		}
		return newErr(excInvalidState, msgCannotCommunicate)
	}
	if errors.Is(err, ErrHSMUnavailable) {
		return newErr(excDependencyTimeout, "The system timed out while trying to fulfill the request. You can retry the request.")
	}
	return internalErr()
}

// hsmCtx bounds a request's HSM work.
func (s *Service) hsmCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.HSMTimeout)
}

// keygenCtx bounds a key pair generation.
func (s *Service) keygenCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.KeyGenTimeout)
}

// keyARN and aliasARN build ARNs in the Service's account and region.
func (s *Service) keyARN(id string) string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", s.cfg.Region, s.cfg.Account, id)
}

func (s *Service) aliasARN(name string) string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:%s", s.cfg.Region, s.cfg.Account, name)
}
