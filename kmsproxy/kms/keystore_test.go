package kms_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	kmssdk "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hsmsim/hsmsim/cluster"
	"github.com/hsmsim/hsmsim/kmsproxy/store"
	"github.com/hsmsim/hsmsim/node"
	"github.com/hsmsim/hsmsim/node/nodetest"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

var storeIDRE = regexp.MustCompile(`^cks-[0-9a-f]{17}$`)

func (e *env) createStore(name, clusterID, anchor, password string) (string, error) {
	out, err := e.kms.CreateCustomKeyStore(ctx, &kmssdk.CreateCustomKeyStoreInput{
		CustomKeyStoreName: aws.String(name), CloudHsmClusterId: aws.String(clusterID),
		TrustAnchorCertificate: aws.String(anchor), KeyStorePassword: aws.String(password),
	})
	if err != nil {
		return "", err
	}
	return *out.CustomKeyStoreId, nil
}

func (e *env) describeStore(id string) types.CustomKeyStoresListEntry {
	e.t.Helper()
	out, err := e.kms.DescribeCustomKeyStores(ctx, &kmssdk.DescribeCustomKeyStoresInput{CustomKeyStoreId: aws.String(id)})
	require.NoError(e.t, err)
	require.Len(e.t, out.CustomKeyStores, 1)
	return out.CustomKeyStores[0]
}

// waitSettled waits until a store is no longer CONNECTING and checks its
// state (and, when FAILED, its error code).
func (e *env) waitSettled(id string, want types.ConnectionStateType, code types.ConnectionErrorCodeType) {
	e.t.Helper()
	var got types.CustomKeyStoresListEntry
	require.Eventually(e.t, func() bool {
		got = e.describeStore(id)
		return got.ConnectionState != types.ConnectionStateTypeConnecting
	}, 30*time.Second, 20*time.Millisecond)
	require.Equal(e.t, want, got.ConnectionState, "error code %q", got.ConnectionErrorCode)
	require.Equal(e.t, code, got.ConnectionErrorCode)
}

func (e *env) connect(id string) error {
	_, err := e.kms.ConnectCustomKeyStore(ctx, &kmssdk.ConnectCustomKeyStoreInput{CustomKeyStoreId: aws.String(id)})
	return err
}

func (e *env) disconnect(id string) error {
	_, err := e.kms.DisconnectCustomKeyStore(ctx, &kmssdk.DisconnectCustomKeyStoreInput{CustomKeyStoreId: aws.String(id)})
	return err
}

func (e *env) deleteStore(id string) error {
	_, err := e.kms.DeleteCustomKeyStore(ctx, &kmssdk.DeleteCustomKeyStoreInput{CustomKeyStoreId: aws.String(id)})
	return err
}

func (e *env) updateStore(in *kmssdk.UpdateCustomKeyStoreInput) error {
	_, err := e.kms.UpdateCustomKeyStore(ctx, in)
	return err
}

func (e *env) createCustomKey(storeID string) *types.KeyMetadata {
	e.t.Helper()
	return e.createKey(&kmssdk.CreateKeyInput{Origin: types.OriginTypeAwsCloudhsm, CustomKeyStoreId: aws.String(storeID)})
}

// withDB stops the Service, lets f change its store file, and starts it again.
func (e *env) withDB(f func(tx *store.Tx) error) {
	e.t.Helper()
	require.NoError(e.t, e.svc.Close())
	e.svc = nil
	db, err := store.Open(filepath.Join(e.dir, "kms.db"))
	require.NoError(e.t, err)
	require.NoError(e.t, db.Update(f))
	require.NoError(e.t, db.Close())
	st, err := e.cstore.Load()
	require.NoError(e.t, err)
	e.start(st.Clusters[0].ClusterID)
}

// adminChangePassword resets kmsuser's password as the cluster's admin
// (which also unlocks it).
func adminChangePassword(t *testing.T, c *nodetest.Cluster, password string) {
	t.Helper()
	admin := c.Login(0, node.AdminUsername, nodetest.AdminPassword, hsmv1.Role_ROLE_ADMIN)
	_, err := c.Client(0).ChangePassword(admin, &hsmv1.ChangePasswordRequest{Username: kmsUser, NewPassword: password})
	require.NoError(t, err)
}

func requireLoginRefused(t *testing.T, c *nodetest.Cluster, password string) {
	t.Helper()
	_, err := c.TryLogin(0, kmsUser, password, hsmv1.Role_ROLE_CRYPTO_USER)
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
}

// TestCustomKeyStoreRules checks every rule and error code of reference §4
// on the custom key store operations.
func TestCustomKeyStoreRules(t *testing.T) {
	e := newEnv(t)
	const pw1, pw2 = "kmsuser-pass-1", "kmsuser-pass-2"
	cust := newCustomer(t, 2, pw1)
	custID := e.addCluster(cust, nil)
	anchor := string(cust.CustomerCA.CertPEM())
	deadAddr := func(c *cluster.Cluster) {
		for _, h := range c.Hsms {
			h.Runtime.APIAddr = "127.0.0.1:1"
		}
	}

	t.Run("create", func(t *testing.T) {
		notActive := e.addCluster(cust, nil, func(c *cluster.Cluster) { c.State = cluster.ClusterInitialized })
		oneHSM := e.addCluster(cust, []int{0})
		oneAZ := e.addCluster(cust, nil, func(c *cluster.Cluster) {
			for _, h := range c.Hsms {
				h.AvailabilityZone = "us-east-1a"
			}
		})
		silent := e.addCluster(cust, nil, deadAddr)
		degraded := e.addCluster(cust, nil, func(c *cluster.Cluster) { c.State = cluster.ClusterDegraded })
		for _, tt := range []struct {
			name, store, cluster, anchor, password string
			code, msg                              string
		}{
			{"password too short", "s", custID, anchor, "short1", "ValidationException", "keyStorePassword"},
			{"password too long", "s", custID, anchor, strings.Repeat("p", 33), "ValidationException", "'***'"},
			{"bad cluster id", "s", "cluster-123", anchor, pw1, "ValidationException", "cloudHsmClusterId"},
			{"cluster not found", "s", cluster.NewID("cluster"), anchor, pw1, "CloudHsmClusterNotFoundException", ""},
			{"cluster not active", "s", notActive, anchor, pw1, "CloudHsmClusterNotActiveException", "INITIALIZED"},
			{"incorrect trust anchor", "s", custID, string(e.fleet.CustomerCA.CertPEM()), pw1, "IncorrectTrustAnchorException", ""},
			{"trust anchor not a certificate", "s", custID, "not a certificate", pw1, "IncorrectTrustAnchorException", ""},
			{"one HSM", "s", oneHSM, anchor, pw1, "CloudHsmClusterInvalidConfigurationException", "1 active HSMs answer"},
			{"HSMs in one AZ", "s", oneAZ, anchor, pw1, "CloudHsmClusterInvalidConfigurationException", "in 1 Availability Zones"},
			{"HSMs do not answer", "s", silent, anchor, pw1, "CloudHsmClusterInvalidConfigurationException", "0 active HSMs answer"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, err := e.createStore(tt.store, tt.cluster, tt.anchor, tt.password)
				requireAPIError(t, err, tt.code, tt.msg)
				if strings.Contains(tt.name, "password") {
					require.NotContains(t, err.Error(), tt.password, "a password is never echoed")
				}
			})
		}
		_, err := e.kms.CreateCustomKeyStore(ctx, &kmssdk.CreateCustomKeyStoreInput{CustomKeyStoreName: aws.String("s"), TrustAnchorCertificate: aws.String(anchor), KeyStorePassword: aws.String(pw1)})
		requireAPIError(t, err, "ValidationException", "cloudHsmClusterId")
		_, err = e.kms.CreateCustomKeyStore(ctx, &kmssdk.CreateCustomKeyStoreInput{CustomKeyStoreName: aws.String("x"), CustomKeyStoreType: types.CustomKeyStoreTypeExternalKeyStore})
		requireAPIError(t, err, "UnsupportedOperationException")
		stores, err := e.kms.DescribeCustomKeyStores(ctx, &kmssdk.DescribeCustomKeyStoresInput{})
		require.NoError(t, err)
		require.Empty(t, stores.CustomKeyStores, "refused creations create nothing")

		// The trust anchor is compared parsed: other line endings match.
		crlf := strings.ReplaceAll(anchor, "\n", "\r\n")
		before := e.clock.Now().Add(-time.Second)
		id, err := e.createStore("store-a", custID, crlf, "wrong-password")
		require.NoError(t, err)
		require.Regexp(t, storeIDRE, id)
		d := e.describeStore(id)
		require.Equal(t, "store-a", *d.CustomKeyStoreName)
		require.Equal(t, custID, *d.CloudHsmClusterId)
		require.Equal(t, crlf, *d.TrustAnchorCertificate)
		require.Equal(t, types.ConnectionStateTypeDisconnected, d.ConnectionState)
		require.Empty(t, d.ConnectionErrorCode)
		require.Equal(t, types.CustomKeyStoreTypeAwsCloudhsm, d.CustomKeyStoreType)
		require.True(t, d.CreationDate.After(before))

		// A retry of the same request returns the same store.
		again, err := e.createStore("store-a", custID, crlf, "wrong-password")
		require.NoError(t, err)
		require.Equal(t, id, again)
		_, err = e.createStore("store-a", custID, crlf, "other-password")
		requireAPIError(t, err, "CustomKeyStoreNameInUseException")
		_, err = e.createStore("store-b", custID, anchor, pw1)
		requireAPIError(t, err, "CloudHsmClusterInUseException", id)
		related := e.addCluster(cust, nil) // another cluster of the same backup lineage
		_, err = e.createStore("store-b", related, anchor, pw1)
		requireAPIError(t, err, "CloudHsmClusterInUseException", id)
		// A DEGRADED cluster counts as active: the lineage rule answers.
		_, err = e.createStore("store-b", degraded, anchor, pw1)
		requireAPIError(t, err, "CloudHsmClusterInUseException")
	})
	storeA := *e.describeStoreByName("store-a").CustomKeyStoreId

	t.Run("describe", func(t *testing.T) {
		byName := e.describeStoreByName("store-a")
		require.Equal(t, storeA, *byName.CustomKeyStoreId)
		_, err := e.kms.DescribeCustomKeyStores(ctx, &kmssdk.DescribeCustomKeyStoresInput{CustomKeyStoreId: aws.String(storeA), CustomKeyStoreName: aws.String("store-a")})
		requireAPIError(t, err, "ValidationException")
		_, err = e.kms.DescribeCustomKeyStores(ctx, &kmssdk.DescribeCustomKeyStoresInput{CustomKeyStoreId: aws.String("cks-00000000000000000")})
		requireAPIError(t, err, "CustomKeyStoreNotFoundException")
		_, err = e.kms.DescribeCustomKeyStores(ctx, &kmssdk.DescribeCustomKeyStoresInput{CustomKeyStoreName: aws.String("nope")})
		requireAPIError(t, err, "CustomKeyStoreNotFoundException")
		_, err = e.kms.DescribeCustomKeyStores(ctx, &kmssdk.DescribeCustomKeyStoresInput{Marker: aws.String("bad")})
		requireAPIError(t, err, "InvalidMarkerException")
		_, body := e.post("DescribeCustomKeyStores", `{}`)
		require.NotContains(t, strings.ToLower(body), "password")
	})

	t.Run("connect failures", func(t *testing.T) {
		// The password is checked only now: INVALID_CREDENTIALS.
		require.NoError(t, e.connect(storeA))
		e.waitSettled(storeA, types.ConnectionStateTypeFailed, types.ConnectionErrorCodeTypeInvalidCredentials)
		requireAPIError(t, e.connect(storeA), "CustomKeyStoreInvalidStateException", "FAILED")
		requireAPIError(t, e.updateStore(&kmssdk.UpdateCustomKeyStoreInput{CustomKeyStoreId: aws.String(storeA), NewCustomKeyStoreName: aws.String("x")}), "CustomKeyStoreInvalidStateException")
		requireAPIError(t, e.deleteStore(storeA), "CustomKeyStoreInvalidStateException")
		require.NoError(t, e.disconnect(storeA))
		e.waitSettled(storeA, types.ConnectionStateTypeDisconnected, "")
		requireAPIError(t, e.disconnect(storeA), "CustomKeyStoreInvalidStateException", "DISCONNECTED")

		// A locked kmsuser: USER_LOCKED_OUT.
		for range 6 {
			requireLoginRefused(t, cust, "not-the-password")
		}
		require.NoError(t, e.updateStore(&kmssdk.UpdateCustomKeyStoreInput{CustomKeyStoreId: aws.String(storeA), KeyStorePassword: aws.String(pw1)}))
		require.NoError(t, e.connect(storeA))
		e.waitSettled(storeA, types.ConnectionStateTypeFailed, types.ConnectionErrorCodeTypeUserLockedOut)
		require.NoError(t, e.disconnect(storeA))
		adminChangePassword(t, cust, pw2)

		// A cluster that is not ACTIVE is refused at once; the store stays
		// DISCONNECTED.
		e.editCluster(custID, func(c *cluster.Cluster) { c.State = cluster.ClusterInitialized })
		requireAPIError(t, e.connect(storeA), "CloudHsmClusterNotActiveException")
		require.Equal(t, types.ConnectionStateTypeDisconnected, e.describeStore(storeA).ConnectionState)
		e.editCluster(custID, func(c *cluster.Cluster) { c.State = cluster.ClusterActive })

		// The cluster's HSMs exist but none answers: NETWORK_ERRORS.
		var addrs []string
		e.editCluster(custID, func(c *cluster.Cluster) {
			for _, h := range c.Hsms {
				addrs = append(addrs, h.Runtime.APIAddr)
			}
			deadAddr(c)
		})
		require.NoError(t, e.connect(storeA))
		e.waitSettled(storeA, types.ConnectionStateTypeFailed, types.ConnectionErrorCodeTypeNetworkErrors)
		require.NoError(t, e.disconnect(storeA))
		e.editCluster(custID, func(c *cluster.Cluster) {
			for i, h := range c.Hsms {
				h.Runtime.APIAddr = addrs[i]
			}
		})

		// The cluster has no active HSM: INSUFFICIENT_CLOUDHSM_HSMS.
		e.editCluster(custID, func(c *cluster.Cluster) {
			for _, h := range c.Hsms {
				h.State = cluster.HsmDeleted
			}
		})
		require.NoError(t, e.connect(storeA))
		e.waitSettled(storeA, types.ConnectionStateTypeFailed, types.ConnectionErrorCodeTypeInsufficientCloudhsmHsms)
		require.NoError(t, e.disconnect(storeA))
		e.editCluster(custID, func(c *cluster.Cluster) {
			for _, h := range c.Hsms {
				h.State = cluster.HsmActive
			}
		})

		// Someone is logged in as kmsuser on one HSM: USER_LOGGED_IN, and
		// the password is not tried. Once that session ends with its
		// client connection, the user is free again.
		conn := cust.Conn(1)
		resp, err := hsmv1.NewHsmServiceClient(conn).Login(ctx, &hsmv1.LoginRequest{Username: kmsUser, Password: pw2, Role: hsmv1.Role_ROLE_CRYPTO_USER})
		require.NoError(t, err)
		require.NotEmpty(t, resp.GetSession())
		require.NoError(t, e.connect(storeA))
		e.waitSettled(storeA, types.ConnectionStateTypeFailed, types.ConnectionErrorCodeTypeUserLoggedIn)
		require.NoError(t, e.disconnect(storeA))
		require.NoError(t, conn.Close())
		require.Eventually(t, func() bool {
			users, err := cust.Client(1).ListUsers(ctx, &hsmv1.ListUsersRequest{})
			return err == nil && users.GetSessions()[kmsUser] == 0
		}, 10*time.Second, 20*time.Millisecond, "kmsuser's session ends with its connection")

		// kmsuser does not exist: USER_NOT_FOUND.
		admin := cust.Login(0, node.AdminUsername, nodetest.AdminPassword, hsmv1.Role_ROLE_ADMIN)
		_, err = cust.Client(0).DeleteUser(admin, &hsmv1.DeleteUserRequest{Username: kmsUser})
		require.NoError(t, err)
		require.NoError(t, e.connect(storeA))
		e.waitSettled(storeA, types.ConnectionStateTypeFailed, types.ConnectionErrorCodeTypeUserNotFound)
		require.NoError(t, e.disconnect(storeA))
		cust.CreateCryptoUser(0, kmsUser, pw2)
		cust.WaitConverged()

		// The cluster was deleted: CLUSTER_NOT_FOUND.
		e.editCluster(custID, func(c *cluster.Cluster) { c.State = cluster.ClusterDeleted })
		require.NoError(t, e.connect(storeA))
		e.waitSettled(storeA, types.ConnectionStateTypeFailed, types.ConnectionErrorCodeTypeClusterNotFound)
		require.NoError(t, e.disconnect(storeA))
		e.editCluster(custID, func(c *cluster.Cluster) { c.State = cluster.ClusterActive })

		// KMS cannot open its sealed copy of the password: INTERNAL_ERROR.
		e.withDB(func(tx *store.Tx) error {
			rec, err := tx.CustomKeyStore(storeA)
			require.NoError(t, err)
			rec.SealedPassword = []byte{1, 2, 3}
			return tx.PutCustomKeyStore(rec)
		})
		require.NoError(t, e.connect(storeA))
		e.waitSettled(storeA, types.ConnectionStateTypeFailed, types.ConnectionErrorCodeTypeInternalError)
		require.NoError(t, e.disconnect(storeA))

		// The old password is refused: INVALID_CREDENTIALS.
		require.NoError(t, e.updateStore(&kmssdk.UpdateCustomKeyStoreInput{CustomKeyStoreId: aws.String(storeA), KeyStorePassword: aws.String(pw1)}))
		require.NoError(t, e.connect(storeA))
		e.waitSettled(storeA, types.ConnectionStateTypeFailed, types.ConnectionErrorCodeTypeInvalidCredentials)
		require.NoError(t, e.disconnect(storeA))
	})

	t.Run("connect", func(t *testing.T) {
		require.NoError(t, e.updateStore(&kmssdk.UpdateCustomKeyStoreInput{CustomKeyStoreId: aws.String(storeA), KeyStorePassword: aws.String(pw2)}))
		// Disconnected while (probably) CONNECTING: the connection must
		// not come back once its goroutine ends (restart waits for it),
		// and whatever it did to kmsuser's password, the next connection
		// finds the password.
		require.NoError(t, e.connect(storeA))
		require.NoError(t, e.disconnect(storeA))
		e.restart()
		require.Equal(t, types.ConnectionStateTypeDisconnected, e.describeStore(storeA).ConnectionState)

		require.NoError(t, e.connect(storeA))
		e.waitSettled(storeA, types.ConnectionStateTypeConnected, "")
		require.NoError(t, e.connect(storeA), "connecting a CONNECTED store does nothing")
		require.Equal(t, types.ConnectionStateTypeConnected, e.describeStore(storeA).ConnectionState)
		// KMS rotated kmsuser's password: the one the customer gave no
		// longer works.
		requireLoginRefused(t, cust, pw2)
		// Neither password is in the store's file; the fleet holds the
		// internal key that seals them.
		raw, err := os.ReadFile(filepath.Join(e.dir, "kms.db"))
		require.NoError(t, err)
		for _, pw := range []string{pw1, pw2, "wrong-password"} {
			require.False(t, bytes.Contains(raw, []byte(pw)), "the store file holds %q", pw)
		}
		session := e.fleet.Login(0, fleetUser, fleetPassword, hsmv1.Role_ROLE_CRYPTO_USER)
		found, err := e.fleet.Client(0).FindKeys(session, &hsmv1.FindKeysRequest{Label: "hsmsim:kms-internal"})
		require.NoError(t, err)
		require.Len(t, found.GetKeys(), 1)
		require.False(t, found.GetKeys()[0].GetExtractable())

		// A rotation whose outcome was not recorded (the HSM changed the
		// password, the endpoint stopped before making it current): the
		// pending password is found and made current.
		require.NoError(t, e.disconnect(storeA))
		const pw3 = "kmsuser-pass-3"
		adminChangePassword(t, cust, pw3)
		stale, err := e.svc.SealForTest(ctx, storeA, "stale-password")
		require.NoError(t, err)
		pending, err := e.svc.SealForTest(ctx, storeA, pw3)
		require.NoError(t, err)
		e.withDB(func(tx *store.Tx) error {
			rec, err := tx.CustomKeyStore(storeA)
			require.NoError(t, err)
			rec.SealedPassword, rec.SealedPendingPassword = stale, pending
			return tx.PutCustomKeyStore(rec)
		})
		require.NoError(t, e.connect(storeA))
		e.waitSettled(storeA, types.ConnectionStateTypeConnected, "")
		requireLoginRefused(t, cust, pw3)
	})

	t.Run("update and delete", func(t *testing.T) {
		// Nine more stores (inert records on clusters that do not exist)
		// reach the quota of ten.
		e.withDB(func(tx *store.Tx) error {
			for i := range 9 {
				err := tx.PutCustomKeyStore(&store.CustomKeyStore{
					ID: fmt.Sprintf("cks-0000000000000000%d", i), Name: fmt.Sprintf("filler-%d", i), ClusterID: cluster.NewID("cluster"),
					CertificateID: fmt.Sprintf("cert-%d", i), TrustAnchor: anchor, ConnectionState: store.Disconnected, CreationDate: time.Now(),
				})
				require.NoError(t, err)
			}
			return nil
		})
		// The restart reconnects the CONNECTED store in the background.
		require.Eventually(t, func() bool {
			_, err := e.kms.GenerateRandom(ctx, &kmssdk.GenerateRandomInput{NumberOfBytes: aws.Int32(4), CustomKeyStoreId: aws.String(storeA)})
			return err == nil
		}, 30*time.Second, 20*time.Millisecond)
		out, err := e.kms.DescribeCustomKeyStores(ctx, &kmssdk.DescribeCustomKeyStoresInput{Limit: aws.Int32(4)})
		require.NoError(t, err)
		require.Len(t, out.CustomKeyStores, 4)
		require.True(t, out.Truncated)
		require.Equal(t, storeA, *out.CustomKeyStores[0].CustomKeyStoreId, "listed in creation order")
		_, err = e.createStore("one-too-many", cluster.NewID("cluster"), anchor, pw1)
		requireAPIError(t, err, "LimitExceededException")

		// CONNECTED: rename only.
		requireAPIError(t, e.updateStore(&kmssdk.UpdateCustomKeyStoreInput{CustomKeyStoreId: aws.String(storeA), NewCustomKeyStoreName: aws.String("filler-1")}), "CustomKeyStoreNameInUseException")
		require.NoError(t, e.updateStore(&kmssdk.UpdateCustomKeyStoreInput{CustomKeyStoreId: aws.String(storeA), NewCustomKeyStoreName: aws.String("store-renamed")}))
		require.Equal(t, "store-renamed", *e.describeStore(storeA).CustomKeyStoreName)
		requireAPIError(t, e.updateStore(&kmssdk.UpdateCustomKeyStoreInput{CustomKeyStoreId: aws.String(storeA), KeyStorePassword: aws.String(pw1)}), "CustomKeyStoreInvalidStateException")
		requireAPIError(t, e.updateStore(&kmssdk.UpdateCustomKeyStoreInput{CustomKeyStoreId: aws.String(storeA), CloudHsmClusterId: aws.String(custID)}), "CustomKeyStoreInvalidStateException")
		requireAPIError(t, e.deleteStore(storeA), "CustomKeyStoreInvalidStateException")
		requireAPIError(t, e.updateStore(&kmssdk.UpdateCustomKeyStoreInput{CustomKeyStoreId: aws.String("cks-11111111111111111")}), "CustomKeyStoreNotFoundException")

		md := e.createCustomKey(storeA)
		require.NoError(t, e.disconnect(storeA))

		// DISCONNECTED: the cluster may change only within its lineage.
		notActive := e.addCluster(cust, nil, func(c *cluster.Cluster) { c.State = cluster.ClusterUninitialized })
		fleetRecord := e.addCluster(e.fleet, nil)
		oneHSM := e.addCluster(cust, []int{1})
		related := e.addCluster(cust, nil)
		for _, tt := range []struct {
			cluster, code string
		}{
			{cluster.NewID("cluster"), "CloudHsmClusterNotFoundException"},
			{notActive, "CloudHsmClusterNotActiveException"},
			{fleetRecord, "CloudHsmClusterNotRelatedException"},
			{oneHSM, "CloudHsmClusterInvalidConfigurationException"},
		} {
			requireAPIError(t, e.updateStore(&kmssdk.UpdateCustomKeyStoreInput{CustomKeyStoreId: aws.String(storeA), CloudHsmClusterId: aws.String(tt.cluster)}), tt.code)
		}
		require.Equal(t, custID, *e.describeStore(storeA).CloudHsmClusterId)
		require.NoError(t, e.updateStore(&kmssdk.UpdateCustomKeyStoreInput{CustomKeyStoreId: aws.String(storeA), CloudHsmClusterId: aws.String(related)}))
		require.Equal(t, related, *e.describeStore(storeA).CloudHsmClusterId)
		require.Equal(t, related, *e.describe(*md.KeyId).CloudHsmClusterId)

		// A store with keys, even PendingDeletion ones, cannot be deleted.
		_, err = e.kms.ScheduleKeyDeletion(ctx, &kmssdk.ScheduleKeyDeletionInput{KeyId: md.KeyId, PendingWindowInDays: aws.Int32(7)})
		require.NoError(t, err)
		requireAPIError(t, e.deleteStore(storeA), "CustomKeyStoreHasCMKsException")

		// Reconnected through the related cluster, the key works again.
		require.NoError(t, e.connect(storeA))
		e.waitSettled(storeA, types.ConnectionStateTypeConnected, "")
		_, err = e.kms.CancelKeyDeletion(ctx, &kmssdk.CancelKeyDeletionInput{KeyId: md.KeyId})
		require.NoError(t, err)
		_, err = e.kms.EnableKey(ctx, &kmssdk.EnableKeyInput{KeyId: md.KeyId})
		require.NoError(t, err)
		blob := e.encrypt(*md.KeyId, []byte("via the related cluster"), nil)
		dec, err := e.kms.Decrypt(ctx, &kmssdk.DecryptInput{CiphertextBlob: blob})
		require.NoError(t, err)
		require.Equal(t, "via the related cluster", string(dec.Plaintext))

		// Delete the key (the window passes), then the store.
		_, err = e.kms.ScheduleKeyDeletion(ctx, &kmssdk.ScheduleKeyDeletionInput{KeyId: md.KeyId, PendingWindowInDays: aws.Int32(7)})
		require.NoError(t, err)
		_, err = e.clock.Advance(8 * 24 * time.Hour)
		require.NoError(t, err)
		_, err = e.svc.Sweep(ctx)
		require.NoError(t, err)
		require.NoError(t, e.disconnect(storeA))
		_, err = e.kms.DeleteCustomKeyStore(ctx, &kmssdk.DeleteCustomKeyStoreInput{CustomKeyStoreId: aws.String(storeA)})
		require.NoError(t, err)
		_, err = e.kms.DescribeCustomKeyStores(ctx, &kmssdk.DescribeCustomKeyStoresInput{CustomKeyStoreId: aws.String(storeA)})
		requireAPIError(t, err, "CustomKeyStoreNotFoundException")
		requireAPIError(t, e.deleteStore(storeA), "CustomKeyStoreNotFoundException")
		requireAPIError(t, e.connect(storeA), "CustomKeyStoreNotFoundException")
		requireAPIError(t, e.disconnect(storeA), "CustomKeyStoreNotFoundException")

		// The cluster is free again.
		_, err = e.createStore("store-again", custID, anchor, pw1)
		require.NoError(t, err)
	})
}

func (e *env) describeStoreByName(name string) types.CustomKeyStoresListEntry {
	e.t.Helper()
	out, err := e.kms.DescribeCustomKeyStores(ctx, &kmssdk.DescribeCustomKeyStoresInput{CustomKeyStoreName: aws.String(name)})
	require.NoError(e.t, err)
	require.Len(e.t, out.CustomKeyStores, 1)
	return out.CustomKeyStores[0]
}
